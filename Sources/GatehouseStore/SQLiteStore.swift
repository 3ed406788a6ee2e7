import Foundation
import GRDB
import GatehouseCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Gatehouse's embedded store: one SQLite file, opened through GRDB in WAL mode.
///
/// Guarantees:
/// - The file is created with mode 0600 in a directory created with mode 0700; an existing file
///   readable by others is refused, never silently used.
/// - Versioned migrations run at open; a file written by a newer Gatehouse, a file that is not
///   a Gatehouse store, and a damaged file are each a clear ``StoreError`` — never replaced by a
///   new empty store. A store file that disappeared from a directory that held one (its marker
///   file is still there) is ``StoreError/missing(path:)``, not a fresh start.
/// - Every write is one transaction with `synchronous=FULL`: a crash or a kill mid-write loses
///   nothing that was committed and never leaves half a change.
/// - Several processes may use the file at once (the server and the CLI): writers wait for
///   each other for up to five seconds.
public final class SQLiteStore: SynchronousCredentialStore {
    public let path: String
    private let pool: DatabasePool
    /// The highest ``knownRevision`` this process has read.
    private let seenRevision = Atomic<Int64>(0)

    /// The schema steps this build knows, oldest first. Never edit a step that has shipped: add one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-users") { db in
            try db.create(table: "users") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("username", .text).notNull().unique()
                t.column("password_hash", .text).notNull()
                t.column("roles", .text).notNull()
                t.column("created", .double).notNull()
                t.column("disabled", .boolean).notNull().defaults(to: false)
            }
        }
        migrator.registerMigration("v2-credentials") { db in
            try db.create(table: "sessions") { t in
                t.primaryKey("digest", .text)
                t.column("username", .text).notNull().indexed()
                    .references("users", column: "username", onDelete: .cascade)
                t.column("created", .double).notNull()
                t.column("last_seen", .double).notNull()
                t.column("expires", .double).notNull()
                t.column("remember", .boolean).notNull()
                t.column("origin", .text).notNull()
            }
            try db.create(table: "api_keys") { t in
                t.primaryKey("name", .text)
                t.column("digest", .text).notNull().unique()
                t.column("username", .text).notNull().indexed()
                    .references("users", column: "username", onDelete: .cascade)
                t.column("roles", .text)
                t.column("read_only", .boolean).notNull()
                t.column("expires", .double)
                t.column("created", .double).notNull()
                t.column("last_used", .double)
                t.column("description", .text).notNull()
            }
            try db.create(table: "tokens") { t in
                t.primaryKey("jti", .text)
                t.column("username", .text).notNull().indexed()
                    .references("users", column: "username", onDelete: .cascade)
                t.column("kind", .text).notNull()
                t.column("family", .text).indexed()
                t.column("created", .double).notNull()
                t.column("expires", .double)
                t.column("revoked", .boolean).notNull()
                t.column("used", .boolean).notNull()
                t.column("description", .text).notNull()
            }
        }
        migrator.registerMigration("v3-revision") { db in
            // One counter, bumped in the same transaction as every change that can withdraw access,
            // whichever process makes it (the server, `gatehouse key revoke`, …). Inserts cannot
            // withdraw access and bookkeeping columns (`last_seen`, `last_used`, `used`) are left
            // out, so a busy server does not bump it. A new column that can withdraw access must
            // join its table's `UPDATE OF` list in a new migration.
            try db.execute(sql: """
                CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
                INSERT INTO revision (id, value) VALUES (1, 0);
                CREATE TRIGGER users_updated AFTER UPDATE ON users BEGIN UPDATE revision SET value = value + 1; END;
                CREATE TRIGGER users_deleted AFTER DELETE ON users BEGIN UPDATE revision SET value = value + 1; END;
                CREATE TRIGGER sessions_updated AFTER UPDATE OF digest, username, expires, remember ON sessions
                    BEGIN UPDATE revision SET value = value + 1; END;
                CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions BEGIN UPDATE revision SET value = value + 1; END;
                CREATE TRIGGER api_keys_updated AFTER UPDATE OF name, digest, username, roles, read_only, expires ON api_keys
                    BEGIN UPDATE revision SET value = value + 1; END;
                CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys BEGIN UPDATE revision SET value = value + 1; END;
                CREATE TRIGGER tokens_updated AFTER UPDATE OF jti, username, kind, family, expires, revoked ON tokens
                    BEGIN UPDATE revision SET value = value + 1; END;
                CREATE TRIGGER tokens_deleted AFTER DELETE ON tokens BEGIN UPDATE revision SET value = value + 1; END;
                """)
        }
        return migrator
    }

    /// Opens (or, on first use, creates) the store at `path`.
    public init(path: String) throws(StoreError) {
        self.path = path
        try Self.prepareFile(at: path)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw Self.openError(error, path: path)
        }
        try migrate()
        _ = try refreshRevision()
    }

    // MARK: Opening

    static func markerPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).gatehouse-store").path
    }

    private static func prepareFile(at path: String) throws(StoreError) {
        let fm = FileManager.default
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if !fm.fileExists(atPath: directory) {
            do {
                try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw .cannotOpen(path: directory, reason: "cannot create the directory (\(error.localizedDescription))")
            }
        }
        let marker = markerPath(for: path)
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFREG else { throw .cannotOpen(path: path, reason: "not a regular file") }
            let mode = info.st_mode & 0o777
            guard mode & 0o077 == 0 else { throw .insecurePermissions(path: path, mode: String(mode, radix: 8)) }
            if !fm.fileExists(atPath: marker) { _ = fm.createFile(atPath: marker, contents: Data(), attributes: [.posixPermissions: 0o600]) }
            return
        }
        guard errno == ENOENT else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        if fm.fileExists(atPath: marker) { throw .missing(path: path) }
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        close(fd)
        guard fm.createFile(atPath: marker, contents: Data(), attributes: [.posixPermissions: 0o600]) else {
            throw .cannotOpen(path: marker, reason: "cannot write the store marker next to the database")
        }
    }

    private func migrate() throws(StoreError) {
        let migrator = Self.migrator
        do {
            let (superseded, applied, foreignTables) = try pool.read { db in
                let applied = try db.tableExists("grdb_migrations") ? try migrator.appliedIdentifiers(db) : []
                let tables = try String.fetchAll(
                    db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                return (try migrator.hasBeenSuperseded(db), applied, tables)
            }
            if applied.isEmpty && !foreignTables.isEmpty {
                throw StoreError.corrupt(path: path, reason: "it is an SQLite database of another program (tables: \(foreignTables.sorted().joined(separator: ", ")))")
            }
            if superseded {
                let unknown = applied.subtracting(migrator.migrations).sorted()
                throw StoreError.newerSchema(path: path, unknownMigrations: unknown)
            }
            try migrator.migrate(pool)
        } catch let error as StoreError {
            throw error
        } catch {
            throw Self.openError(error, path: path)
        }
    }

    private static func openError(_ error: Error, path: String) -> StoreError {
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_NOTADB: return .corrupt(path: path, reason: "the file is not an SQLite database")
            case .SQLITE_CORRUPT: return .corrupt(path: path, reason: "the database is damaged")
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY: return .cannotOpen(path: path, reason: error.message ?? "\(error.resultCode)")
            default: return .failed("\(path): \(error.message ?? "\(error.resultCode)")")
            }
        }
        return .failed("\(path): \(error)")
    }

    private func mapped(_ error: Error) -> StoreError {
        if let error = error as? StoreError { return error }
        return Self.openError(error, path: path)
    }

    private func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do { return try pool.read(body) } catch { throw mapped(error) }
    }

    /// One write transaction. The revision it leaves behind is noted before this returns, so a
    /// cache consulting ``knownRevision`` never serves what this write withdrew.
    private func write<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            let (result, revision) = try pool.write { db in (try body(db), try Self.revision(in: db)) }
            seenRevision.max(revision, ordering: .sequentiallyConsistent)
            return result
        } catch { throw mapped(error) }
    }

    private static func revision(in db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT value FROM revision WHERE id = 1") ?? 0
    }

    // MARK: Revision

    public var knownRevision: Int64 { seenRevision.load(ordering: .sequentiallyConsistent) }

    public func refreshRevision() throws(StoreError) -> Int64 {
        let revision = try read { db in try Self.revision(in: db) }
        return seenRevision.max(revision, ordering: .sequentiallyConsistent).newValue
    }

    // MARK: UserStore

    public func addUser(_ user: UserRecord) throws(StoreError) {
        try write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE username = ?", arguments: [user.username]) == true {
                throw StoreError.conflict("a user named '\(user.username)' exists already")
            }
            try db.execute(
                sql: "INSERT INTO users (username, password_hash, roles, created, disabled) VALUES (?, ?, ?, ?, ?)",
                arguments: [user.username, user.passwordHash.description, user.roles.joined(separator: ","),
                            user.created.timeIntervalSince1970, user.disabled])
        }
    }

    public func user(named username: String) throws(StoreError) -> UserRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE username = ?", arguments: [username]).map(userRecord)
        }
    }

    public func users() throws(StoreError) -> [UserRecord] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM users ORDER BY username").map(userRecord) }
    }

    public func userCount() throws(StoreError) -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM users") ?? 0 }
    }

    public func deleteUser(named username: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(sql: "DELETE FROM users WHERE username = ?", arguments: [username])
            return db.changesCount > 0
        }
    }

    public func rehashPassword(_ old: PasswordHash, to new: PasswordHash, forUser username: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(
                sql: "UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?",
                arguments: [new.description, username, old.description])
            return db.changesCount > 0
        }
    }

    public func changePassword(_ hash: PasswordHash, forUser username: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(sql: "UPDATE users SET password_hash = ? WHERE username = ?", arguments: [hash.description, username])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "DELETE FROM sessions WHERE username = ?", arguments: [username])
            try db.execute(
                sql: "UPDATE tokens SET revoked = 1 WHERE username = ? AND kind IN (?, ?) AND revoked = 0",
                arguments: [username, IssuedTokenKind.access.rawValue, IssuedTokenKind.refresh.rawValue])
            return true
        }
    }

    public func setRoles(_ roles: [String], forUser username: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(sql: "UPDATE users SET roles = ? WHERE username = ?", arguments: [roles.joined(separator: ","), username])
            return db.changesCount > 0
        }
    }

    public func setDisabled(_ disabled: Bool, forUser username: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(sql: "UPDATE users SET disabled = ? WHERE username = ?", arguments: [disabled, username])
            return db.changesCount > 0
        }
    }

    private func userRecord(_ row: Row) throws -> UserRecord {
        let username: String = row["username"]
        let stored: String = row["password_hash"]
        guard let hash = PasswordHash(stored: stored) else {
            throw StoreError.corrupt(path: path, reason: "the password hash of user '\(username)' is not in a known format")
        }
        let roles: String = row["roles"]
        return UserRecord(
            username: username, passwordHash: hash,
            roles: roles.split(separator: ",").map(String.init),
            created: Date(timeIntervalSince1970: row["created"]), disabled: row["disabled"])
    }

    private func userRecord(_ row: Row, prefix: String) throws -> UserRecord {
        var scoped: [String: DatabaseValue] = [:]
        for (column, value) in row where column.hasPrefix(prefix) { scoped[String(column.dropFirst(prefix.count))] = value }
        return try userRecord(Row(scoped))
    }

    /// Every row of `table` (one of this file's own table names), of one user when given, as records.
    private func rows<T>(of table: String, user username: String?, orderedBy order: String, _ record: (Row) throws -> T) throws(StoreError) -> [T] {
        try read { db in
            guard let username else { return try Row.fetchAll(db, sql: "SELECT * FROM \(table) ORDER BY \(order)").map(record) }
            return try Row.fetchAll(db, sql: "SELECT * FROM \(table) WHERE username = ? ORDER BY \(order)", arguments: [username]).map(record)
        }
    }

    private static let userColumns = "u.username AS u_username, u.password_hash AS u_password_hash, u.roles AS u_roles, u.created AS u_created, u.disabled AS u_disabled"

    // MARK: Sessions

    public func addSession(_ session: SessionRecord) throws(StoreError) {
        try write { db in try Self.insert(session, into: db) }
    }

    private static func insert(_ session: SessionRecord, into db: Database) throws {
        try db.execute(
            sql: "INSERT INTO sessions (digest, username, created, last_seen, expires, remember, origin) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [session.digest.description, session.username, session.created.timeIntervalSince1970,
                        session.lastSeen.timeIntervalSince1970, session.expires.timeIntervalSince1970, session.remember, session.origin])
    }

    public func addSignIn(session: SessionRecord?, tokens: [IssuedToken], username: String, checkedPassword: PasswordHash) throws(StoreError) -> Bool {
        try write { db in
            let stored = try String.fetchOne(db, sql: "SELECT password_hash FROM users WHERE username = ?", arguments: [username])
            guard stored == checkedPassword.description else { return false }
            if let session { try Self.insert(session, into: db) }
            for token in tokens { try Self.insert(token, into: db) }
            return true
        }
    }

    public func session(digest: SecretDigest) throws(StoreError) -> (SessionRecord, UserRecord)? {
        try read { db in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT s.*, \(Self.userColumns) FROM sessions s JOIN users u ON u.username = s.username WHERE s.digest = ?",
                arguments: [digest.description])
            else { return nil }
            return (try sessionRecord(row), try userRecord(row, prefix: "u_"))
        }
    }

    public func deleteSession(digest: SecretDigest) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE digest = ?", arguments: [digest.description])
            return db.changesCount > 0
        }
    }

    public func sessions(publicIDPrefix prefix: String) throws(StoreError) -> [SessionRecord] {
        guard !prefix.isEmpty, prefix.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return [] }
        return try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM sessions WHERE digest LIKE ?", arguments: ["sha256:\(prefix)%"]).map(sessionRecord)
        }
    }

    public func sessions(ofUser username: String?) throws(StoreError) -> [SessionRecord] {
        try rows(of: "sessions", user: username, orderedBy: "created DESC", sessionRecord)
    }

    public func deleteSessions(ofUser username: String) throws(StoreError) -> Int {
        try write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE username = ?", arguments: [username])
            return db.changesCount
        }
    }

    private func sessionRecord(_ row: Row) throws -> SessionRecord {
        SessionRecord(
            digest: try digest(row["digest"]), username: row["username"],
            created: Date(timeIntervalSince1970: row["created"]), lastSeen: Date(timeIntervalSince1970: row["last_seen"]),
            expires: Date(timeIntervalSince1970: row["expires"]), remember: row["remember"], origin: row["origin"])
    }

    private func digest(_ text: String) throws -> SecretDigest {
        guard let digest = SecretDigest(parsing: text) else {
            throw StoreError.corrupt(path: path, reason: "a stored digest is not in the sha256:<hex> form")
        }
        return digest
    }

    // MARK: API keys

    public func addAPIKey(_ key: StoredAPIKey) throws(StoreError) {
        try write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM api_keys WHERE name = ?", arguments: [key.name]) == true {
                throw StoreError.conflict("an API key named '\(key.name)' exists already")
            }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE username = ?", arguments: [key.username]) != true {
                throw StoreError.conflict("there is no user named '\(key.username)'")
            }
            try db.execute(
                sql: "INSERT INTO api_keys (name, digest, username, roles, read_only, expires, created, last_used, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [key.name, key.digest.description, key.username, key.roles?.joined(separator: ","), key.readOnly,
                            key.expires?.timeIntervalSince1970, key.created.timeIntervalSince1970, key.lastUsed?.timeIntervalSince1970, key.description])
        }
    }

    public func apiKey(digest: SecretDigest) throws(StoreError) -> (StoredAPIKey, UserRecord)? {
        try read { db in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT k.*, \(Self.userColumns) FROM api_keys k JOIN users u ON u.username = k.username WHERE k.digest = ?",
                arguments: [digest.description])
            else { return nil }
            return (try apiKeyRecord(row), try userRecord(row, prefix: "u_"))
        }
    }

    public func apiKey(named name: String) throws(StoreError) -> StoredAPIKey? {
        try read { db in try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE name = ?", arguments: [name]).map(apiKeyRecord) }
    }

    public func apiKeys(ofUser username: String?) throws(StoreError) -> [StoredAPIKey] {
        try rows(of: "api_keys", user: username, orderedBy: "name", apiKeyRecord)
    }

    public func deleteAPIKey(named name: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(sql: "DELETE FROM api_keys WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    public func recordUses(_ uses: [CredentialUse: Date]) throws(StoreError) {
        try write { db in
            for (use, at) in uses {
                let t = at.timeIntervalSince1970
                switch use {
                case .session(let digest):
                    try db.execute(sql: "UPDATE sessions SET last_seen = ? WHERE digest = ? AND last_seen < ?", arguments: [t, digest.description, t])
                case .apiKey(let name):
                    try db.execute(sql: "UPDATE api_keys SET last_used = ? WHERE name = ? AND (last_used IS NULL OR last_used < ?)", arguments: [t, name, t])
                }
            }
        }
    }

    private func apiKeyRecord(_ row: Row) throws -> StoredAPIKey {
        let roles: String? = row["roles"]
        let expires: Double? = row["expires"]
        let lastUsed: Double? = row["last_used"]
        return StoredAPIKey(
            name: row["name"], username: row["username"], roles: roles.map { $0.split(separator: ",").map(String.init) },
            digest: try digest(row["digest"]), readOnly: row["read_only"], expires: expires.map(Date.init(timeIntervalSince1970:)),
            created: Date(timeIntervalSince1970: row["created"]), lastUsed: lastUsed.map(Date.init(timeIntervalSince1970:)),
            description: row["description"])
    }

    // MARK: Tokens

    public func addToken(_ token: IssuedToken) throws(StoreError) {
        try write { db in try Self.insert(token, into: db) }
    }

    private static func insert(_ token: IssuedToken, into db: Database) throws {
        try db.execute(
            sql: "INSERT INTO tokens (jti, username, kind, family, created, expires, revoked, used, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            arguments: [token.jti, token.username, token.kind.rawValue, token.family, token.created.timeIntervalSince1970,
                        token.expires?.timeIntervalSince1970, token.revoked, token.used, token.description])
    }

    public func token(jti: String) throws(StoreError) -> (IssuedToken, UserRecord)? {
        try read { db in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT t.*, \(Self.userColumns) FROM tokens t JOIN users u ON u.username = t.username WHERE t.jti = ?",
                arguments: [jti])
            else { return nil }
            return (try tokenRecord(row), try userRecord(row, prefix: "u_"))
        }
    }

    public func tokens(ofUser username: String?) throws(StoreError) -> [IssuedToken] {
        try rows(of: "tokens", user: username, orderedBy: "created DESC", tokenRecord)
    }

    public func revokeToken(jti: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(sql: "UPDATE tokens SET revoked = 1 WHERE jti = ?", arguments: [jti])
            return db.changesCount > 0
        }
    }

    public func revokeTokens(family: String) throws(StoreError) -> Int {
        try write { db in
            try db.execute(sql: "UPDATE tokens SET revoked = 1 WHERE (family = ? OR jti = ?) AND revoked = 0", arguments: [family, family])
            return db.changesCount
        }
    }

    public func exchangeRefreshToken(jti: String, issuing: [IssuedToken]) throws(StoreError) -> RefreshExchange {
        try write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT kind, family, revoked, used FROM tokens WHERE jti = ?", arguments: [jti]) else {
                return .refused
            }
            let kind: String = row["kind"]
            let family: String? = row["family"]
            guard kind == IssuedTokenKind.refresh.rawValue else { return .refused }
            let revoked: Bool = row["revoked"]
            let used: Bool = row["used"]
            if used {
                if let family {
                    try db.execute(sql: "UPDATE tokens SET revoked = 1 WHERE family = ?", arguments: [family])
                } else {
                    // Its replacements carry its jti as their family.
                    try db.execute(sql: "UPDATE tokens SET revoked = 1 WHERE jti = ? OR family = ?", arguments: [jti, jti])
                }
                return .reused(family: family)
            }
            if revoked { return .refused }
            try db.execute(sql: "UPDATE tokens SET used = 1 WHERE jti = ?", arguments: [jti])
            for token in issuing { try Self.insert(token, into: db) }
            return .accepted
        }
    }

    public func purgeExpired(now: Date) throws(StoreError) -> Int {
        try write { db in
            let t = now.timeIntervalSince1970
            try db.execute(sql: "DELETE FROM sessions WHERE expires <= ?", arguments: [t])
            var count = db.changesCount
            // A spent refresh token stays until its family's end: its reuse must still be detected.
            try db.execute(sql: "DELETE FROM tokens WHERE expires IS NOT NULL AND expires <= ?", arguments: [t])
            count += db.changesCount
            return count
        }
    }

    public func counts() throws(StoreError) -> StoreCounts {
        try read { db in
            func count(_ table: String) throws -> Int { try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? 0 }
            return StoreCounts(users: try count("users"), sessions: try count("sessions"), apiKeys: try count("api_keys"), tokens: try count("tokens"))
        }
    }

    private func tokenRecord(_ row: Row) throws -> IssuedToken {
        let kindText: String = row["kind"]
        guard let kind = IssuedTokenKind(rawValue: kindText) else {
            throw StoreError.corrupt(path: path, reason: "a token has the unknown kind '\(kindText)'")
        }
        let expires: Double? = row["expires"]
        return IssuedToken(
            jti: row["jti"], username: row["username"], kind: kind, family: row["family"],
            created: Date(timeIntervalSince1970: row["created"]), expires: expires.map(Date.init(timeIntervalSince1970:)),
            revoked: row["revoked"], used: row["used"], description: row["description"])
    }
}
