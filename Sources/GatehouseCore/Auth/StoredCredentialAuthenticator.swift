import Foundation

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
///   minute per credential, off the request path (``uses``), and a failure to write it never
///   fails the request.
public final class StoredCredentialAuthenticator: Sendable {
    public let store: any CredentialStore
    public let tokens: TokenAuthority
    public let sessions: SessionPolicy
    public let oneShotTokens: any OneShotTokenBook
    public let cache: CredentialCache
    /// Where last uses wait to be written to the store.
    public let uses: UseRecorder
    /// NetBox's throttle: a key's `last_used` is written at most once a minute.
    public static let defaultKeyTouchInterval: TimeInterval = 60
    /// How often a key's `last_used` may be written (`.infinity`: never, for read-only tools).
    public let keyTouchInterval: TimeInterval
    /// The clock every expiry is judged by (tests move it; the server uses the system clock).
    public let now: @Sendable () -> Date

    public init(
        store: any CredentialStore, tokens: TokenAuthority, sessions: SessionPolicy,
        oneShotTokens: any OneShotTokenBook, cache: CredentialCache = CredentialCache(), keyTouchInterval: TimeInterval = defaultKeyTouchInterval,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.now = now
        self.store = store
        self.tokens = tokens
        self.sessions = sessions
        self.oneShotTokens = oneShotTokens
        self.cache = cache
        self.uses = UseRecorder(store: store)
        self.keyTouchInterval = keyTouchInterval
    }

    /// The rules store answers are judged by.
    public var rules: CredentialRules { CredentialRules(tokens: tokens, sessions: sessions, keyTouchInterval: keyTouchInterval) }

    /// - Parameter digest: the SHA-256 of `secret` when the caller has it already.
    public func authenticate(
        _ kind: StoredCredentialKind, secret: String, digest: SecretDigest? = nil, now: Date
    ) async -> Result<Identity, AuthenticationFailure> {
        let digest = digest ?? SecretDigest.of(secret)
        if let answer = authenticateFromMemory(kind, secret: secret, digest: digest, now: now) { return answer }
        do {
            switch kind {
            case .session: return try await lookUp(.session(digest), now: now)
            // Passwords are AccountService's (lockouts, scrypt); this type only knows the keys
            // a Basic password field may carry.
            case .apiKey, .basic: return try await lookUp(.apiKey(digest), now: now)
            case .jsonWebToken:
                switch await tokens.verify(secret, now: now) {
                case .success(let token): return try await lookUp(.accessToken(token, digest: digest), now: now)
                case .failure(let failure): return .failure(failure)
                }
            case .oneShotToken: return try await oneShot(secret, now: now)
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
        switch kind {
        case .session: return remembered(.session(digest), now: now)
        case .apiKey: return remembered(.apiKey(digest), now: now)
        case .jsonWebToken: return remembered(.accessToken(digest), now: now)
        case .basic(let username):
            return remembered(.apiKey(digest), now: now) ?? remembered(cache.passwordKey(username: username, password: secret), now: now)
        case .oneShotToken: return nil
        }
    }

    private func remembered(_ key: CredentialCacheKey, now: Date) -> Result<Identity, AuthenticationFailure>? {
        guard let entry = cache.entry(for: key, revision: store.knownRevision) else { return nil }
        let verdict = entry.judge(now: now, by: rules)
        return verdict.bookkeepingDue ? nil : verdict.result
    }

    /// How long a verified HTTP Basic password is remembered (``CredentialRules/passwordMemory``).
    public static let passwordMemory = CredentialRules.passwordMemory

    /// Keeps `user`'s verified Basic password in ``cache`` for ``passwordMemory`` (by a keyed
    /// hash), unless the store has moved on since `readAt`.
    public func rememberPassword(of user: UserRecord, username: String, password: String, readAt: Int64, now: Date) {
        cache.insert(
            VerifiedPassword(user: user, verified: now), for: cache.passwordKey(username: username, password: password), readAt: readAt,
            current: store.knownRevision)
    }

    /// Confirms the store's revision every `interval` until the task is cancelled, so that other
    /// processes' writes reach ``cache`` (the server runs this for its lifetime).
    public func watchStore(every interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let instant = ContinuousClock.now
            if let revision = try? await store.refreshRevision() {
                cache.confirm(revision: revision, at: instant)
            }
        }
    }

    /// Asks the store, keeps its answer in ``cache``, and judges it like a cached one.
    private func lookUp(_ query: StoreQuery, now: Date) async throws -> Result<Identity, AuthenticationFailure> {
        let instant = ContinuousClock.now
        let (found, revision) = try await query.fetch(store)
        cache.confirm(revision: revision, at: instant)
        guard var entry = found else { return .failure(query.unknown) }
        // A use noted here and not written yet is newer than what the store said.
        if let use = entry.use, let noted = uses.noted(use), let fresher = entry.used(at: noted) {
            entry = fresher
        }
        let verdict = entry.judge(now: now, by: rules)
        if verdict.bookkeepingDue, case .success = verdict.result, let use = entry.use, let touched = entry.used(at: now) {
            entry = touched
            uses.note(use, at: now)
        }
        cache.insert(entry, for: query.key, readAt: revision, current: store.knownRevision)
        return verdict.result
    }

    /// The live session a cookie value names, and its user (always from the store).
    public func liveSession(_ secret: String, now: Date) async throws -> (SessionRecord, UserRecord)? {
        let digest = SecretDigest.of(secret)
        guard let (session, user) = try await store.session(digest: digest),
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
        guard let (record, user) = try await store.token(jti: verified.jti), record.username == verified.username else {
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
        do {
            guard let user = try await store.user(named: username) else { return !mustExist }
            return !user.disabled
        } catch {
            return false
        }
    }

    private func oneShot(_ token: String, now: Date) async throws -> Result<Identity, AuthenticationFailure> {
        guard let identity = try await oneShotTokens.redeem(token, now: now) else { return .failure(.invalidOneShotToken) }

        // The user may have been deleted or disabled in the seconds since the token was made.
        // Identities from the config file (its keys, trusted networks) have no user in the store.
        let user = try await store.user(named: identity.user)
        if user?.disabled == true { return .failure(.disabledUser) }
        if user == nil && (identity.method == .session || identity.method == .jwt) { return .failure(.invalidOneShotToken) }
        return .success(
            Identity(
                user: identity.user, roles: identity.roles, method: .oneShotToken, readOnly: identity.readOnly, source: identity.source,
                expires: identity.expires))
    }
}
