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
/// - Every answer reflects the store: a logged-out session, a revoked key or token, a deleted or
///   disabled user is refused on the next request when this process made the change, and within
///   ``CredentialCache/confirmationLimit`` when another process did (``watchStore(every:)`` polls).
/// - A credential used again is answered from ``cache`` without a store read or a thread hop
///   (``authenticateFromMemory(_:secret:now:)``); otherwise lookups go by digest or token id
///   through indexes. Neither cost grows with the number of stored credentials.
/// - Store failures are ``AuthenticationFailure/storeUnavailable`` (503), never a pass.
/// - Usage bookkeeping (a session's last use, a key's `last_used`) is written at most once a
///   minute per credential, and a failure to write it never fails the request.
public final class StoredCredentialAuthenticator: Sendable {
    public let store: any CredentialStore
    public let executor: any StoreExecutor
    public let tokens: TokenAuthority
    public let sessions: SessionPolicy
    public let oneShotTokens: OneShotTokens
    public let cache: CredentialCache
    /// NetBox's throttle: a key's `last_used` is written at most once a minute.
    public static let defaultKeyTouchInterval: TimeInterval = 60
    /// How often a key's `last_used` may be written (`.infinity`: never, for read-only tools).
    public let keyTouchInterval: TimeInterval
    /// The clock every expiry is judged by (tests move it; the server uses the system clock).
    public let now: @Sendable () -> Date

    public init(
        store: any CredentialStore, executor: any StoreExecutor, tokens: TokenAuthority, sessions: SessionPolicy,
        oneShotTokens: OneShotTokens, cache: CredentialCache = CredentialCache(), keyTouchInterval: TimeInterval = defaultKeyTouchInterval,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.now = now
        self.store = store
        self.executor = executor
        self.tokens = tokens
        self.sessions = sessions
        self.oneShotTokens = oneShotTokens
        self.cache = cache
        self.keyTouchInterval = keyTouchInterval
    }

    /// - Parameter digest: the SHA-256 of `secret` when the caller has it already.
    public func authenticate(
        _ kind: StoredCredentialKind, secret: String, digest: SecretDigest? = nil, now: Date
    ) async -> Result<Identity, AuthenticationFailure> {
        let digest = digest ?? SecretDigest.of(secret)
        if let answer = authenticateFromMemory(kind, secret: secret, digest: digest, now: now) { return answer }
        do {
            switch kind {
            case .session, .apiKey, .jsonWebToken:
                guard let key = Self.cacheKey(kind, digest: digest) else { return .failure(.storeUnavailable) }
                return try await lookUp(key, secret: secret, now: now)
            case .oneShotToken: return try await oneShot(secret, now: now)
            case .basic:
                // Passwords are AccountService's (lockouts, scrypt); this type only knows keys.
                return try await lookUp(.apiKey(digest), secret: secret, now: now)
            }
        } catch {
            return .failure(.storeUnavailable)
        }
    }

    /// The answer from ``cache`` when it holds the credential and the store has not changed since;
    /// nil when the store must be asked (through ``authenticate(_:secret:now:)``), which includes
    /// the once-a-minute request whose bookkeeping is due. Never blocks: safe on an event loop.
    public func authenticateFromMemory(
        _ kind: StoredCredentialKind, secret: String, digest: SecretDigest? = nil, now: Date
    ) -> Result<Identity, AuthenticationFailure>? {
        let digest = digest ?? SecretDigest.of(secret)
        if case .basic(let username) = kind {
            return authenticateFromMemory(.apiKey, secret: secret, digest: digest, now: now)
                ?? remembered(cache.passwordKey(username: username, password: secret), now: now)
        }
        guard let key = Self.cacheKey(kind, digest: digest) else { return nil }
        return remembered(key, now: now)
    }

    private func remembered(_ key: CredentialCacheKey, now: Date) -> Result<Identity, AuthenticationFailure>? {
        guard let entry = cache.entry(for: key, revision: store.knownRevision) else { return nil }
        let verdict = judge(entry, now: now)
        return verdict.bookkeepingDue ? nil : verdict.result
    }

    /// How long a verified HTTP Basic password is remembered (the store's revision dropping it
    /// sooner when the user or their password changes).
    public static let passwordMemory: TimeInterval = 60

    /// Keeps `user`'s verified Basic password in ``cache`` for ``passwordMemory`` (by a keyed
    /// hash), unless the store has moved on since `readAt`.
    public func rememberPassword(of user: UserRecord, username: String, password: String, readAt: Int64, now: Date) {
        cache.insert(.password(user, verified: now), for: cache.passwordKey(username: username, password: password), readAt: readAt, current: store.knownRevision)
    }

    /// The identity a verified Basic password gives.
    public static func passwordIdentity(_ user: UserRecord) -> Identity {
        Identity(user: user.username, roles: user.roles, method: .password, source: "basic")
    }

    /// Confirms the store's revision every `interval` until the task is cancelled, so that other
    /// processes' writes reach ``cache`` (the server runs this for its lifetime).
    public func watchStore(every interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let instant = ContinuousClock.now
            let store = self.store
            if let revision = try? await executor.run({ try store.refreshRevision() }) {
                cache.confirm(revision: revision, at: instant)
            }
        }
    }

    private static func cacheKey(_ kind: StoredCredentialKind, digest: SecretDigest) -> CredentialCacheKey? {
        switch kind {
        case .session: return .session(digest)
        case .apiKey: return .apiKey(digest)
        case .jsonWebToken: return .accessToken(digest)
        case .oneShotToken, .basic: return nil
        }
    }

    /// Asks the store, keeps its answer in ``cache``, and judges it like a cached one.
    private func lookUp(_ key: CredentialCacheKey, secret: String, now: Date) async throws -> Result<Identity, AuthenticationFailure> {
        let verified: VerifiedToken?
        if case .accessToken = key {
            switch await tokens.verify(secret, now: now) {
            case .success(let token): verified = token
            case .failure(let failure): return .failure(failure)
            }
        } else {
            verified = nil
        }
        let store = self.store
        let instant = ContinuousClock.now
        let fetched: (CachedCredential?, Int64) = try await executor.run {
            let revision = try store.refreshRevision()
            switch key {
            case .session(let digest):
                return (try store.session(digest: digest).map { .session($0, $1) }, revision)
            case .apiKey(let digest):
                return (try store.apiKey(digest: digest).map { .apiKey($0, $1) }, revision)
            case .accessToken:
                guard let verified else { return (nil, revision) }
                return (try store.token(jti: verified.jti).map { .accessToken(verified, $0, $1) }, revision)
            case .password:
                // Only ever inserted after a password check (AccountService), never looked up.
                return (nil, revision)
            }
        }
        cache.confirm(revision: fetched.1, at: instant)
        guard var entry = fetched.0 else { return .failure(Self.unknown(key)) }
        if case .accessToken(let token, let record, _) = entry, record.username != token.username {
            return .failure(.invalidToken(reason: "it was not issued by this Gatehouse or its user is gone"))
        }
        let verdict = judge(entry, now: now)
        if verdict.bookkeepingDue, case .success = verdict.result {
            entry = try await recordUse(of: entry, now: now)
        }
        cache.insert(entry, for: key, readAt: fetched.1, current: store.knownRevision)
        return verdict.result
    }

    private static func unknown(_ key: CredentialCacheKey) -> AuthenticationFailure {
        switch key {
        case .session: return .invalidSession
        case .apiKey: return .unknownAPIKey
        case .accessToken: return .invalidToken(reason: "it was not issued by this Gatehouse or its user is gone")
        case .password: return .wrongPassword
        }
    }

    /// Writes a session's last use or a key's `last_used`; a failure is ignored (the request
    /// still passes; the next one tries again).
    private func recordUse(of entry: CachedCredential, now: Date) async throws -> CachedCredential {
        let store = self.store
        switch entry {
        case .session(var session, let user):
            let digest = session.digest
            guard (try? await executor.run({ try store.touchSession(digest: digest, at: now) })) != nil else { return entry }
            session.lastSeen = now
            return .session(session, user)
        case .apiKey(var key, let user):
            let name = key.name
            guard (try? await executor.run({ try store.touchAPIKey(named: name, at: now) })) != nil else { return entry }
            key.lastUsed = now
            return .apiKey(key, user)
        case .accessToken, .password:
            return entry
        }
    }

    /// The decision for a store answer at `now`, the same whether it came from the store or the cache.
    private func judge(_ entry: CachedCredential, now: Date) -> (result: Result<Identity, AuthenticationFailure>, bookkeepingDue: Bool) {
        switch entry {
        case .session(let session, let user):
            guard sessions.isAlive(session, now: now) else { return (.failure(.invalidSession), false) }
            if user.disabled { return (.failure(.disabledUser), false) }
            let identity = Identity(user: user.username, roles: user.roles, method: .session, source: "session:" + session.publicID)
            return (.success(identity), sessions.needsTouch(session, now: now))
        case .apiKey(let key, let user):
            if let expires = key.expires, expires <= now { return (.failure(.expiredAPIKey), false) }
            if user.disabled { return (.failure(.disabledUser), false) }
            // A key's roles narrow its user's, never add to them: a user who lost a role loses it
            // on every key too.
            let roles = key.roles.map { $0.filter(user.roles.contains) } ?? user.roles
            let identity = Identity(user: user.username, roles: roles, method: .apiKey, readOnly: key.readOnly, source: key.name, expires: key.expires)
            let due = keyTouchInterval.isFinite && (key.lastUsed.map { now.timeIntervalSince($0) >= keyTouchInterval } ?? true)
            return (.success(identity), due)
        case .accessToken(let token, let record, let user):
            if let failure = tokens.expiryFailure(token, now: now) { return (.failure(failure), false) }
            if record.revoked { return (.failure(.invalidToken(reason: "it has been revoked")), false) }
            if user.disabled { return (.failure(.disabledUser), false) }
            guard token.kind == .access, record.kind != .refresh else {
                return (.failure(.invalidToken(reason: "a refresh token cannot be used as an access token")), false)
            }
            // A sign-in's token stands for the user; a long-lived one (`gatehouse token issue`) for
            // a grant that ends when it does.
            let expires = record.kind == .longLived ? record.expires : nil
            return (.success(Identity(user: user.username, roles: user.roles, method: .jwt, source: "jwt:" + String(record.jti.prefix(8)), expires: expires)), false)
        case .password(let user, let verified):
            // Past its memory the password is checked again (reported as bookkeeping due).
            if user.disabled { return (.failure(.disabledUser), false) }
            return (.success(Self.passwordIdentity(user)), now.timeIntervalSince(verified) >= Self.passwordMemory || now < verified)
        }
    }

    /// The live session a cookie value names, and its user (always from the store).
    public func liveSession(_ secret: String, now: Date) async throws -> (SessionRecord, UserRecord)? {
        let store = self.store
        let digest = SecretDigest.of(secret)
        guard let (session, user) = try await executor.run({ try store.session(digest: digest) }),
            session.digest.constantTimeEquals(digest), sessions.isAlive(session, now: now)
        else { return nil }
        return (session, user)
    }

    /// A verified token that the store still honours, and its user's current state (always from
    /// the store: refresh exchanges never use the cache).
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

    /// Whether `username` may still act: a user in the store who is not disabled; with
    /// `mustExist` false (identities from config-file keys and trusted networks, which have no
    /// user in the store) also a name the store does not know. False when the store cannot be read.
    public func userIsActive(_ username: String, mustExist: Bool) async -> Bool {
        let store = self.store
        do {
            guard let user = try await executor.run({ try store.user(named: username) }) else { return !mustExist }
            return !user.disabled
        } catch {
            return false
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
            Identity(
                user: identity.user, roles: identity.roles, method: .oneShotToken, readOnly: identity.readOnly, source: identity.source,
                expires: identity.expires))
    }
}
