import Foundation
import GRDB
import GatehouseCore

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
public final class SQLiteStore: UserStore {
    public let path: String
    private let pool: DatabasePool

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
            if !fm.fileExists(atPath: marker) { fm.createFile(atPath: marker, contents: Data(), attributes: [.posixPermissions: 0o600]) }
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

    private func write<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do { return try pool.write(body) } catch { throw mapped(error) }
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

    public func setPassword(_ hash: PasswordHash, forUser username: String) throws(StoreError) -> Bool {
        try write { db in
            try db.execute(sql: "UPDATE users SET password_hash = ? WHERE username = ?", arguments: [hash.description, username])
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
}
