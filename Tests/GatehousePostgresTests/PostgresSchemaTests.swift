import Foundation
import GatehouseCore
import GatehousePostgres
import GatehouseTestSupport
import Logging
import PostgresNIO
import XCTest

/// The PostgreSQL schema against a real PostgreSQL server (``PostgresTestServer``), each test in
/// a database of its own.
final class PostgresSchemaTests: XCTestCase {
    private static func withClient<T: Sendable>(_ database: String, _ body: (PostgresClient) async throws -> T) async throws -> T {
        let server = try PostgresTestServer.shared()
        let client = PostgresClient(
            configuration: .init(host: server.host, port: server.port, username: server.username, password: nil, database: database, tls: .disable))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    private static func migrate(_ database: String) async throws -> [String] {
        try await withClient(database) { client in
            try await PostgresSchema.migrate(client, database: database, logger: Logger(label: "gatehouse-test"))
        }
    }

    private func migrate(_ database: String) async throws -> [String] { try await Self.migrate(database) }

    private var allSteps: [String] { PostgresSchema.steps.map(\.id) }

    /// The shared server and a new database of its own, migrated.
    private func migratedDatabase() async throws -> (PostgresTestServer, String) {
        let server = try PostgresTestServer.shared()
        let database = try server.makeDatabase()
        _ = try await migrate(database)
        return (server, database)
    }

    func testAFreshDatabaseGetsEveryStepOnceAndASecondRunNone() async throws {
        let server = try PostgresTestServer.shared()
        let database = try server.makeDatabase()
        let first = try await migrate(database)
        XCTAssertEqual(first, allSteps)
        let tables = try server.psql(database, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
        XCTAssertEqual(tables, "api_keys,app_key_request_log,app_key_requests,gatehouse_migrations,login_failures,login_lockouts,one_shot_tokens,revision,sessions,tokens,users")
        let second = try await migrate(database)
        XCTAssertEqual(second, [])
        XCTAssertEqual(try server.psql(database, "SELECT count(*) FROM gatehouse_migrations"), "\(allSteps.count)")
    }

    func testReplicasStartingTogetherApplyEachStepOnce() async throws {
        let server = try PostgresTestServer.shared()
        let database = try server.makeDatabase()
        // Six Gatehouses start at once on the same empty database, each with its own client.
        let applied = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<6 { group.addTask { try await Self.migrate(database) } }
            var all: [String] = []
            for try await steps in group { all += steps }
            return all
        }
        XCTAssertEqual(applied.sorted(), allSteps.sorted(), "every step applied exactly once over all six")
        XCTAssertEqual(try server.psql(database, "SELECT count(*) FROM gatehouse_migrations"), "\(allSteps.count)")
    }

    func testADatabaseFromANewerGatehouseIsRefusedAndLeftAsItIs() async throws {
        let (server, database) = try await migratedDatabase()
        try server.psql(database, "INSERT INTO gatehouse_migrations (id) VALUES ('v99-from-the-future')")
        do {
            _ = try await migrate(database)
            XCTFail("a database with a step this build does not know was migrated")
        } catch let error as StoreError {
            XCTAssertEqual(error, .newerSchema(path: database, unknownMigrations: ["v99-from-the-future"]))
            XCTAssertTrue(error.description.contains("newer Gatehouse"), error.description)
        }
        XCTAssertEqual(
            try server.psql(database, "SELECT count(*) FROM gatehouse_migrations"), "\(allSteps.count + 1)")
    }

    func testAFailedStepUndoesTheWholeCallAndSaysWhichStep() async throws {
        let server = try PostgresTestServer.shared()
        let database = try server.makeDatabase()
        // Something else already made a table the second step makes.
        try server.psql(database, "CREATE TABLE sessions (x integer)")
        do {
            _ = try await migrate(database)
            XCTFail("a step that cannot run was reported as applied")
        } catch let error as StoreError {
            XCTAssertTrue(error.description.contains("v2-credentials"), error.description)
            XCTAssertTrue(error.description.contains("already exists"), error.description)
        }
        // The first step and the bookkeeping table were undone with it.
        let tables = try server.psql(database, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
        XCTAssertEqual(tables, "sessions")
    }

    func testTheRevisionMovesOnlyForChangesThatCanWithdrawAccess() async throws {
        let (server, database) = try await migratedDatabase()
        func revision() throws -> String {
            try server.psql(database, "SELECT value FROM revision")
        }
        try server.psql(database, "INSERT INTO users (username, password_hash, roles, created) VALUES ('alice', 'x', '', 0)")
        try server.psql(database, "INSERT INTO sessions VALUES ('d1', 'alice', 0, 0, 100, false, 'password')")
        try server.psql(database, "INSERT INTO api_keys VALUES ('k1', 'kd1', 'alice', NULL, false, NULL, 0, NULL, '')")
        XCTAssertEqual(try revision(), "0", "inserts grant, never withdraw")
        try server.psql(database, "UPDATE sessions SET last_seen = 50 WHERE digest = 'd1'")
        try server.psql(database, "UPDATE api_keys SET last_used = 50 WHERE name = 'k1'")
        XCTAssertEqual(try revision(), "0", "bookkeeping columns leave it")
        try server.psql(database, "DELETE FROM sessions WHERE digest = 'nothing-like-this'")
        XCTAssertEqual(try revision(), "0", "a delete of nothing leaves it")
        try server.psql(database, "UPDATE api_keys SET read_only = true WHERE name = 'k1'")
        XCTAssertEqual(try revision(), "1")
        try server.psql(database, "DELETE FROM sessions WHERE digest = 'd1'")
        XCTAssertEqual(try revision(), "2")
        try server.psql(database, "UPDATE users SET disabled = true WHERE username = 'alice'")
        XCTAssertEqual(try revision(), "3")
        // Deleting the user takes its key along (cascade): the user row and the key row both count.
        try server.psql(database, "DELETE FROM users WHERE username = 'alice'")
        XCTAssertEqual(try revision(), "5")
        XCTAssertEqual(try server.psql(database, "SELECT count(*) FROM api_keys"), "0")
    }

    func testAChangeThatCanWithdrawAccessIsAnnouncedOnTheRevisionChannelAndBookkeepingIsNot() async throws {
        let (server, database) = try await migratedDatabase()
        try server.psql(database, "INSERT INTO users (username, password_hash, roles, created) VALUES ('alice', 'x', '', 0)")
        try server.psql(database, "INSERT INTO api_keys VALUES ('k1', 'kd1', 'alice', NULL, false, NULL, 0, NULL, '')")
        let payloads: [String] = try await Self.withClient(database) { client in
            try await client.withConnection { connection in
                try await connection.listen(on: PostgresSchema.revisionChannel) { notifications in
                    // Made by other connections (psql), in this order: bookkeeping (no
                    // announcement), a marker, then a change that withdraws access in one
                    // transaction of two rows (one announcement, folded).
                    try server.psql(database, "UPDATE api_keys SET last_used = 5 WHERE name = 'k1'")
                    try server.psql(database, "NOTIFY \(PostgresSchema.revisionChannel), 'marker'")
                    try server.psql(database, "BEGIN; UPDATE api_keys SET read_only = true WHERE name = 'k1'; UPDATE users SET disabled = true WHERE username = 'alice'; COMMIT")
                    // Should the announcement never come, this ends the wait instead of hanging.
                    let watchdog = Task {
                        try await Task.sleep(for: .seconds(10))
                        try server.psql(database, "NOTIFY \(PostgresSchema.revisionChannel), 'timeout'")
                    }
                    defer { watchdog.cancel() }
                    var seen: [String] = []
                    for try await notification in notifications {
                        seen.append(notification.payload)
                        if seen.count == 2 { break }
                    }
                    return seen
                }
            }
        }
        XCTAssertEqual(payloads, ["marker", ""])
        XCTAssertEqual(try server.psql(database, "SELECT value FROM revision"), "2")
    }

    func testMissingServerProgramsSayWhatToInstall() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-postgres-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        do {
            _ = try PostgresTestServer.findBinaries(environment: ["GATEHOUSE_POSTGRES_BIN": empty.path])
            XCTFail("an empty folder was taken for PostgreSQL's programs")
        } catch {
            XCTAssertTrue(error.description.contains("apt-get install -y postgresql"), error.description)
            XCTAssertTrue(error.description.contains(empty.path), error.description)
        }
    }
}
