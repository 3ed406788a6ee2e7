import Foundation

/// What a store answer is judged by: session lifetimes, token expiry, and how often usage is
/// written back.
public struct CredentialRules: Sendable {
    public let tokens: TokenAuthority
    public let sessions: SessionPolicy
    /// How often a key's `last_used` may be written (`.infinity`: never, for read-only tools).
    public let keyTouchInterval: TimeInterval
    /// How long a verified HTTP Basic password is remembered (the store's revision dropping it
    /// sooner when the user or their password changes).
    public static let passwordMemory: TimeInterval = 60
}

/// The verdict on one store answer at one instant.
public struct CredentialVerdict: Sendable {
    public let result: Result<Identity, AuthenticationFailure>
    /// The answer is good but its usage should be written (or, for a remembered password, checked
    /// again): the store is asked instead of the cache.
    public let bookkeepingDue: Bool

    static func refuse(_ failure: AuthenticationFailure) -> CredentialVerdict {
        CredentialVerdict(result: .failure(failure), bookkeepingDue: false)
    }
}

/// What the store said about one credential, kept in ``CredentialCache`` so that the next
/// request with it need not ask. One type per kind of credential; each judges itself, so the
/// verdict is the same whether the answer came from the store or the cache.
public protocol CachedCredential: Sendable {
    func judge(now: Date, by rules: CredentialRules) -> CredentialVerdict
    /// What a use of this credential writes to the store (``UseRecorder``); nil when nothing.
    var use: CredentialUse? { get }
    /// This credential as it stands once used at `now` (a later use it knows of stays); nil when
    /// nothing about its use is kept.
    func used(at now: Date) -> (any CachedCredential)?
}

extension CachedCredential {
    public var use: CredentialUse? { nil }
    public func used(at now: Date) -> (any CachedCredential)? { nil }
}

/// A session cookie's session and its user.
public struct CachedSession: CachedCredential {
    public var session: SessionRecord
    public let user: UserRecord

    public init(_ session: SessionRecord, _ user: UserRecord) {
        self.session = session
        self.user = user
    }

    public func judge(now: Date, by rules: CredentialRules) -> CredentialVerdict {
        guard rules.sessions.isAlive(session, now: now) else { return .refuse(.invalidSession) }
        if user.disabled { return .refuse(.disabledUser) }
        let identity = Identity(user: user.username, roles: user.roles, method: .session, source: "session:" + session.publicID)
        return CredentialVerdict(result: .success(identity), bookkeepingDue: rules.sessions.needsTouch(session, now: now))
    }

    public var use: CredentialUse? { .session(session.digest) }

    public func used(at now: Date) -> (any CachedCredential)? {
        var touched = self
        touched.session.lastSeen = max(session.lastSeen, now)
        return touched
    }
}

/// A run-time API key and its user.
public struct CachedAPIKey: CachedCredential {
    public var key: StoredAPIKey
    public let user: UserRecord

    public init(_ key: StoredAPIKey, _ user: UserRecord) {
        self.key = key
        self.user = user
    }

    public func judge(now: Date, by rules: CredentialRules) -> CredentialVerdict {
        if let expires = key.expires, expires <= now { return .refuse(.expiredAPIKey) }
        if user.disabled { return .refuse(.disabledUser) }
        // A key's roles narrow its user's, never add to them: a user who lost a role loses it
        // on every key too.
        let roles = key.roles.map { $0.filter(user.roles.contains) } ?? user.roles
        let identity = Identity(user: user.username, roles: roles, method: .apiKey, readOnly: key.readOnly, source: key.name, expires: key.expires)
        let due = rules.keyTouchInterval.isFinite && (key.lastUsed.map { now.timeIntervalSince($0) >= rules.keyTouchInterval } ?? true)
        return CredentialVerdict(result: .success(identity), bookkeepingDue: due)
    }

    public var use: CredentialUse? { .apiKey(name: key.name) }

    public func used(at now: Date) -> (any CachedCredential)? {
        var touched = self
        touched.key.lastUsed = max(key.lastUsed ?? now, now)
        return touched
    }
}

/// A JSON Web Token whose signature, issuer, audience and times were verified, its store
/// record, and its user.
public struct CachedAccessToken: CachedCredential {
    public let token: VerifiedToken
    public let record: IssuedToken
    public let user: UserRecord

    public func judge(now: Date, by rules: CredentialRules) -> CredentialVerdict {
        guard record.username == token.username else { return .refuse(StoreQuery.unknownToken) }
        if let failure = rules.tokens.expiryFailure(token, now: now) { return .refuse(failure) }
        if record.revoked { return .refuse(.invalidToken(reason: "it has been revoked")) }
        if user.disabled { return .refuse(.disabledUser) }
        guard token.kind == .access, record.kind != .refresh else {
            return .refuse(.invalidToken(reason: "a refresh token cannot be used as an access token"))
        }
        // A sign-in's token stands for the user; a long-lived one (`gatehouse token issue`) for
        // a grant that ends when it does.
        let expires = record.kind == .longLived ? record.expires : nil
        let identity = Identity(user: user.username, roles: user.roles, method: .jwt, source: "jwt:" + String(record.jti.prefix(8)), expires: expires)
        return CredentialVerdict(result: .success(identity), bookkeepingDue: false)
    }
}

/// A user whose HTTP Basic password was verified with scrypt at `verified` (only ever put in
/// the cache after a password check; never looked up in the store).
public struct VerifiedPassword: CachedCredential {
    public let user: UserRecord
    public let verified: Date

    /// The identity a verified Basic password gives.
    public static func identity(_ user: UserRecord) -> Identity {
        Identity(user: user.username, roles: user.roles, method: .password, source: "basic")
    }

    public func judge(now: Date, by rules: CredentialRules) -> CredentialVerdict {
        if user.disabled { return .refuse(.disabledUser) }
        // Past its memory the password is checked again (reported as bookkeeping due).
        let due = now.timeIntervalSince(verified) >= CredentialRules.passwordMemory || now < verified
        return CredentialVerdict(result: .success(Self.identity(user)), bookkeepingDue: due)
    }
}

/// How one kind of credential is looked up in the store: its cache key, the read, and what an
/// unknown one is refused as.
struct StoreQuery: Sendable {
    let key: CredentialCacheKey
    let unknown: AuthenticationFailure
    /// The credential (nil: unknown) and the revision read no later than it.
    let fetch: @Sendable (any CredentialStore) async throws -> ((any CachedCredential)?, Int64)

    static let unknownToken = AuthenticationFailure.invalidToken(reason: "it was not issued by this Gatehouse or its user is gone")

    static func session(_ digest: SecretDigest) -> StoreQuery {
        StoreQuery(key: .session(digest), unknown: .invalidSession) { store in
            let (found, revision) = try await store.sessionAndRevision(digest: digest)
            return (found.map { CachedSession($0, $1) }, revision)
        }
    }

    static func apiKey(_ digest: SecretDigest) -> StoreQuery {
        StoreQuery(key: .apiKey(digest), unknown: .unknownAPIKey) { store in
            let (found, revision) = try await store.apiKeyAndRevision(digest: digest)
            return (found.map { CachedAPIKey($0, $1) }, revision)
        }
    }

    /// `digest`: of the whole token text, which carries the same verified signature every time.
    static func accessToken(_ token: VerifiedToken, digest: SecretDigest) -> StoreQuery {
        StoreQuery(key: .accessToken(digest), unknown: unknownToken) { store in
            let (found, revision) = try await store.tokenAndRevision(jti: token.jti)
            return (found.map { CachedAccessToken(token: token, record: $0, user: $1) }, revision)
        }
    }
}
