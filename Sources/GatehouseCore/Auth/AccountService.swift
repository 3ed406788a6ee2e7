import Foundation

/// Why an account operation was refused; each maps to one HTTP status.
public enum AccountError: Error, Equatable, Sendable {
    /// Wrong user name or password (never says which): 401.
    case invalidCredentials
    /// Too many failures for this name or address: 429 with `Retry-After`.
    case lockedOut(retryAfter: Int)
    /// The request itself is malformed; the text names the field: 400.
    case badRequest(String)
    /// The caller may not do this: 403.
    case forbidden(String)
    case notFound(String)
    case conflict(String)
    /// The credential presented to this endpoint is not valid: 401.
    case unauthenticated(AuthenticationFailure)
    /// The store could not be used: 503.
    case unavailable
    /// A bounded table is full for this caller (the text says which): 429 with `Retry-After`.
    case tooMany(String, retryAfter: Int)

    public var status: Int {
        switch self {
        case .invalidCredentials, .unauthenticated: return 401
        case .lockedOut, .tooMany: return 429
        case .badRequest: return 400
        case .forbidden: return 403
        case .notFound: return 404
        case .conflict: return 409
        case .unavailable: return 503
        }
    }

    /// Seconds a 429 asks the client to wait (`Retry-After`).
    public var retryAfter: Int? {
        switch self {
        case .lockedOut(let seconds), .tooMany(_, let seconds): return seconds
        default: return nil
        }
    }

    public var detail: String {
        switch self {
        case .invalidCredentials: return "Wrong user name or password."
        case .lockedOut(let seconds): return "Too many failed sign-ins; try again in \(seconds) seconds."
        case .badRequest(let text), .forbidden(let text), .notFound(let text), .conflict(let text): return text
        case .unauthenticated(let failure): return failure.detail
        case .unavailable: return "Gatehouse cannot use its store right now."
        case .tooMany(let text, _): return text
        }
    }
}

/// A pair of tokens handed out at sign-in or refresh.
public struct TokenPair: Sendable {
    public let access: String
    public let refresh: String
}

/// A session just opened: the cookie value (shown once) and its record.
public struct OpenedSession: Sendable {
    public let secret: String
    public let record: SessionRecord
}

/// A key just created: the key itself (shown once) and its record.
public struct CreatedKey: Sendable {
    public let key: String
    public let record: StoredAPIKey
}

/// What users can do with their accounts: sign in and out, refresh tokens, manage keys, and
/// what admins can do with users. Used by the login page and the JSON API alike.
///
/// Guarantees:
/// - A password is checked with scrypt off the event loop; an unknown user name costs one scrypt
///   run too, so timing does not tell whether a name exists; a disabled user's right password is
///   refused with the same answer as a wrong one.
/// - Failed attempts count toward ``LoginThrottle``; a locked-out name or address is refused
///   before its password is even checked.
/// - Every secret it creates (session id, token id, key) is 256 random bits, stored as a digest.
/// - A refresh token is exchanged at most once (``CredentialStore/exchangeRefreshToken(jti:issuing:)``),
///   and its replacements are stored in the same transaction; its reuse revokes its family —
///   the replacements included, whatever the order of concurrent requests — and the answer is 401.
public final class AccountService: Sendable {
    public let credentials: StoredCredentialAuthenticator
    public let throttle: any LoginGuard
    public let passwordPolicy: PasswordPolicy
    /// The scrypt cost of new password hashes (stored hashes keep their own and are raised at
    /// the next sign-in when lower).
    public let passwordParameters: ScryptParameters
    /// Compared against when the user does not exist, so that case costs one scrypt run too.
    private let decoyHash: PasswordHash?
    /// Where sign-ins, lockouts, logouts and account changes are recorded; nil records nothing.
    public let audit: AuditLog?
    /// Where scrypt runs (a thread pool in the server: a check takes tens of milliseconds).
    public let passwordWork: any BlockingExecutor

    public init(
        credentials: StoredCredentialAuthenticator, throttle: any LoginGuard, passwordPolicy: PasswordPolicy,
        passwordParameters: ScryptParameters = .interactive, passwordWork: any BlockingExecutor = InlineExecutor(), audit: AuditLog? = nil,
        appKeyRequests: any AppKeyRequestBook = AppKeyPairing()
    ) {
        self.appKeyRequests = appKeyRequests
        self.audit = audit
        self.passwordWork = passwordWork
        self.credentials = credentials
        self.throttle = throttle
        self.passwordPolicy = passwordPolicy
        self.passwordParameters = passwordParameters
        self.decoyHash = PasswordHash.decoy(parameters: passwordParameters)
    }

    private var store: any CredentialStore { credentials.store }

    /// Where OctoPrint app-key requests wait (in memory, or shared by replicas with the store).
    public let appKeyRequests: any AppKeyRequestBook

    /// The store's answer, with its failures as ``AccountError``s.
    private func stored<T>(_ body: () async throws -> T) async throws(AccountError) -> T {
        do {
            return try await body()
        } catch StoreError.conflict(let what) {
            throw .conflict(what)
        } catch {
            throw .unavailable
        }
    }

    /// Whether `password` is `user`'s (or, with no user, the same work against the decoy hash, so
    /// that an unknown name takes as long as a known one), checked on ``passwordWork``.
    private func verify(_ password: String, against user: UserRecord?) async throws(AccountError) -> Bool {
        let hash = user?.passwordHash ?? decoyHash
        do {
            return try await passwordWork.run { hash?.verify(password) ?? false } && user != nil
        } catch {
            throw .unavailable
        }
    }

    // MARK: Signing in

    /// The user whose name and password these are. `via` names the door (`login_page`, `api`,
    /// `provision`, `password_change`, `basic`) in the audit log.
    public func checkPassword(username: String, password: String, client: IPAddress?, via: String = "api", now: Date) async throws(AccountError) -> UserRecord {
        try await verifyPassword(username: username, password: password, client: client, via: via, now: now).user
    }

    /// ``checkPassword(username:password:client:via:now:)``, and the store revision read before the user was.
    /// A successful HTTP Basic check is not audited (it recurs every minute); its failures are.
    private func verifyPassword(
        username: String, password: String, client: IPAddress?, via: String, now: Date
    ) async throws(AccountError) -> (user: UserRecord, revision: Int64) {
        // Refused before any check (and not audited: a flood of refused attempts must not flood
        // the audit log; the lockout itself was recorded when it began).
        let ticket: LoginTicket
        switch await throttle.admit(username: username, client: client, now: now) {
        case .granted(let granted): ticket = granted
        case .wait(let seconds): throw .lockedOut(retryAfter: seconds)
        case .unavailable: throw .unavailable
        }
        let checked: (user: UserRecord?, known: Bool, revision: Int64)
        do {
            let store = self.store
            let (revision, found) = try await stored { () async throws in
                (try await store.refreshRevision(), Identity.isValidName(username) ? try await store.user(named: username) : nil)
            }
            checked = (try await verify(password, against: found) ? found : nil, found != nil, revision)
        } catch {
            await throttle.settle(ticket, .abandoned, now: now)
            throw error
        }
        guard let user = checked.user, !user.disabled else {
            let lockout = await throttle.settle(ticket, .failed, now: now)
            // Only a name the store knows is written: what a client typed as a name may be a
            // password or a key typed into the wrong field.
            let named = checked.known ? username : nil
            let reason = !checked.known ? "unknown user name" : checked.user == nil ? "wrong password" : "user disabled"
            audit?.record(.loginFailed, user: named, client: client, via: via, reason: reason, at: now)
            if let lockout { audit?.record(.lockout, user: named, client: client, via: via, reason: "locked for \(lockout) s", at: now) }
            throw .invalidCredentials
        }
        let revision = checked.revision
        await throttle.settle(ticket, .succeeded, now: now)
        if via != "basic" { audit?.record(.login, user: user.username, client: client, via: via, at: now) }
        var checkedUser = user
        if user.passwordHash.needsRehash(current: passwordParameters), let hash = try? PasswordHash.make(password, parameters: passwordParameters),
            (try? await store.rehashPassword(user.passwordHash, to: hash, forUser: username)) == true
        {
            // Only over the hash just checked: a password changed meanwhile stays changed. The
            // sign-in goes on with the hash now stored (it is checked again when stored).
            checkedUser.passwordHash = hash
        }
        return (checkedUser, revision)
    }

    // MARK: Identifying requests

    /// The identity a credential the gate could not settle on its own stands for
    /// (``GateDecision/lookUp(_:)``), answered from memory when possible (never blocks then).
    ///
    /// An HTTP Basic password is tried as an API key first, then as the user's password: a
    /// locked-out name or address is refused before the check (429), a wrong pair counts toward
    /// the lockout, and a right one is remembered for ``StoredCredentialAuthenticator/passwordMemory``
    /// under a keyed hash (dropped at once when the user or their password changes in the store),
    /// so a client sending Basic on every request costs one scrypt run a minute, not one a request.
    public func identifyFromMemory(_ pending: PendingAuthentication, now: Date) -> Result<Identity, AuthenticationFailure>? {
        // A locked name or address is refused before memory is consulted: otherwise a remembered
        // right password would pass while wrong guesses got 429, telling them apart at no cost.
        // A shared throttle (replicas) is asked on the asynchronous path, ``identify(_:now:)``.
        if case .basic(let username) = pending.kind {
            guard let local = throttle as? LoginThrottle else { return nil }
            if let seconds = local.retryAfter(username: username, client: pending.client, now: now) { return .failure(.lockedOut(retryAfter: seconds)) }
        }
        return credentials.authenticateFromMemory(pending.kind, secret: pending.secret, digest: pending.digest, now: now)
    }

    /// See ``identifyFromMemory(_:now:)``; this one asks the store (and scrypt) when memory cannot answer.
    public func identify(_ pending: PendingAuthentication, now: Date) async -> Result<Identity, AuthenticationFailure> {
        if case .basic(let username) = pending.kind, !(throttle is LoginThrottle) {
            do {
                if let seconds = try await throttle.lockedFor(username: username, client: pending.client, now: now) {
                    return .failure(.lockedOut(retryAfter: seconds))
                }
            } catch {
                return .failure(.storeUnavailable)
            }
        } else if let answer = identifyFromMemory(pending, now: now) {
            return answer
        }
        let asStored = await credentials.authenticate(pending.kind, secret: pending.secret, digest: pending.digest, now: now)
        guard case .basic(let username) = pending.kind, case .failure(.unknownAPIKey) = asStored else { return asStored }
        do {
            let (user, revision) = try await verifyPassword(username: username, password: pending.secret, client: pending.client, via: "basic", now: now)
            credentials.rememberPassword(of: user, username: username, password: pending.secret, readAt: revision, now: now)
            return .success(VerifiedPassword.identity(user))
        } catch {
            switch error {
            case .lockedOut(let seconds): return .failure(.lockedOut(retryAfter: seconds))
            case .invalidCredentials: return .failure(.wrongPassword)
            default: return .failure(.storeUnavailable)
            }
        }
    }

    public func openSession(for user: UserRecord, remember: Bool, client: IPAddress?, now: Date) async throws(AccountError) -> OpenedSession {
        let secret = RandomSecret.make()
        let record = SessionRecord(
            digest: SecretDigest.of(secret), username: user.username, created: now, lastSeen: now,
            expires: now.addingTimeInterval(credentials.sessions.lifetime(remember: remember)), remember: remember,
            origin: client?.description ?? "local")
        // Only while the password just checked is still the user's (a change may have come since).
        guard try await stored({ try await store.addSignIn(session: record, tokens: [], username: user.username, checkedPassword: user.passwordHash) })
        else { throw .invalidCredentials }
        return OpenedSession(secret: secret, record: record)
    }

    /// Ends the session this cookie value names, at once. True when there was one.
    @discardableResult
    public func closeSession(secret: String, client: IPAddress? = nil, now: Date = Date()) async throws(AccountError) -> Bool {
        let digest = SecretDigest.of(secret)
        let store = self.store
        let user = try await stored { () async throws -> String? in
            let owner = try await store.session(digest: digest)?.1.username
            return try await store.deleteSession(digest: digest) ? owner : nil
        }
        if let user { audit?.record(.logout, user: user, client: client, via: "session", at: now) }
        return user != nil
    }

    /// A new access and refresh token of a new family (at sign-in).
    public func issueTokens(for user: UserRecord, now: Date) async throws(AccountError) -> TokenPair {
        let (pair, records) = try await signTokens(username: user.username, roles: user.roles, family: RandomSecret.make(), now: now)
        guard try await stored({ try await store.addSignIn(session: nil, tokens: records, username: user.username, checkedPassword: user.passwordHash) })
        else { throw .invalidCredentials }
        return pair
    }

    /// A signed access and refresh token of `family`, and their records (not yet stored).
    private func signTokens(username: String, roles: [String], family: String, now: Date) async throws(AccountError) -> (TokenPair, [IssuedToken]) {
        let tokens = credentials.tokens
        let access: SignedToken
        let refresh: SignedToken
        do {
            access = try await tokens.issue(kind: .access, username: username, roles: roles, family: family, now: now)
            refresh = try await tokens.issue(kind: .refresh, username: username, roles: roles, family: family, now: now)
        } catch {
            throw .unavailable
        }
        return (TokenPair(access: access.token, refresh: refresh.token), [access.record, refresh.record])
    }

    /// A long-lived access token (`gatehouse token issue`); `lifetime` nil never expires.
    public func issueLongLivedToken(for username: String, lifetime: TimeInterval?, description: String, now: Date) async throws(AccountError) -> SignedToken {
        guard let user = try await stored({ try await store.user(named: username) }) else {
            throw .notFound("There is no user named '\(username)'.")
        }
        let signed: SignedToken
        do {
            signed = try await credentials.tokens.issue(
                kind: .longLived, username: user.username, roles: user.roles, family: nil, now: now,
                lifetime: .some(lifetime), description: description)
        } catch {
            throw .unavailable
        }
        try await stored { try await store.addToken(signed.record) }
        audit?.record(.tokenIssued, user: user.username, actor: "command line", name: String(signed.record.jti.prefix(8)), at: now)
        return signed
    }

    /// Exchanges a refresh token for a new pair of the same family.
    public func refresh(_ refreshToken: String, now: Date) async throws(AccountError) -> (UserRecord, TokenPair) {
        let honoured: (VerifiedToken, IssuedToken, UserRecord)
        do {
            switch try await credentials.honouredToken(refreshToken, now: now) {
            case .success(let value): honoured = value
            case .failure(let failure): throw AccountError.unauthenticated(failure)
            }
        } catch let error as AccountError {
            throw error
        } catch {
            throw .unavailable
        }
        let (verified, record, user) = honoured
        guard verified.kind == .refresh, record.kind == .refresh else {
            throw .unauthenticated(.invalidToken(reason: "this is not a refresh token"))
        }
        let jti = record.jti
        // The new pair is stored in the same transaction that spends the old token: a reuse that
        // comes after it (however the requests interleave) revokes the new pair with the family.
        // A token without a family (an older store's) starts one named after itself, so a reuse
        // still reaches what it was exchanged for.
        let (pair, replacements) = try await signTokens(username: user.username, roles: user.roles, family: record.family ?? record.jti, now: now)
        switch try await stored({ try await store.exchangeRefreshToken(jti: jti, issuing: replacements) }) {
        case .accepted:
            return (user, pair)
        case .reused:
            throw .unauthenticated(.invalidToken(reason: "this refresh token was used before; all tokens of its sign-in are now revoked"))
        case .refused:
            throw .unauthenticated(.invalidToken(reason: "it has been revoked"))
        }
    }

    /// Logs a token holder out: the token's whole family (the sign-in it came from) is revoked.
    public func revokeTokenFamily(_ token: String, now: Date) async throws(AccountError) {
        guard case .success(let (_, record, _))? = try? await credentials.honouredToken(token, now: now) else { return }
        // A token without a family (an older store's) may have been exchanged already: its
        // replacements carry its jti as their family.
        let family = record.family ?? record.jti
        _ = try await stored { try await store.revokeTokens(family: family) }
        audit?.record(.logout, user: record.username, via: "token", at: now)
    }

    /// A one-shot token standing for `identity`, within what it may issue (``IssuingPolicy``):
    /// the token carries the caller's roles and read-only flag and ends no later than it.
    public func oneShotToken(for identity: Identity, now: Date) async throws(AccountError) -> String {
        let grant = try IssuingPolicy.bound(CredentialGrant(roles: identity.roles, readOnly: identity.readOnly), by: identity, now: now)
        let holder = Identity(
            user: identity.user, roles: grant.roles ?? identity.roles, method: identity.method, readOnly: grant.readOnly,
            source: identity.source, expires: grant.expires)
        let tokens = credentials.oneShotTokens
        let wait = Int(tokens.lifetime.rounded(.up))
        switch await tokens.issue(for: holder, now: now) {
        case .success(let token): return token
        case .failure(.unavailable): throw .unavailable
        case .failure(.credentialLimit):
            throw .tooMany("Too many one-shot tokens outstanding for this credential of \(identity.user) (at most \(tokens.perCredential), each good for \(wait) s); use one or wait.", retryAfter: wait)
        case .failure(.userLimit):
            throw .tooMany("Too many one-shot tokens outstanding for \(identity.user) (at most \(tokens.perUser) over all their credentials, each good for \(wait) s); use one or wait.", retryAfter: wait)
        case .failure(.capacity):
            throw .tooMany("Gatehouse holds too many one-shot tokens right now; try again in \(wait) s.", retryAfter: wait)
        }
    }

    // MARK: Users

    public func user(named username: String) async throws(AccountError) -> UserRecord? {
        try await stored { try await store.user(named: username) }
    }

    public func users() async throws(AccountError) -> [UserRecord] {
        try await stored { try await store.users() }
    }

    public func createUser(username: String, password: String, roles: [String], actor: String? = nil, now: Date) async throws(AccountError) -> UserRecord {
        guard Identity.isValidName(username) else {
            throw .badRequest("username: must be 1-64 characters of A-Z a-z 0-9 . _ @ -")
        }
        guard roles.allSatisfy(Identity.isValidName) else { throw .badRequest("roles: each must be 1-64 characters of A-Z a-z 0-9 . _ @ -") }
        let hash = try makeHash(password, field: "password")
        let record = UserRecord(username: username, passwordHash: hash, roles: roles, created: now)
        try await stored { try await store.addUser(record) }
        audit?.record(.userCreated, user: username, actor: actor, reason: "roles: " + roles.joined(separator: ","), at: now)
        return record
    }

    public func deleteUser(named username: String, actor: String? = nil, now: Date = Date()) async throws(AccountError) {
        guard try await stored({ try await store.deleteUser(named: username) }) else {
            throw .notFound("There is no user named '\(username)'.")
        }
        audit?.record(.userDeleted, user: username, actor: actor, at: now)
    }

    /// Changes a password after checking the current one; every session and sign-in token of
    /// the user ends with it (``CredentialStore/changePassword(_:forUser:)``, one transaction).
    public func changePassword(username: String, current: String, new: String, client: IPAddress?, now: Date) async throws(AccountError) {
        _ = try await checkPassword(username: username, password: current, client: client, via: "password_change", now: now)
        let hash = try makeHash(new, field: "new_password")
        guard try await stored({ try await store.changePassword(hash, forUser: username) }) else {
            throw .notFound("There is no user named '\(username)'.")
        }
        audit?.record(.passwordChanged, user: username, actor: username, client: client, at: now)
    }

    private func makeHash(_ password: String, field: String) throws(AccountError) -> PasswordHash {
        do {
            try passwordPolicy.check(password)
            return try PasswordHash.make(password, parameters: passwordParameters)
        } catch {
            throw .badRequest("\(field): \(error)")
        }
    }

    // MARK: API keys

    public func createKey(
        owner: String, name: String?, roles: [String]?, readOnly: Bool, expires: Date?, description: String, actor: String? = nil, now: Date
    ) async throws(AccountError) -> CreatedKey {
        let keyName = name ?? "key-" + String(RandomSecret.make().prefix(8)).replacingOccurrences(of: "-", with: "x").replacingOccurrences(of: "_", with: "x")
        guard Identity.isValidName(keyName) else { throw .badRequest("name: must be 1-64 characters of A-Z a-z 0-9 . _ @ -") }
        if let roles, !roles.allSatisfy(Identity.isValidName) { throw .badRequest("roles: each must be 1-64 characters of A-Z a-z 0-9 . _ @ -") }
        guard description.utf8.count <= 200 else { throw .badRequest("description: at most 200 bytes") }
        if let expires, expires <= now { throw .badRequest("expires: must be in the future") }
        let key = APIKeyGenerator.generate()
        let record = StoredAPIKey(
            name: keyName, username: owner, roles: roles, digest: SecretDigest.of(key), readOnly: readOnly,
            expires: expires, created: now, description: description)
        try await stored { try await store.addAPIKey(record) }
        audit?.record(.keyCreated, user: owner, actor: actor ?? owner, name: keyName, reason: readOnly ? "read-only" : nil, at: now)
        return CreatedKey(key: key, record: record)
    }

    public func keys(ofUser username: String?) async throws(AccountError) -> [StoredAPIKey] {
        try await stored { try await store.apiKeys(ofUser: username) }
    }

    /// Revokes a key; only its owner or an admin may.
    public func revokeKey(named name: String, by caller: Identity, now: Date = Date()) async throws(AccountError) {
        let isAdmin = caller.roles.contains("admin")
        let store = self.store
        let owner = try await stored { () async throws -> String? in
            guard let key = try await store.apiKey(named: name), isAdmin || key.username == caller.user else { return nil }
            return try await store.deleteAPIKey(named: key.name) ? key.username : nil
        }
        guard let owner else { throw .notFound("There is no key named '\(name)' that you may revoke.") }
        audit?.record(.keyRevoked, user: owner, actor: caller.user, name: name, at: now)
    }

    /// NetBox's token provisioning: a user name and password buy an API key.
    public func provision(
        username: String, password: String, expires: Date?, writeEnabled: Bool, description: String, client: IPAddress?, now: Date
    ) async throws(AccountError) -> CreatedKey {
        let user = try await checkPassword(username: username, password: password, client: client, via: "provision", now: now)
        return try await createKey(
            owner: user.username, name: nil, roles: nil, readOnly: !writeEnabled, expires: expires, description: description, now: now)
    }
}
