import Foundation

/// Runs blocking store calls somewhere that is not an event loop (a thread pool in the server;
/// inline in tests).
public protocol StoreExecutor: Sendable {
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T
}

/// Runs store calls on the calling task (tests and the command line).
public struct InlineStoreExecutor: StoreExecutor {
    public init() {}
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T { try body() }
}

/// Turns a credential the store knows into an identity: session cookies, JSON Web Tokens,
/// run-time API keys, one-shot tokens.
///
/// Guarantees:
/// - Every answer reflects the store at the time of the request: a logged-out session, a revoked
///   key or token, a deleted or disabled user is refused on the next request (no cache).
/// - Lookups are by the digest or the token id, through indexes: their cost does not grow with the
///   number of stored credentials.
/// - Store failures are ``AuthenticationFailure/storeUnavailable`` (503), never a pass.
/// - Usage bookkeeping (a session's last use, a key's `last_used`) is written at most once a
///   minute per credential, and a failure to write it never fails the request.
public struct StoredCredentialAuthenticator: Sendable {
    public let store: any CredentialStore
    public let executor: any StoreExecutor
    public let tokens: TokenAuthority
    public let sessions: SessionPolicy
    public let oneShotTokens: OneShotTokens
    /// How often a key's `last_used` may be written.
    public let keyTouchInterval: TimeInterval
    /// The clock every expiry is judged by (tests move it; the server uses the system clock).
    public let now: @Sendable () -> Date

    public init(
        store: any CredentialStore, executor: any StoreExecutor, tokens: TokenAuthority, sessions: SessionPolicy,
        oneShotTokens: OneShotTokens, keyTouchInterval: TimeInterval = 60, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.now = now
        self.store = store
        self.executor = executor
        self.tokens = tokens
        self.sessions = sessions
        self.oneShotTokens = oneShotTokens
        self.keyTouchInterval = keyTouchInterval
    }

    public func authenticate(_ kind: StoredCredentialKind, secret: String, now: Date) async -> Result<Identity, AuthenticationFailure> {
        do {
            switch kind {
            case .session: return try await session(secret, now: now)
            case .apiKey: return try await apiKey(secret, now: now)
            case .jsonWebToken: return try await accessToken(secret, now: now)
            case .oneShotToken: return try await oneShot(secret, now: now)
            }
        } catch {
            return .failure(.storeUnavailable)
        }
    }

    /// The live session a cookie value names, and its user.
    public func liveSession(_ secret: String, now: Date) async throws -> (SessionRecord, UserRecord)? {
        let store = self.store
        let digest = SecretDigest.of(secret)
        guard let (session, user) = try await executor.run({ try store.session(digest: digest) }),
            session.digest.constantTimeEquals(digest), sessions.isAlive(session, now: now)
        else { return nil }
        return (session, user)
    }

    private func session(_ secret: String, now: Date) async throws -> Result<Identity, AuthenticationFailure> {
        guard let (session, user) = try await liveSession(secret, now: now) else { return .failure(.invalidSession) }
        if user.disabled { return .failure(.disabledUser) }
        if sessions.needsTouch(session, now: now) {
            let store = self.store
            _ = try? await executor.run { try store.touchSession(digest: session.digest, at: now) }
        }
        return .success(Identity(user: user.username, roles: user.roles, method: .session, source: "session:" + session.publicID))
    }

    private func apiKey(_ secret: String, now: Date) async throws -> Result<Identity, AuthenticationFailure> {
        let store = self.store
        let digest = SecretDigest.of(secret)
        guard let (key, user) = try await executor.run({ try store.apiKey(digest: digest) }), key.digest.constantTimeEquals(digest) else {
            return .failure(.unknownAPIKey)
        }
        if let expires = key.expires, expires <= now { return .failure(.expiredAPIKey) }
        if user.disabled { return .failure(.disabledUser) }
        if key.lastUsed.map({ now.timeIntervalSince($0) >= keyTouchInterval }) ?? true {
            _ = try? await executor.run { try store.touchAPIKey(named: key.name, at: now) }
        }
        return .success(
            Identity(user: user.username, roles: key.roles ?? user.roles, method: .apiKey, readOnly: key.readOnly, source: key.name))
    }

    /// A verified token that the store still honours, and its user's current state.
    public func honouredToken(_ token: String, now: Date) async throws -> Result<(VerifiedToken, IssuedToken, UserRecord), AuthenticationFailure> {
        let verified: VerifiedToken
        switch await tokens.verify(token, now: now) {
        case .success(let v): verified = v
        case .failure(let failure): return .failure(failure)
        }
        let store = self.store
        let jti = verified.jti
        guard let (record, user) = try await executor.run({ try store.token(jti: jti) }), record.username == verified.username else {
            return .failure(.invalidToken(reason: "it was not issued by this Gatehouse or its user is gone"))
        }
        if record.revoked { return .failure(.invalidToken(reason: "it has been revoked")) }
        if user.disabled { return .failure(.disabledUser) }
        return .success((verified, record, user))
    }

    private func accessToken(_ token: String, now: Date) async throws -> Result<Identity, AuthenticationFailure> {
        switch try await honouredToken(token, now: now) {
        case .failure(let failure): return .failure(failure)
        case .success(let (verified, record, user)):
            guard verified.kind == .access, record.kind != .refresh else {
                return .failure(.invalidToken(reason: "a refresh token cannot be used as an access token"))
            }
            return .success(Identity(user: user.username, roles: user.roles, method: .jwt, source: "jwt:" + String(record.jti.prefix(8))))
        }
    }

    private func oneShot(_ token: String, now: Date) async throws -> Result<Identity, AuthenticationFailure> {
        guard let identity = oneShotTokens.redeem(token, now: now) else { return .failure(.invalidOneShotToken) }
        let store = self.store
        let name = identity.user
        // The user may have been deleted or disabled in the seconds since the token was made.
        // Identities from the config file (its keys, trusted networks) have no user in the store.
        let user = try await executor.run({ try store.user(named: name) })
        if user?.disabled == true { return .failure(.disabledUser) }
        if user == nil && (identity.method == .session || identity.method == .jwt) { return .failure(.invalidOneShotToken) }
        return .success(
            Identity(user: identity.user, roles: identity.roles, method: .oneShotToken, readOnly: identity.readOnly, source: identity.source))
    }
}
