import Foundation

/// Runs blocking work (SQLite calls, scrypt) somewhere that is neither an event loop nor Swift's
/// cooperative pool: a thread pool in the server, inline in tests and on the command line.
public protocol BlockingExecutor: Sendable {
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T
}

/// Runs the work on the calling task (tests and the command line, where nothing else waits).
public struct InlineExecutor: BlockingExecutor {
    public init() {}
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T { try body() }
}

/// A ``CredentialStore`` made of a ``SynchronousCredentialStore`` whose calls run on a
/// ``BlockingExecutor``, so a blocking store (SQLite) never holds up an event loop or a task.
///
/// Guarantees: each call is the base store's call, whole (its guarantees hold unchanged);
/// ``knownRevision`` is read from the base directly; an executor that can no longer run work
/// (shut down) is ``StoreError/failed(_:)``, never a crash.
public struct OffloadedCredentialStore: CredentialStore {
    public let base: any SynchronousCredentialStore
    public let executor: any BlockingExecutor

    public init(_ base: any SynchronousCredentialStore, on executor: any BlockingExecutor) {
        self.base = base
        self.executor = executor
    }

    public var knownRevision: Int64 { base.knownRevision }

    private func run<T: Sendable>(_ body: @escaping @Sendable (any SynchronousCredentialStore) throws -> T) async throws(StoreError) -> T {
        let base = self.base
        do {
            return try await executor.run { try body(base) }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .failed("the store's worker threads have stopped (\(error))")
        }
    }

    public func addUser(_ user: UserRecord) async throws(StoreError) { try await run { try $0.addUser(user) } }
    public func user(named username: String) async throws(StoreError) -> UserRecord? { try await run { try $0.user(named: username) } }
    public func users() async throws(StoreError) -> [UserRecord] { try await run { try $0.users() } }
    public func userCount() async throws(StoreError) -> Int { try await run { try $0.userCount() } }
    public func deleteUser(named username: String) async throws(StoreError) -> Bool { try await run { try $0.deleteUser(named: username) } }
    public func rehashPassword(_ old: PasswordHash, to new: PasswordHash, forUser username: String) async throws(StoreError) -> Bool { try await run { try $0.rehashPassword(old, to: new, forUser: username) } }
    public func changePassword(_ hash: PasswordHash, forUser username: String) async throws(StoreError) -> Bool { try await run { try $0.changePassword(hash, forUser: username) } }
    public func setDisabled(_ disabled: Bool, forUser username: String) async throws(StoreError) -> Bool { try await run { try $0.setDisabled(disabled, forUser: username) } }
    public func setRoles(_ roles: [String], forUser username: String) async throws(StoreError) -> Bool { try await run { try $0.setRoles(roles, forUser: username) } }
    public func refreshRevision() async throws(StoreError) -> Int64 { try await run { try $0.refreshRevision() } }
    public func addSession(_ session: SessionRecord) async throws(StoreError) { try await run { try $0.addSession(session) } }
    public func session(digest: SecretDigest) async throws(StoreError) -> (SessionRecord, UserRecord)? { try await run { try $0.session(digest: digest) } }
    public func deleteSession(digest: SecretDigest) async throws(StoreError) -> Bool { try await run { try $0.deleteSession(digest: digest) } }
    public func sessions(publicIDPrefix prefix: String) async throws(StoreError) -> [SessionRecord] { try await run { try $0.sessions(publicIDPrefix: prefix) } }
    public func sessions(ofUser username: String?) async throws(StoreError) -> [SessionRecord] { try await run { try $0.sessions(ofUser: username) } }
    public func deleteSessions(ofUser username: String) async throws(StoreError) -> Int { try await run { try $0.deleteSessions(ofUser: username) } }
    public func addAPIKey(_ key: StoredAPIKey) async throws(StoreError) { try await run { try $0.addAPIKey(key) } }
    public func apiKey(digest: SecretDigest) async throws(StoreError) -> (StoredAPIKey, UserRecord)? { try await run { try $0.apiKey(digest: digest) } }
    public func apiKey(named name: String) async throws(StoreError) -> StoredAPIKey? { try await run { try $0.apiKey(named: name) } }
    public func apiKeys(ofUser username: String?) async throws(StoreError) -> [StoredAPIKey] { try await run { try $0.apiKeys(ofUser: username) } }
    public func deleteAPIKey(named name: String) async throws(StoreError) -> Bool { try await run { try $0.deleteAPIKey(named: name) } }
    public func addToken(_ token: IssuedToken) async throws(StoreError) { try await run { try $0.addToken(token) } }
    public func token(jti: String) async throws(StoreError) -> (IssuedToken, UserRecord)? { try await run { try $0.token(jti: jti) } }
    public func tokens(ofUser username: String?) async throws(StoreError) -> [IssuedToken] { try await run { try $0.tokens(ofUser: username) } }
    public func revokeToken(jti: String) async throws(StoreError) -> Bool { try await run { try $0.revokeToken(jti: jti) } }
    public func addSignIn(session: SessionRecord?, tokens: [IssuedToken], username: String, checkedPassword: PasswordHash) async throws(StoreError) -> Bool {
        try await run { try $0.addSignIn(session: session, tokens: tokens, username: username, checkedPassword: checkedPassword) }
    }
    public func recordUses(_ uses: [CredentialUse: Date]) async throws(StoreError) { try await run { try $0.recordUses(uses) } }
    public func revokeTokens(family: String) async throws(StoreError) -> Int { try await run { try $0.revokeTokens(family: family) } }
    public func exchangeRefreshToken(jti: String, issuing: [IssuedToken]) async throws(StoreError) -> RefreshExchange { try await run { try $0.exchangeRefreshToken(jti: jti, issuing: issuing) } }
    public func purgeExpired(now: Date) async throws(StoreError) -> Int { try await run { try $0.purgeExpired(now: now) } }
    public func counts() async throws(StoreError) -> StoreCounts { try await run { try $0.counts() } }
}
