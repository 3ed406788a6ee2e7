import Foundation
import GatehouseCore
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// Gatehouse's shared store: one PostgreSQL database that any number of Gatehouses (and the
/// command line) use at once, through postgres-nio's connection pool.
///
/// Guarantees, beyond ``CredentialStore``'s:
/// - Every write is one transaction; a failure (a constraint, a lost connection) is reported as
///   such and leaves nothing half done. Two writes racing for the same name or the same refresh
///   token are decided by the database (a unique index, a row lock), never by this process.
/// - No call waits longer than ``Settings/callTimeout``: a database that is down or saturated
///   is ``StoreError/failed(_:)`` (503 for a request), never a request that hangs. The pool
///   reconnects on its own when the database is back.
/// - A change another replica makes is seen within milliseconds: a dedicated connection listens
///   on ``PostgresSchema/revisionChannel`` and re-reads the revision at each notification (the
///   authenticator's periodic read stays as the fallback while that connection is down).
/// - Messages name the database as `host:port/database`, never the password.
public final class PostgresStore: CredentialStore {
    /// Where the database is and how to reach it.
    public struct Settings: Sendable, Equatable {
        /// `disable`, `require` or `verify-full`, as in the config (``SharedStoreSettings/TLSMode``).
        public typealias TLSMode = SharedStoreSettings.TLSMode

        public var host: String
        public var port: Int
        public var username: String
        public var password: String?
        public var database: String
        public var tls: TLSMode
        public var caFile: String?
        /// At most this many connections per process (plus one for listening).
        public var poolSize: Int
        /// The longest a store call may take, waiting for a connection included.
        public var callTimeout: Duration
        /// The same for the calls that may rightly take long and must not be given up on while
        /// they may still commit: bringing the schema up to date (possibly waiting for another
        /// replica doing it) and `store copy`.
        public var longCallTimeout: Duration = .seconds(600)

        public init(
            host: String, port: Int = 5432, username: String, password: String? = nil, database: String,
            tls: TLSMode = .disable, caFile: String? = nil, poolSize: Int = 8, callTimeout: Duration = .seconds(3)
        ) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.tls = tls
            self.caFile = caFile
            self.poolSize = poolSize
            self.callTimeout = callTimeout
        }

        /// `host:port/database`: how messages name it (no user, no password).
        public var name: String { "\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }
    }

    public let settings: Settings
    private let client: PostgresClient
    private let logger: Logger
    /// The connections' threads; a call's deadline is scheduled on them too.
    private let eventLoopGroup: any EventLoopGroup
    private let seenRevision = Atomic<Int64>(0)
    private let background: Mutex<Task<Void, Never>?> = Mutex(nil)
    /// The lookups uncached requests make, coalesced (``LookupBatcher``).
    private let sessionLookups: LookupBatcher<(SessionRecord, UserRecord)>
    private let keyLookups: LookupBatcher<(StoredAPIKey, UserRecord)>
    private let tokenLookups: LookupBatcher<(IssuedToken, UserRecord)>

    /// Connects, brings the schema up to date (``PostgresSchema/migrate(_:database:logger:)``)
    /// and reads the revision. Fails with the reason when the database cannot be reached, refuses
    /// the credentials, or was written by a newer Gatehouse.
    ///
    /// - Parameter eventLoopGroup: where the connections run; the server passes its own, so that
    ///   a lookup does not hop to threads of postgres-nio's (nil: postgres-nio's).
    public static func open(
        _ settings: Settings, logger: Logger, eventLoopGroup: (any EventLoopGroup)? = nil
    ) async throws(StoreError) -> PostgresStore {
        let eventLoopGroup = eventLoopGroup ?? PostgresClient.defaultEventLoopGroup
        let tls = try tlsConfiguration(settings)
        // One connection of its own first: when it fails, the pool would only retry and wait,
        // and this says why (refused, no such database, wrong password, certificate).
        try await probe(settings, tls: tls, on: eventLoopGroup.any(), logger: logger)
        let store = PostgresStore(settings: settings, tls: tls, eventLoopGroup: eventLoopGroup, logger: logger)
        do {
            _ = try await store.call("bringing the schema up to date", long: true, changes: true) { client in
                try await PostgresSchema.migrate(client, database: settings.name, logger: logger)
            }
            _ = try await store.refreshRevision()
        } catch {
            store.close()
            throw error
        }
        store.startListening()
        return store
    }

    /// The TLS the settings ask for; nil for none.
    private static func tlsConfiguration(_ settings: Settings) throws(StoreError) -> TLSConfiguration? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        switch settings.tls {
        case .disable:
            return nil
        case .require:
            configuration.certificateVerification = .none
        case .verifyFull:
            if let caFile = settings.caFile {
                do {
                    configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
                } catch {
                    throw .cannotOpen(path: caFile, reason: "not a PEM certificate file (\(error))")
                }
            }
        }
        return configuration
    }

    private static func probe(_ settings: Settings, tls: TLSConfiguration?, on eventLoop: any EventLoop, logger: Logger) async throws(StoreError) {
        do {
            let mode: PostgresConnection.Configuration.TLS = try tls.map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable
            var configuration = PostgresConnection.Configuration(
                host: settings.host, port: settings.port, username: settings.username, password: settings.password,
                database: settings.database, tls: mode)
            configuration.options.connectTimeout = .init(settings.callTimeout)
            let connection = try await PostgresConnection.connect(on: eventLoop, configuration: configuration, id: 0, logger: logger)
            try? await connection.close()
        } catch {
            throw .cannotOpen(path: settings.name, reason: PostgresFailure.reason(error))
        }
    }

    private init(settings: Settings, tls: TLSConfiguration?, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        // One query at a time per kind unless one stalls: several side by side measured slower
        // on a busy core, with some left seconds behind (bench/identity.sh).
        let late = StoreError.failed("\(settings.name) did not answer within \(settings.callTimeout) (reading credentials)")
        sessionLookups = LookupBatcher(deadline: settings.callTimeout, late: late)
        keyLookups = LookupBatcher(deadline: settings.callTimeout, late: late)
        tokenLookups = LookupBatcher(deadline: settings.callTimeout, late: late)
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username, password: settings.password,
            database: settings.database, tls: tls.map { .require($0) } ?? .disable)
        // One more than the pool size: the revision listener holds one for as long as it runs.
        configuration.options.maximumConnections = max(1, settings.poolSize) + 1
        configuration.options.connectTimeout = settings.callTimeout
        configuration.options.additionalStartupParameters = [("application_name", "gatehouse")]
        client = PostgresClient(configuration: configuration, eventLoopGroup: eventLoopGroup, backgroundLogger: logger)
        let client = self.client
        background.withLock { $0 = Task { await client.run() } }
    }

    /// Stops the pool and the listener; later calls fail.
    public func close() {
        background.withLock { task in
            task?.cancel()
            task = nil
        }
    }

    /// As ``close()``, and returns once the pool and the listener have stopped (so that the
    /// event loops they ran on may be shut down after), or after `limit` at most.
    public func shutdown(limit: Duration = .seconds(5)) async {
        let task = background.withLock { task in
            defer { task = nil }
            return task
        }
        guard let task else { return }
        task.cancel()
        let eventLoop = eventLoopGroup.any()
        try? await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            FirstAnswer(continuation).start(
                work: { await task.value }, deadline: TimeAmount(limit), on: eventLoop, late: StoreError.failed("the pool did not stop"))
        }
    }

    deinit { close() }

    // MARK: Calls

    /// Runs `body` against the pool within ``Settings/callTimeout``, with every failure as a
    /// ``StoreError`` that names the database. The answer does not wait for a `body` that
    /// outlives the deadline (a query on a connection cut under it was seen never to end, even
    /// when cancelled): that one is cancelled and left to end on its own.
    ///
    /// - Parameters:
    ///   - long: use ``Settings/longCallTimeout``.
    ///   - changes: `body` writes; a late answer then says the change may still have been made.
    func call<T: Sendable>(
        _ what: String, long: Bool = false, changes: Bool = false, _ body: @escaping @Sendable (PostgresClient) async throws -> T
    ) async throws(StoreError) -> T {
        let client = self.client
        let timeout = long ? settings.longCallTimeout : settings.callTimeout
        let name = settings.name
        let unknown = changes ? "; whether the change was made is not known: look before repeating it" : ""
        let eventLoop = eventLoopGroup.any()
        do {
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let answer = FirstAnswer(continuation)
                answer.start(
                    work: { try await body(client) }, deadline: TimeAmount(timeout), on: eventLoop,
                    late: StoreError.failed("\(name) did not answer within \(timeout) (\(what))\(unknown)"))
            }
        } catch let error as StoreError {
            throw error
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError as? StoreError { throw inner }
            throw Self.mapped(error.closureError ?? error.commitError ?? error.beginError ?? error, database: name, what: what)
        } catch {
            throw Self.mapped(error, database: name, what: what)
        }
    }

    private static func mapped(_ error: any Error, database: String, what: String) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? PSQLError, error.serverInfo?[.sqlState] == "23505" {
            return .conflict("it exists already (\(PostgresFailure.reason(error)))")
        }
        return .failed("\(database): \(what): \(PostgresFailure.reason(error))")
    }

    /// One write transaction; the revision it leaves behind is noted before this returns, so a
    /// cache consulting ``knownRevision`` never serves what this write withdrew.
    private func write<T: Sendable>(
        _ what: String, long: Bool = false, _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws(StoreError) -> T {
        let (answer, revision) = try await transaction(what, long: long) { connection, logger in
            let answer = try await body(connection, logger)
            // The revision moves now, with every changed row locked already (PostgresSchema, v8).
            _ = try await connection.query("SET CONSTRAINTS ALL IMMEDIATE", logger: logger).collect()
            return (answer, try await Self.single(Int64.self, connection.query("SELECT value FROM revision WHERE id = 1", logger: logger)) ?? 0)
        }
        seenRevision.max(revision, ordering: .sequentiallyConsistent)
        return answer
    }

    /// One transaction (for state that withdraws no access, like one-shot tokens).
    func transaction<T: Sendable>(
        _ what: String, long: Bool = false, changes: Bool = true, _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws(StoreError) -> T {
        let logger = self.logger
        return try await call(what, long: long, changes: changes) { client in
            try await client.withTransaction(logger: logger) { connection in try await body(connection, logger) }
        }
    }

    /// One statement outside a transaction (reads, and the bookkeeping writes that withdraw nothing).
    private func statement(_ what: String, _ query: PostgresQuery) async throws(StoreError) -> [PostgresRow] {
        let logger = self.logger
        return try await call(what) { client in try await client.query(query, logger: logger).collect() }
    }

    /// One batch of credential lookups (``LookupBatcher``): a prepared statement (parsed and
    /// planned once per connection) that returns the revision in every row and one row per
    /// record found (a single row of NULLs besides the revision when none is); `key` is the
    /// column the records are found by, `record` decodes one found row.
    private func lookUp<Statement: CredentialLookupStatement, Found: Sendable>(
        _ what: String, _ statement: Statement, key: Int,
        record: @escaping @Sendable (PostgresRandomAccessRow) throws(StoreError) -> Found
    ) async throws(StoreError) -> LookupBatcher<Found>.Answer {
        let logger = self.logger
        let rows = try await call(what) { client in
            var rows: [PostgresRow] = []
            for try await row in try await client.execute(statement, logger: logger) { rows.append(row) }
            return rows
        }
        guard !rows.isEmpty else { throw .corrupt(path: settings.name, reason: "the revision row is missing") }
        var answer = LookupBatcher<Found>.Answer(found: [:], revision: 0)
        for row in rows {
            let cells = row.makeRandomAccess()
            answer.revision = try decoded { try cells.value(0) as Int64 }
            guard cells[key].bytes != nil else { continue }
            let found = try decoded { try cells.value(key) as String }
            // A record this build cannot read (a newer one wrote it) fails its own lookup only.
            do { answer.found[found] = try record(cells) } catch { answer.unreadable[found] = error }
        }
        answer.revision = noted(answer.revision)
        return answer
    }

    static func single<T: PostgresDecodable>(_ type: T.Type, _ rows: PostgresRowSequence) async throws -> T? {
        for try await row in rows { return try row.decode(T.self) }
        return nil
    }

    static func count(_ rows: PostgresRowSequence) async throws -> Int {
        var n = 0
        for try await _ in rows { n += 1 }
        return n
    }

    // MARK: Revision

    public var knownRevision: Int64 { seenRevision.load(ordering: .sequentiallyConsistent) }

    public func refreshRevision() async throws(StoreError) -> Int64 {
        let rows = try await statement("reading the revision", "SELECT value FROM revision WHERE id = 1")
        let revision = try decoded { try rows.first?.decode(Int64.self) } ?? 0
        return seenRevision.max(revision, ordering: .sequentiallyConsistent).newValue
    }

    /// Listens for revision changes on a connection of its own, reconnecting after a failure,
    /// until ``close()``.
    private func startListening() {
        let client = self.client
        let logger = self.logger
        let name = settings.name
        let listener = Task { [weak self] in
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: PostgresSchema.revisionChannel) { notifications in
                            // A change may have happened while no one listened: read once now.
                            _ = try? await self?.refreshRevision()
                            for try await _ in notifications { _ = try? await self?.refreshRevision() }
                        }
                    }
                } catch {
                    if Task.isCancelled { return }
                    logger.debug("listening for revision changes on \(name) stopped: \(PostgresFailure.reason(error)); retrying")
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        background.withLock { task in
            let pool = task
            task = Task {
                await withTaskCancellationHandler {
                    await pool?.value
                    await listener.value
                } onCancel: {
                    pool?.cancel()
                    listener.cancel()
                }
            }
        }
    }

    private func decoded<T>(_ body: () throws -> T) throws(StoreError) -> T {
        do { return try body() } catch let error as StoreError { throw error } catch {
            throw .corrupt(path: settings.name, reason: "a stored value has an unexpected type (\(error))")
        }
    }

    // MARK: Rows

    fileprivate static let userColumns = "username, password_hash, roles, created, disabled"
    fileprivate static let joinedUserColumns = "u.username, u.password_hash, u.roles, u.created, u.disabled"
    fileprivate static let sessionColumns = "s.digest, s.username, s.created, s.last_seen, s.expires, s.remember, s.origin"
    fileprivate static let keyColumns = "k.name, k.digest, k.username, k.roles, k.read_only, k.expires, k.created, k.last_used, k.description"
    fileprivate static let tokenColumns = "t.jti, t.username, t.kind, t.family, t.created, t.expires, t.revoked, t.used, t.description"

    private typealias UserRow = (String, String, String, Double, Bool)
    private typealias SessionRow = (String, String, Double, Double, Double, Bool, String)
    private typealias KeyRow = (String, String, String, String?, Bool, Double?, Double, Double?, String)
    private typealias TokenRow = (String, String, String, String?, Double, Double?, Bool, Bool, String)

    /// The user columns of a lookup row, from column `i` on.
    private static func userRow(_ c: PostgresRandomAccessRow, from i: Int) throws -> UserRow {
        try (c.value(i), c.value(i + 1), c.value(i + 2), c.value(i + 3), c.value(i + 4))
    }

    private func user(_ r: UserRow) throws(StoreError) -> UserRecord {
        guard let hash = PasswordHash(stored: r.1) else {
            throw .corrupt(path: settings.name, reason: "the password hash of user '\(r.0)' is not in a known format")
        }
        return UserRecord(
            username: r.0, passwordHash: hash, roles: r.2.split(separator: ",").map(String.init),
            created: Date(timeIntervalSince1970: r.3), disabled: r.4)
    }

    private func digest(_ text: String) throws(StoreError) -> SecretDigest {
        guard let digest = SecretDigest(parsing: text) else {
            throw .corrupt(path: settings.name, reason: "a stored digest is not in the sha256:<hex> form")
        }
        return digest
    }

    private func session(_ r: SessionRow) throws(StoreError) -> SessionRecord {
        SessionRecord(
            digest: try digest(r.0), username: r.1, created: Date(timeIntervalSince1970: r.2), lastSeen: Date(timeIntervalSince1970: r.3),
            expires: Date(timeIntervalSince1970: r.4), remember: r.5, origin: r.6)
    }

    private func key(_ r: KeyRow) throws(StoreError) -> StoredAPIKey {
        StoredAPIKey(
            name: r.0, username: r.2, roles: r.3.map { $0.split(separator: ",").map(String.init) }, digest: try digest(r.1), readOnly: r.4,
            expires: r.5.map(Date.init(timeIntervalSince1970:)), created: Date(timeIntervalSince1970: r.6),
            lastUsed: r.7.map(Date.init(timeIntervalSince1970:)), description: r.8)
    }

    private func token(_ r: TokenRow) throws(StoreError) -> IssuedToken {
        guard let kind = IssuedTokenKind(rawValue: r.2) else {
            throw .corrupt(path: settings.name, reason: "a token has the unknown kind '\(r.2)'")
        }
        return IssuedToken(
            jti: r.0, username: r.1, kind: kind, family: r.3, created: Date(timeIntervalSince1970: r.4),
            expires: r.5.map(Date.init(timeIntervalSince1970:)), revoked: r.6, used: r.7, description: r.8)
    }

    // MARK: UserStore

    public func addUser(_ user: UserRecord) async throws(StoreError) {
        let inserted = try await write("adding a user") { connection, logger in
            try await Self.count(connection.query(
                """
                INSERT INTO users (username, password_hash, roles, created, disabled)
                VALUES (\(user.username), \(user.passwordHash.description), \(user.roles.joined(separator: ",")),
                        \(user.created.timeIntervalSince1970), \(user.disabled))
                ON CONFLICT (username) DO NOTHING RETURNING 1
                """, logger: logger))
        }
        guard inserted == 1 else { throw .conflict("a user named '\(user.username)' exists already") }
    }

    public func user(named username: String) async throws(StoreError) -> UserRecord? {
        let rows = try await statement("reading a user", "SELECT \(unescaped: Self.userColumns) FROM users WHERE username = \(username)")
        guard let row = rows.first else { return nil }
        return try user(decoded { try row.decode(UserRow.self) })
    }

    public func users() async throws(StoreError) -> [UserRecord] {
        try await records("listing users", "SELECT \(unescaped: Self.userColumns) FROM users ORDER BY username COLLATE \"C\"") { row throws(StoreError) in
            try user(decoded { try row.decode(UserRow.self) })
        }
    }

    public func userCount() async throws(StoreError) -> Int {
        let rows = try await statement("counting users", "SELECT count(*) FROM users")
        return try decoded { try rows.first.map { Int(try $0.decode(Int64.self)) } ?? 0 }
    }

    public func deleteUser(named username: String) async throws(StoreError) -> Bool {
        try await changed("deleting a user", "DELETE FROM users WHERE username = \(username) RETURNING 1") > 0
    }

    public func rehashPassword(_ old: PasswordHash, to new: PasswordHash, forUser username: String) async throws(StoreError) -> Bool {
        try await changed(
            "storing a stronger hash of a password",
            "UPDATE users SET password_hash = \(new.description) WHERE username = \(username) AND password_hash = \(old.description) RETURNING 1") > 0
    }

    public func changePassword(_ hash: PasswordHash, forUser username: String) async throws(StoreError) -> Bool {
        try await write("changing a password") { connection, logger in
            guard try await Self.count(connection.query(
                "UPDATE users SET password_hash = \(hash.description) WHERE username = \(username) RETURNING 1", logger: logger)) == 1
            else { return false }
            try await connection.query("DELETE FROM sessions WHERE username = \(username)", logger: logger)
            try await connection.query(
                """
                UPDATE tokens SET revoked = true
                WHERE username = \(username) AND kind IN (\(IssuedTokenKind.access.rawValue), \(IssuedTokenKind.refresh.rawValue)) AND NOT revoked
                """, logger: logger)
            return true
        }
    }

    public func setDisabled(_ disabled: Bool, forUser username: String) async throws(StoreError) -> Bool {
        try await changed("disabling or enabling a user", "UPDATE users SET disabled = \(disabled) WHERE username = \(username) RETURNING 1") > 0
    }

    public func setRoles(_ roles: [String], forUser username: String) async throws(StoreError) -> Bool {
        try await changed(
            "setting roles", "UPDATE users SET roles = \(roles.joined(separator: ",")) WHERE username = \(username) RETURNING 1") > 0
    }

    /// One statement that may withdraw access, in a write transaction; returns how many rows it returned.
    private func changed(_ what: String, _ query: PostgresQuery) async throws(StoreError) -> Int {
        try await write(what) { connection, logger in try await Self.count(connection.query(query, logger: logger)) }
    }

    // MARK: Sessions

    public func addSession(_ session: SessionRecord) async throws(StoreError) {
        try await write("adding a session") { connection, logger in try await Self.insert(session, connection: connection, logger: logger) }
    }

    private static func insert(_ session: SessionRecord, connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO sessions (digest, username, created, last_seen, expires, remember, origin)
            VALUES (\(session.digest.description), \(session.username), \(session.created.timeIntervalSince1970),
                    \(session.lastSeen.timeIntervalSince1970), \(session.expires.timeIntervalSince1970), \(session.remember), \(session.origin))
            """, logger: logger)
    }

    public func addSignIn(
        session: SessionRecord?, tokens: [IssuedToken], username: String, checkedPassword: PasswordHash
    ) async throws(StoreError) -> Bool {
        try await write("storing a sign-in") { connection, logger in
            // FOR SHARE waits for a password change under way and then reads its outcome; once
            // held, a change waits for this sign-in and then ends what it stored.
            let stored = try await Self.single(
                String.self, connection.query("SELECT password_hash FROM users WHERE username = \(username) FOR SHARE", logger: logger))
            guard stored == checkedPassword.description else { return false }
            if let session { try await Self.insert(session, connection: connection, logger: logger) }
            for token in tokens { try await Self.insert(token, connection: connection, logger: logger) }
            return true
        }
    }

    public func session(digest: SecretDigest) async throws(StoreError) -> (SessionRecord, UserRecord)? {
        try await sessionAndRevision(digest: digest).0
    }

    public func sessionAndRevision(digest: SecretDigest) async throws(StoreError) -> ((SessionRecord, UserRecord)?, Int64) {
        try await sessionLookups.lookUp(digest.description) { keys throws(StoreError) in
            try await self.lookUp("reading sessions", SessionLookup(keys: keys), key: 1) { c throws(StoreError) in
                (try self.session(self.decoded { try (c.value(1), c.value(2), c.value(3), c.value(4), c.value(5), c.value(6), c.value(7)) }),
                 try self.user(self.decoded { try Self.userRow(c, from: 8) }))
            }
        }
    }

    /// A revision read with a record: raises ``knownRevision`` and returns it.
    private func noted(_ revision: Int64) -> Int64 {
        seenRevision.max(revision, ordering: .sequentiallyConsistent)
        return revision
    }

    public func deleteSession(digest: SecretDigest) async throws(StoreError) -> Bool {
        try await changed("ending a session", "DELETE FROM sessions WHERE digest = \(digest.description) RETURNING 1") > 0
    }

    public func sessions(publicIDPrefix prefix: String) async throws(StoreError) -> [SessionRecord] {
        guard !prefix.isEmpty, prefix.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return [] }
        return try await sessions(
            "SELECT \(unescaped: Self.sessionColumns) FROM sessions s WHERE s.digest LIKE \("sha256:\(prefix)%") ORDER BY s.created DESC")
    }

    public func sessions(ofUser username: String?) async throws(StoreError) -> [SessionRecord] {
        try await sessions(
            """
            SELECT \(unescaped: Self.sessionColumns) FROM sessions s
            WHERE \(username)::text IS NULL OR s.username = \(username) ORDER BY s.created DESC
            """)
    }

    private func sessions(_ query: PostgresQuery) async throws(StoreError) -> [SessionRecord] {
        try await records("listing sessions", query) { row throws(StoreError) in try session(decoded { try row.decode(SessionRow.self) }) }
    }

    /// Every row `query` returns, each made a record by `record`.
    private func records<T>(
        _ what: String, _ query: PostgresQuery, _ record: (PostgresRow) throws(StoreError) -> T
    ) async throws(StoreError) -> [T] {
        var records: [T] = []
        for row in try await statement(what, query) { records.append(try record(row)) }
        return records
    }

    public func deleteSessions(ofUser username: String) async throws(StoreError) -> Int {
        try await changed("ending a user's sessions", "DELETE FROM sessions WHERE username = \(username) RETURNING 1")
    }

    // MARK: API keys

    public func addAPIKey(_ key: StoredAPIKey) async throws(StoreError) {
        try await write("adding an API key") { connection, logger in
            // The user row is locked, so a concurrent delete of the user waits for this key (and
            // then removes it with the user), never leaving a key without its user.
            guard try await Self.count(connection.query("SELECT 1 FROM users WHERE username = \(key.username) FOR SHARE", logger: logger)) == 1 else {
                throw StoreError.conflict("there is no user named '\(key.username)'")
            }
            let inserted = try await Self.count(connection.query(
                """
                INSERT INTO api_keys (name, digest, username, roles, read_only, expires, created, last_used, description)
                VALUES (\(key.name), \(key.digest.description), \(key.username), \(key.roles?.joined(separator: ",")), \(key.readOnly),
                        \(key.expires?.timeIntervalSince1970), \(key.created.timeIntervalSince1970), \(key.lastUsed?.timeIntervalSince1970),
                        \(key.description))
                ON CONFLICT (name) DO NOTHING RETURNING 1
                """, logger: logger))
            guard inserted == 1 else { throw StoreError.conflict("an API key named '\(key.name)' exists already") }
        }
    }

    public func apiKey(digest: SecretDigest) async throws(StoreError) -> (StoredAPIKey, UserRecord)? {
        try await apiKeyAndRevision(digest: digest).0
    }

    public func apiKeyAndRevision(digest: SecretDigest) async throws(StoreError) -> ((StoredAPIKey, UserRecord)?, Int64) {
        try await keyLookups.lookUp(digest.description) { keys throws(StoreError) in
            try await self.lookUp("reading API keys", APIKeyLookup(keys: keys), key: 2) { c throws(StoreError) in
                (try self.key(self.decoded {
                    try (c.value(1), c.value(2), c.value(3), c.value(4), c.value(5), c.value(6), c.value(7), c.value(8), c.value(9))
                 }),
                 try self.user(self.decoded { try Self.userRow(c, from: 10) }))
            }
        }
    }

    public func apiKey(named name: String) async throws(StoreError) -> StoredAPIKey? {
        try await keys("SELECT \(unescaped: Self.keyColumns) FROM api_keys k WHERE k.name = \(name)").first
    }

    public func apiKeys(ofUser username: String?) async throws(StoreError) -> [StoredAPIKey] {
        try await keys(
            """
            SELECT \(unescaped: Self.keyColumns) FROM api_keys k
            WHERE \(username)::text IS NULL OR k.username = \(username) ORDER BY k.name COLLATE "C"
            """)
    }

    private func keys(_ query: PostgresQuery) async throws(StoreError) -> [StoredAPIKey] {
        try await records("listing API keys", query) { row throws(StoreError) in try key(decoded { try row.decode(KeyRow.self) }) }
    }

    public func deleteAPIKey(named name: String) async throws(StoreError) -> Bool {
        try await changed("revoking an API key", "DELETE FROM api_keys WHERE name = \(name) RETURNING 1") > 0
    }

    public func recordUses(_ uses: [CredentialUse: Date]) async throws(StoreError) {
        var sessions: [(String, Double)] = []
        var keys: [(String, Double)] = []
        for (use, at) in uses {
            switch use {
            case .session(let digest): sessions.append((digest.description, at.timeIntervalSince1970))
            case .apiKey(let name): keys.append((name, at.timeIntervalSince1970))
            }
        }
        // In one order on every replica, so that two flushes of the same rows lock them alike
        // (as far as the plan follows it; a deadlock aborts one batch, which is bookkeeping only).
        sessions.sort { $0.0 < $1.0 }
        keys.sort { $0.0 < $1.0 }
        let (sessionDigests, sessionTimes) = (sessions.map(\.0), sessions.map(\.1))
        let (keyNames, keyTimes) = (keys.map(\.0), keys.map(\.1))
        // Bookkeeping withdraws nothing: no revision, one transaction for the lot.
        try await transaction("noting uses") { connection, logger in
            if !sessionDigests.isEmpty {
                try await connection.query(
                    """
                    UPDATE sessions s SET last_seen = u.at FROM unnest(\(sessionDigests)::text[], \(sessionTimes)::float8[]) AS u(digest, at)
                    WHERE s.digest = u.digest AND s.last_seen < u.at
                    """, logger: logger)
            }
            if !keyNames.isEmpty {
                try await connection.query(
                    """
                    UPDATE api_keys k SET last_used = u.at FROM unnest(\(keyNames)::text[], \(keyTimes)::float8[]) AS u(name, at)
                    WHERE k.name = u.name AND (k.last_used IS NULL OR k.last_used < u.at)
                    """, logger: logger)
            }
        }
    }

    // MARK: Tokens

    public func addToken(_ token: IssuedToken) async throws(StoreError) {
        try await write("recording a token") { connection, logger in try await Self.insert(token, connection: connection, logger: logger) }
    }

    private static func insert(_ token: IssuedToken, connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO tokens (jti, username, kind, family, created, expires, revoked, used, description)
            VALUES (\(token.jti), \(token.username), \(token.kind.rawValue), \(token.family), \(token.created.timeIntervalSince1970),
                    \(token.expires?.timeIntervalSince1970), \(token.revoked), \(token.used), \(token.description))
            """, logger: logger)
    }

    public func token(jti: String) async throws(StoreError) -> (IssuedToken, UserRecord)? {
        try await tokenAndRevision(jti: jti).0
    }

    public func tokenAndRevision(jti: String) async throws(StoreError) -> ((IssuedToken, UserRecord)?, Int64) {
        try await tokenLookups.lookUp(jti) { keys throws(StoreError) in
            try await self.lookUp("reading tokens", TokenLookup(keys: keys), key: 1) { c throws(StoreError) in
                (try self.token(self.decoded {
                    try (c.value(1), c.value(2), c.value(3), c.value(4), c.value(5), c.value(6), c.value(7), c.value(8), c.value(9))
                 }),
                 try self.user(self.decoded { try Self.userRow(c, from: 10) }))
            }
        }
    }

    public func tokens(ofUser username: String?) async throws(StoreError) -> [IssuedToken] {
        try await records(
            "listing tokens",
            """
            SELECT \(unescaped: Self.tokenColumns) FROM tokens t
            WHERE \(username)::text IS NULL OR t.username = \(username) ORDER BY t.created DESC
            """
        ) { row throws(StoreError) in try token(decoded { try row.decode(TokenRow.self) }) }
    }

    public func revokeToken(jti: String) async throws(StoreError) -> Bool {
        try await changed("revoking a token", "UPDATE tokens SET revoked = true WHERE jti = \(jti) RETURNING 1") > 0
    }

    public func revokeTokens(family: String) async throws(StoreError) -> Int {
        try await write("revoking a token family") { connection, logger in
            try await Self.lockFamily(family, connection, logger)
            return try await Self.count(connection.query(
                "UPDATE tokens SET revoked = true WHERE (family = \(family) OR jti = \(family)) AND NOT revoked RETURNING 1", logger: logger))
        }
    }

    /// The advisory lock class a token family is locked under ("fam").
    static let familyLockClass: Int32 = 0x66_616D

    /// Makes writes to one token family take turns: an exchange's new pair is stored either
    /// before a revocation of the family reads its rows (and is revoked with them) or after it
    /// (and the exchange finds its token revoked). Row locks alone cannot do this: the new rows do
    /// not exist yet when the revocation's statement takes its snapshot.
    private static func lockFamily(_ family: String, _ connection: PostgresConnection, _ logger: Logger) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock(\(familyLockClass), hashtext(\(family)))", logger: logger)
    }

    public func exchangeRefreshToken(jti: String, issuing: [IssuedToken]) async throws(StoreError) -> RefreshExchange {
        try await write("exchanging a refresh token") { connection, logger -> RefreshExchange in
            // The family and the owner first (neither ever changes), to take turns with a
            // revocation of the family and with a change of the owner's password (which holds
            // the user row until it has revoked their tokens: FOR SHARE waits for it, where the
            // key-share lock of the inserts' foreign key would not). Then the row lock makes a
            // second exchange of the same token wait for the first and see it spent. Without a
            // family, its replacements carry its jti as their family.
            var owner: (String?, String)?
            for try await row in try await connection.query("SELECT family, username FROM tokens WHERE jti = \(jti)", logger: logger) {
                owner = try row.decode((String?, String).self)
            }
            guard let (family, username) = owner else { return .refused }
            try await Self.lockFamily(family ?? jti, connection, logger)
            try await connection.query("SELECT 1 FROM users WHERE username = \(username) FOR SHARE", logger: logger)
            var found: (String, String?, Bool, Bool)?
            for try await row in try await connection.query(
                "SELECT kind, family, revoked, used FROM tokens WHERE jti = \(jti) FOR UPDATE", logger: logger)
            {
                found = try row.decode((String, String?, Bool, Bool).self)
            }
            guard let (kind, family, revoked, used) = found, kind == IssuedTokenKind.refresh.rawValue else { return .refused }
            if used {
                if let family {
                    try await connection.query("UPDATE tokens SET revoked = true WHERE family = \(family)", logger: logger)
                } else {
                    // Its replacements carry its jti as their family.
                    try await connection.query("UPDATE tokens SET revoked = true WHERE jti = \(jti) OR family = \(jti)", logger: logger)
                }
                return .reused(family: family)
            }
            if revoked { return .refused }
            try await connection.query("UPDATE tokens SET used = true WHERE jti = \(jti)", logger: logger)
            for token in issuing { try await Self.insert(token, connection: connection, logger: logger) }
            return .accepted
        }
    }

    public func counts() async throws(StoreError) -> StoreCounts {
        let rows = try await statement(
            "counting records",
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions), (SELECT count(*) FROM api_keys), (SELECT count(*) FROM tokens)")
        let (users, sessions, keys, tokens) = try decoded { try rows.first?.decode((Int64, Int64, Int64, Int64).self) } ?? (Int64(0), Int64(0), Int64(0), Int64(0))
        return StoreCounts(users: Int(users), sessions: Int(sessions), apiKeys: Int(keys), tokens: Int(tokens))
    }

    /// Stores everything of another store (``StoreCopy``) in one transaction, into a database
    /// that holds no users, sessions, keys or tokens: on any failure, or when the database is not
    /// empty (checked under a lock, in the same transaction), nothing is stored.
    public func importAll(
        users: [UserRecord], sessions: [SessionRecord], keys: [StoredAPIKey], tokens: [IssuedToken]
    ) async throws(StoreError) {
        let name = settings.name
        try await write("copying records in", long: true) { connection, logger in
            try await connection.query("LOCK TABLE users, sessions, api_keys, tokens IN EXCLUSIVE MODE", logger: logger)
            let held = try await Self.single(
                Int64.self,
                connection.query(
                    "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM sessions) + (SELECT count(*) FROM api_keys) + (SELECT count(*) FROM tokens)",
                    logger: logger)) ?? 0
            guard held == 0 else { throw StoreError.conflict("\(name) is not empty (it holds \(held) records); copy only into an empty database") }
            for batch in users.chunked(1000) {
                try await connection.query(
                    """
                    INSERT INTO users (username, password_hash, roles, created, disabled)
                    SELECT * FROM unnest(\(batch.map(\.username))::text[], \(batch.map(\.passwordHash.description))::text[],
                                         \(batch.map { $0.roles.joined(separator: ",") })::text[], \(batch.map(\.created.timeIntervalSince1970))::float8[],
                                         \(batch.map(\.disabled))::bool[])
                    """, logger: logger)
            }
            for batch in sessions.chunked(1000) {
                try await connection.query(
                    """
                    INSERT INTO sessions (digest, username, created, last_seen, expires, remember, origin)
                    SELECT * FROM unnest(\(batch.map(\.digest.description))::text[], \(batch.map(\.username))::text[],
                                         \(batch.map(\.created.timeIntervalSince1970))::float8[], \(batch.map(\.lastSeen.timeIntervalSince1970))::float8[],
                                         \(batch.map(\.expires.timeIntervalSince1970))::float8[], \(batch.map(\.remember))::bool[], \(batch.map(\.origin))::text[])
                    """, logger: logger)
            }
            // Arrays carry no NULLs here: each optional column comes with a flag saying it is set.
            for batch in keys.chunked(1000) {
                try await connection.query(
                    """
                    INSERT INTO api_keys (name, digest, username, roles, read_only, expires, created, last_used, description)
                    SELECT name, digest, username, CASE WHEN has_roles THEN roles END, read_only, CASE WHEN has_expires THEN expires END,
                           created, CASE WHEN has_last_used THEN last_used END, description
                    FROM unnest(\(batch.map(\.name))::text[], \(batch.map(\.digest.description))::text[], \(batch.map(\.username))::text[],
                                \(batch.map { $0.roles?.joined(separator: ",") ?? "" })::text[], \(batch.map { $0.roles != nil })::bool[],
                                \(batch.map(\.readOnly))::bool[],
                                \(batch.map { $0.expires?.timeIntervalSince1970 ?? 0 })::float8[], \(batch.map { $0.expires != nil })::bool[],
                                \(batch.map(\.created.timeIntervalSince1970))::float8[],
                                \(batch.map { $0.lastUsed?.timeIntervalSince1970 ?? 0 })::float8[], \(batch.map { $0.lastUsed != nil })::bool[],
                                \(batch.map(\.description))::text[])
                        AS t(name, digest, username, roles, has_roles, read_only, expires, has_expires, created, last_used, has_last_used, description)
                    """, logger: logger)
            }
            for batch in tokens.chunked(1000) {
                try await connection.query(
                    """
                    INSERT INTO tokens (jti, username, kind, family, created, expires, revoked, used, description)
                    SELECT jti, username, kind, CASE WHEN has_family THEN family END, created, CASE WHEN has_expires THEN expires END,
                           revoked, used, description
                    FROM unnest(\(batch.map(\.jti))::text[], \(batch.map(\.username))::text[], \(batch.map(\.kind.rawValue))::text[],
                                \(batch.map { $0.family ?? "" })::text[], \(batch.map { $0.family != nil })::bool[],
                                \(batch.map(\.created.timeIntervalSince1970))::float8[],
                                \(batch.map { $0.expires?.timeIntervalSince1970 ?? 0 })::float8[], \(batch.map { $0.expires != nil })::bool[],
                                \(batch.map(\.revoked))::bool[], \(batch.map(\.used))::bool[], \(batch.map(\.description))::text[])
                        AS t(jti, username, kind, family, has_family, created, expires, has_expires, revoked, used, description)
                    """, logger: logger)
            }
        }
    }

    public func purgeExpired(now: Date) async throws(StoreError) -> Int {
        let t = now.timeIntervalSince1970
        return try await write("removing expired sessions and tokens") { connection, logger in
            let sessions = try await Self.count(connection.query("DELETE FROM sessions WHERE expires <= \(t) RETURNING 1", logger: logger))
            // A spent refresh token stays until its family's end: its reuse must still be detected.
            let tokens = try await Self.count(connection.query(
                "DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= \(t) RETURNING 1", logger: logger))
            return sessions + tokens
        }
    }
}

extension Array {
    /// The array in consecutive pieces of at most `size` elements.
    fileprivate func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

/// Whichever comes first of a piece of work and its deadline, given to a continuation exactly
/// once; the loser is cancelled (the work, or the deadline scheduled on an event loop).
private final class FirstAnswer<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var work: Task<Void, Never>?
        var deadline: Scheduled<Void>?
    }
    private let state: Mutex<State>

    init(_ continuation: CheckedContinuation<T, any Error>) {
        state = Mutex(State(continuation: continuation))
    }

    func start(work: @escaping @Sendable () async throws -> T, deadline: TimeAmount, on eventLoop: any EventLoop, late: any Error) {
        let working = Task {
            let result: Result<T, any Error>
            do { result = .success(try await work()) } catch { result = .failure(error) }
            self.give(result)
        }
        let timer = eventLoop.scheduleTask(in: deadline) { self.give(.failure(late)) }
        let settled = state.withLock { state -> Bool in
            state.work = working
            state.deadline = timer
            return state.continuation == nil
        }
        // Answered before the two were noted: nothing cancelled them yet.
        if settled {
            working.cancel()
            timer.cancel()
        }
    }

    private func give(_ result: Result<T, any Error>) {
        let (continuation, work, deadline) = state.withLock { state in
            defer { state.continuation = nil }
            return (state.continuation, state.work, state.deadline)
        }
        guard let continuation else { return }
        work?.cancel()
        deadline?.cancel()
        continuation.resume(with: result)
    }
}

/// Credential lookups by text keys (`$1`, an array), with the revision in the same snapshot in
/// every row: the queries uncached requests make, as prepared statements. The revision row is
/// left-joined, so that a batch of keys none of which is stored still returns it.
private protocol CredentialLookupStatement: PostgresPreparedStatement where Row == PostgresRow {
    var keys: [String] { get }
}

extension CredentialLookupStatement {
    static var bindingDataTypes: [PostgresDataType] { [.textArray] }

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(keys)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

private struct SessionLookup: CredentialLookupStatement {
    static let sql = """
        SELECT r.value, \(PostgresStore.sessionColumns), \(PostgresStore.joinedUserColumns)
        FROM revision r LEFT JOIN (sessions s JOIN users u ON u.username = s.username) ON s.digest = ANY($1)
        WHERE r.id = 1
        """
    let keys: [String]
}

private struct APIKeyLookup: CredentialLookupStatement {
    static let sql = """
        SELECT r.value, \(PostgresStore.keyColumns), \(PostgresStore.joinedUserColumns)
        FROM revision r LEFT JOIN (api_keys k JOIN users u ON u.username = k.username) ON k.digest = ANY($1)
        WHERE r.id = 1
        """
    let keys: [String]
}

private struct TokenLookup: CredentialLookupStatement {
    static let sql = """
        SELECT r.value, \(PostgresStore.tokenColumns), \(PostgresStore.joinedUserColumns)
        FROM revision r LEFT JOIN (tokens t JOIN users u ON u.username = t.username) ON t.jti = ANY($1)
        WHERE r.id = 1
        """
    let keys: [String]
}

extension PostgresRandomAccessRow {
    /// Column `index`, decoded.
    fileprivate func value<T: PostgresDecodable>(_ index: Int) throws -> T { try self[index].decode(T.self) }
}
