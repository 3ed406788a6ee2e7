import Foundation
import GRDB
import GatehouseCore
import XCTest

@testable import GatehouseStore

/// Against real SQLite files in a fresh temporary directory per test.
final class SQLiteStoreTests: XCTestCase {
    private var directory: URL!
    // Cheap parameters keep the suite fast; the production default is tested in PasswordHashTests.
    private static let fast = ScryptParameters(n: 16, r: 1, p: 1)

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String = "gatehouse.db") -> String { directory.appendingPathComponent(name).path }

    private func user(_ name: String, password: String = "a long password", roles: [String] = ["viewer"]) throws -> UserRecord {
        UserRecord(username: name, passwordHash: try PasswordHash.make(password, parameters: Self.fast), roles: roles, created: Date(timeIntervalSince1970: 1_800_000_000))
    }

    private func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func testCreatesTheFileMode0600InADirectoryMode0700() throws {
        let nested = directory.appendingPathComponent("state/sub/gatehouse.db").path
        _ = try SQLiteStore(path: nested)
        XCTAssertEqual(try mode(nested), 0o600)
        XCTAssertEqual(try mode(directory.appendingPathComponent("state/sub").path), 0o700)
    }

    func testUsersSurviveReopeningTheFile() throws {
        do {
            let store = try SQLiteStore(path: path())
            try store.addUser(try user("alice", password: "alice's long password", roles: ["admin", "operator"]))
            try store.addUser(try user("bob"))
        }
        let reopened = try SQLiteStore(path: path())
        XCTAssertEqual(try reopened.users().map(\.username), ["alice", "bob"])
        let alice = try XCTUnwrap(try reopened.user(named: "alice"))
        XCTAssertEqual(alice.roles, ["admin", "operator"])
        XCTAssertTrue(alice.passwordHash.verify("alice's long password"))
        XCTAssertFalse(alice.passwordHash.verify("alice's long passwore"))
        XCTAssertEqual(alice.created, Date(timeIntervalSince1970: 1_800_000_000))
    }

    func testTheStoredPasswordColumnHoldsNoPassword() throws {
        let store = try SQLiteStore(path: path())
        try store.addUser(try user("alice", password: "plain-text-must-not-appear"))
        let raw = try DatabaseQueue(path: path()).read { db in try String.fetchAll(db, sql: "SELECT password_hash FROM users") }
        XCTAssertEqual(raw.count, 1)
        XCTAssertTrue(raw[0].hasPrefix("scrypt$16$1$1$"), raw[0])
        XCTAssertFalse(raw[0].contains("plain-text-must-not-appear"))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path()))
        XCTAssertNil(bytes.range(of: Data("plain-text-must-not-appear".utf8)))
    }

    func testAddingAnExistingNameIsAConflictAndKeepsTheFirstUser() throws {
        let store = try SQLiteStore(path: path())
        try store.addUser(try user("alice", password: "first password here"))
        XCTAssertThrowsError(try store.addUser(try user("alice", password: "second password here"))) { error in
            guard case StoreError.conflict = error else { return XCTFail("\(error)") }
        }
        XCTAssertTrue(try XCTUnwrap(try store.user(named: "alice")).passwordHash.verify("first password here"))
        XCTAssertEqual(try store.userCount(), 1)
    }

    func testUserNamesAreCaseSensitive() throws {
        let store = try SQLiteStore(path: path())
        try store.addUser(try user("alice"))
        XCTAssertNil(try store.user(named: "Alice"))
        try store.addUser(try user("Alice"))
        XCTAssertEqual(try store.userCount(), 2)
    }

    func testPasswordDisableAndDeleteChangeOnlyTheNamedUser() throws {
        let store = try SQLiteStore(path: path())
        try store.addUser(try user("alice", password: "alice old password"))
        try store.addUser(try user("bob", password: "bob's own password"))
        XCTAssertTrue(try store.changePassword(try PasswordHash.make("alice new password", parameters: Self.fast), forUser: "alice"))
        XCTAssertTrue(try store.setDisabled(true, forUser: "alice"))
        let alice = try XCTUnwrap(try store.user(named: "alice"))
        XCTAssertTrue(alice.disabled)
        XCTAssertTrue(alice.passwordHash.verify("alice new password"))
        XCTAssertFalse(alice.passwordHash.verify("alice old password"))
        let bob = try XCTUnwrap(try store.user(named: "bob"))
        XCTAssertFalse(bob.disabled)
        XCTAssertTrue(bob.passwordHash.verify("bob's own password"))
        XCTAssertTrue(try store.deleteUser(named: "alice"))
        XCTAssertEqual(try store.users().map(\.username), ["bob"])
    }

    func testChangingAMissingUserReportsFalse() throws {
        let store = try SQLiteStore(path: path())
        XCTAssertFalse(try store.deleteUser(named: "ghost"))
        XCTAssertFalse(try store.setDisabled(true, forUser: "ghost"))
        XCTAssertFalse(try store.changePassword(try PasswordHash.make("whatever long", parameters: Self.fast), forUser: "ghost"))
    }

    func testTwoOpenStoresOnOneFileSeeEachOthersWrites() throws {
        let server = try SQLiteStore(path: path())
        let cli = try SQLiteStore(path: path())
        try cli.addUser(try user("carol"))
        XCTAssertNotNil(try server.user(named: "carol"))
        XCTAssertTrue(try server.setDisabled(true, forUser: "carol"))
        XCTAssertEqual(try cli.user(named: "carol")?.disabled, true)
    }

    func testAFileThatIsNotSQLiteIsCorruptAndLeftUntouched() throws {
        let original = Data("this is not a database, but somebody's data".utf8)
        XCTAssertTrue(FileManager.default.createFile(atPath: path(), contents: original, attributes: [.posixPermissions: 0o600]))
        XCTAssertThrowsError(try SQLiteStore(path: path())) { error in
            guard case StoreError.corrupt = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path())), original)
    }

    func testAnotherProgramsSQLiteFileIsRefused() throws {
        try DatabaseQueue(path: path()).write { db in try db.execute(sql: "CREATE TABLE photos (id INTEGER PRIMARY KEY)") }
        chmod(path(), 0o600)
        XCTAssertThrowsError(try SQLiteStore(path: path())) { error in
            guard case StoreError.corrupt(_, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("photos"), reason)
        }
    }

    func testAStoreFromANewerGatehouseIsRefusedAndKept() throws {
        do {
            let store = try SQLiteStore(path: path())
            try store.addUser(try user("alice"))
        }
        try DatabaseQueue(path: path()).write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
        }
        XCTAssertThrowsError(try SQLiteStore(path: path())) { error in
            guard case StoreError.newerSchema(_, let unknown) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(unknown, ["v99-from-the-future"])
        }
        let users = try DatabaseQueue(path: path()).read { db in try String.fetchAll(db, sql: "SELECT username FROM users") }
        XCTAssertEqual(users, ["alice"])
    }

    func testALostStoreIsAnErrorNotAFreshEmptyOne() throws {
        do {
            let store = try SQLiteStore(path: path())
            try store.addUser(try user("alice"))
        }
        try FileManager.default.removeItem(atPath: path())
        XCTAssertThrowsError(try SQLiteStore(path: path())) { error in
            guard case StoreError.missing = error else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path()), "an empty store was created in place of the lost one")
    }

    func testAStoreReadableByOthersIsRefused() throws {
        _ = try SQLiteStore(path: path())
        chmod(path(), 0o644)
        XCTAssertThrowsError(try SQLiteStore(path: path())) { error in
            guard case StoreError.insecurePermissions(_, let mode) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(mode, "644")
        }
    }

    func testACommittedWriteSurvivesAKilledWriterProcess() throws {
        // A child process opens the store, commits a user, and is killed with SIGKILL while it
        // holds the file open: the user must be there, the file must open cleanly.
        let store = try SQLiteStore(path: path())
        try store.addUser(try user("before"))
        let script = """
            import sqlite3, os, signal
            c = sqlite3.connect(\"\(path())\", isolation_level=None)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO users (username, password_hash, roles, created, disabled) VALUES ('half', 'x', '', 0, 0)")
            os.kill(os.getpid(), signal.SIGKILL)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        let reopened = try SQLiteStore(path: path())
        XCTAssertEqual(try reopened.users().map(\.username), ["before"], "the killed, uncommitted write must leave no trace")
    }
}
