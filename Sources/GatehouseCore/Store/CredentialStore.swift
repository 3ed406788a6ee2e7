import Foundation

/// A browser sign-in, kept server-side. The cookie holds a 256-bit random id; the store holds
/// only its ``digest``.
public struct SessionRecord: Sendable, Hashable {
    public var digest: SecretDigest
    public var username: String
    public var created: Date
    /// The last request that used it (written at most once a minute; see ``SessionPolicy``).
    public var lastSeen: Date
    /// The absolute end, however active the session is.
    public var expires: Date
    /// Chosen with "remember me": the cookie outlives the browser and the long lifetime applies.
    public var remember: Bool
    /// Where it was opened from (client address), for `gatehouse session list`.
    public var origin: String

    public init(digest: SecretDigest, username: String, created: Date, lastSeen: Date, expires: Date, remember: Bool, origin: String) {
        self.digest = digest
        self.username = username
        self.created = created
        self.lastSeen = lastSeen
        self.expires = expires
        self.remember = remember
        self.origin = origin
    }

    /// A short public name for listing and revoking: the first 12 hex digits of the digest (the
    /// digest of a 256-bit random value; its prefix says nothing about the cookie).
    public var publicID: String { digest.hex(digits: 12) }
}

/// An API key created at run time (`POST /_gatehouse/api/keys`, `gatehouse key create`).
/// Keys from the config file stay valid beside these.
public struct StoredAPIKey: Sendable, Hashable {
    public var name: String
    public var username: String
    /// Nil: the key carries its user's roles as they are at each request.
    public var roles: [String]?
    public var digest: SecretDigest
    public var readOnly: Bool
    public var expires: Date?
    public var created: Date
    /// Updated at most once a minute per key (NetBox's throttle), never a write per request.
    public var lastUsed: Date?
    public var description: String

    public init(
        name: String, username: String, roles: [String]?, digest: SecretDigest, readOnly: Bool,
        expires: Date?, created: Date, lastUsed: Date? = nil, description: String = ""
    ) {
        self.name = name
        self.username = username
        self.roles = roles
        self.digest = digest
        self.readOnly = readOnly
        self.expires = expires
        self.created = created
        self.lastUsed = lastUsed
        self.description = description
    }
}

/// What a JSON Web Token Gatehouse issued is for.
public enum IssuedTokenKind: String, Sendable, Hashable, CaseIterable {
    /// Short-lived, sent as `Authorization: Bearer` on requests.
    case access
    /// Long-lived, only ever exchanged at `refresh_jwt` for a new pair.
    case refresh
    /// An access token issued by `gatehouse token issue` (possibly never expiring).
    case longLived = "long_lived"
}

/// The record of one issued JSON Web Token, by its `jti`: what makes revocation possible.
public struct IssuedToken: Sendable, Hashable {
    public var jti: String
    public var username: String
    public var kind: IssuedTokenKind
    /// Refresh tokens and the access tokens issued with them share a family; reuse of a spent
    /// refresh token revokes the whole family.
    public var family: String?
    public var created: Date
    /// Nil: never expires.
    public var expires: Date?
    public var revoked: Bool
    /// A refresh token that was exchanged already.
    public var used: Bool
    public var description: String

    public init(
        jti: String, username: String, kind: IssuedTokenKind, family: String?, created: Date, expires: Date?,
        revoked: Bool = false, used: Bool = false, description: String = ""
    ) {
        self.jti = jti
        self.username = username
        self.kind = kind
        self.family = family
        self.created = created
        self.expires = expires
        self.revoked = revoked
        self.used = used
        self.description = description
    }
}

/// The outcome of presenting a refresh token for exchange.
public enum RefreshExchange: Sendable, Hashable {
    /// First use: the token is now spent.
    case accepted
    /// Spent before: someone holds a copy. The whole family is now revoked.
    case reused(family: String?)
    /// Not issued by this store, revoked, or not a refresh token.
    case refused
}

/// Everything Gatehouse keeps about who may sign in and what they were issued.
///
/// Guarantees every implementation gives, beyond ``UserStore``'s: secrets are held only as
/// ``SecretDigest``s; deleting a user removes their sessions, keys and tokens in the same
/// transaction; ``exchangeRefreshToken(jti:issuing:)`` is atomic, so two concurrent uses of one refresh
/// token can never both be accepted, and a reuse revokes what the first use issued.
public protocol CredentialStore: UserStore {
    /// A number that grows whenever something that can withdraw access changes — a user is
    /// deleted, disabled or changed; a session, key or token is deleted, revoked or altered — by
    /// this process or any other using the same store. Answered from memory: the highest value
    /// this process saw at its own last write or at ``refreshRevision()``. A write by this process
    /// has raised it by the time the write returns.
    var knownRevision: Int64 { get }
    /// Reads the revision from the store (seeing other processes' writes) and returns the new
    /// ``knownRevision``.
    func refreshRevision() async throws(StoreError) -> Int64

    func addSession(_ session: SessionRecord) async throws(StoreError)
    /// Stores what a password sign-in gives (a session and/or the tokens of a new family) in one
    /// transaction, only while the user's password is still `checkedPassword`: a sign-in racing
    /// a password change either comes before it (and is ended by it) or stores nothing. False
    /// when the password changed or the user is gone.
    func addSignIn(session: SessionRecord?, tokens: [IssuedToken], username: String, checkedPassword: PasswordHash) async throws(StoreError) -> Bool
    /// The session and its user (nil when either is gone).
    func session(digest: SecretDigest) async throws(StoreError) -> (SessionRecord, UserRecord)?
    /// False when there was no such session.
    func deleteSession(digest: SecretDigest) async throws(StoreError) -> Bool
    /// Sessions whose ``SessionRecord/publicID`` starts with `prefix`.
    func sessions(publicIDPrefix prefix: String) async throws(StoreError) -> [SessionRecord]
    /// All sessions (of one user when given), newest first.
    func sessions(ofUser username: String?) async throws(StoreError) -> [SessionRecord]
    func deleteSessions(ofUser username: String) async throws(StoreError) -> Int
    /// Sets a new password and, in the same transaction, ends every session of the user and
    /// revokes every token a sign-in gave them (access and refresh tokens; tokens issued by
    /// `gatehouse token issue`, like API keys, are credentials of their own and stay). False when
    /// there is no such user.
    func changePassword(_ hash: PasswordHash, forUser username: String) async throws(StoreError) -> Bool

    /// ``StoreError/conflict(_:)`` when the name or the digest is taken.
    func addAPIKey(_ key: StoredAPIKey) async throws(StoreError)
    func apiKey(digest: SecretDigest) async throws(StoreError) -> (StoredAPIKey, UserRecord)?
    func apiKey(named name: String) async throws(StoreError) -> StoredAPIKey?
    func apiKeys(ofUser username: String?) async throws(StoreError) -> [StoredAPIKey]
    func deleteAPIKey(named name: String) async throws(StoreError) -> Bool
    /// Notes uses (``UseRecorder``) in one transaction: a session's last use, a key's
    /// `last_used`. A later use noted already (by another process) stays.
    func recordUses(_ uses: [CredentialUse: Date]) async throws(StoreError)

    func addToken(_ token: IssuedToken) async throws(StoreError)
    /// The token and its user (nil when either is gone).
    func token(jti: String) async throws(StoreError) -> (IssuedToken, UserRecord)?
    func tokens(ofUser username: String?) async throws(StoreError) -> [IssuedToken]
    func revokeToken(jti: String) async throws(StoreError) -> Bool
    /// Revokes every token of a family (and the token it is named after, for a family started
    /// by a token without one); returns how many were live. An exchange racing with it either
    /// stores its new pair before (and it is revoked too) or finds its token revoked.
    func revokeTokens(family: String) async throws(StoreError) -> Int
    /// Spends a refresh token and, when it was not spent before, stores `issuing` (its
    /// replacements) in the same transaction. A second use revokes the whole family — anything
    /// stored with the first use included.
    func exchangeRefreshToken(jti: String, issuing: [IssuedToken]) async throws(StoreError) -> RefreshExchange

    /// Drops sessions and tokens whose end has passed; returns how many.
    func purgeExpired(now: Date) async throws(StoreError) -> Int

    /// How many of each kind of record the store holds (counted by the database, not loaded).
    func counts() async throws(StoreError) -> StoreCounts

    /// The revision (as ``refreshRevision()``) and the session, the revision never newer than
    /// the record. By default two calls; a store across a network answers both in one round
    /// trip (one snapshot).
    func sessionAndRevision(digest: SecretDigest) async throws(StoreError) -> ((SessionRecord, UserRecord)?, Int64)
    /// As ``sessionAndRevision(digest:)``, for a run-time API key.
    func apiKeyAndRevision(digest: SecretDigest) async throws(StoreError) -> ((StoredAPIKey, UserRecord)?, Int64)
    /// As ``sessionAndRevision(digest:)``, for an issued token.
    func tokenAndRevision(jti: String) async throws(StoreError) -> ((IssuedToken, UserRecord)?, Int64)
}

extension CredentialStore {
    public func sessionAndRevision(digest: SecretDigest) async throws(StoreError) -> ((SessionRecord, UserRecord)?, Int64) {
        let revision = try await refreshRevision()
        return (try await session(digest: digest), revision)
    }

    public func apiKeyAndRevision(digest: SecretDigest) async throws(StoreError) -> ((StoredAPIKey, UserRecord)?, Int64) {
        let revision = try await refreshRevision()
        return (try await apiKey(digest: digest), revision)
    }

    public func tokenAndRevision(jti: String) async throws(StoreError) -> ((IssuedToken, UserRecord)?, Int64) {
        let revision = try await refreshRevision()
        return (try await token(jti: jti), revision)
    }
}

/// How many records a store holds, by kind.
public struct StoreCounts: Sendable, Equatable, CustomStringConvertible {
    public var users: Int
    public var sessions: Int
    public var apiKeys: Int
    public var tokens: Int

    public init(users: Int, sessions: Int, apiKeys: Int, tokens: Int) {
        self.users = users
        self.sessions = sessions
        self.apiKeys = apiKeys
        self.tokens = tokens
    }

    public var isEmpty: Bool { users + sessions + apiKeys + tokens == 0 }

    public var description: String { "\(users) users, \(apiKeys) API keys, \(tokens) tokens, \(sessions) sessions" }
}

/// A ``CredentialStore`` whose calls block (SQLite), with the same guarantees; see
/// ``SynchronousUserStore``.
public protocol SynchronousCredentialStore: CredentialStore, SynchronousUserStore {
    func refreshRevision() throws(StoreError) -> Int64
    func addSession(_ session: SessionRecord) throws(StoreError)
    func addSignIn(session: SessionRecord?, tokens: [IssuedToken], username: String, checkedPassword: PasswordHash) throws(StoreError) -> Bool
    func session(digest: SecretDigest) throws(StoreError) -> (SessionRecord, UserRecord)?
    func deleteSession(digest: SecretDigest) throws(StoreError) -> Bool
    func sessions(publicIDPrefix prefix: String) throws(StoreError) -> [SessionRecord]
    func sessions(ofUser username: String?) throws(StoreError) -> [SessionRecord]
    func deleteSessions(ofUser username: String) throws(StoreError) -> Int
    func changePassword(_ hash: PasswordHash, forUser username: String) throws(StoreError) -> Bool
    func addAPIKey(_ key: StoredAPIKey) throws(StoreError)
    func apiKey(digest: SecretDigest) throws(StoreError) -> (StoredAPIKey, UserRecord)?
    func apiKey(named name: String) throws(StoreError) -> StoredAPIKey?
    func apiKeys(ofUser username: String?) throws(StoreError) -> [StoredAPIKey]
    func deleteAPIKey(named name: String) throws(StoreError) -> Bool
    func recordUses(_ uses: [CredentialUse: Date]) throws(StoreError)
    func addToken(_ token: IssuedToken) throws(StoreError)
    func token(jti: String) throws(StoreError) -> (IssuedToken, UserRecord)?
    func tokens(ofUser username: String?) throws(StoreError) -> [IssuedToken]
    func revokeToken(jti: String) throws(StoreError) -> Bool
    func revokeTokens(family: String) throws(StoreError) -> Int
    func exchangeRefreshToken(jti: String, issuing: [IssuedToken]) throws(StoreError) -> RefreshExchange
    func purgeExpired(now: Date) throws(StoreError) -> Int
    func counts() throws(StoreError) -> StoreCounts
}
