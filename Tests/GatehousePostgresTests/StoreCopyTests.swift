import Foundation
import GatehouseCore
import GatehousePostgres
import GatehouseStore
import GatehouseTestSupport
import Logging
import XCTest

/// `gatehouse store copy` and `gatehouse store check`, the built binary against a real SQLite
/// file and a real PostgreSQL database.
final class StoreCopyTests: XCTestCase {
    private let t0 = Date(timeIntervalSince1970: 1_900_000_000)

    func testACopyCarriesEveryRecordWholeAndASecondCopyChangesNothing() async throws {
        let server = try PostgresTestServer.shared()
        let database = try server.makeDatabase("copy")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-copy-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("gatehouse.db").path
        let source = try SQLiteStore(path: file)
        let hash = try PasswordHash.make("a long password", parameters: ScryptParameters(n: 16, r: 1, p: 1))
        let users = [
            UserRecord(username: "alice", passwordHash: hash, roles: ["admin", "operator"], created: t0),
            UserRecord(username: "bob", passwordHash: hash, roles: [], created: t0, disabled: true),
        ]
        for user in users { try source.addUser(user) }
        let keys = [
            StoredAPIKey(name: "slicer", username: "alice", roles: ["viewer"], digest: .of("k1"), readOnly: true, expires: t0.addingTimeInterval(9),
                         created: t0, lastUsed: t0.addingTimeInterval(3), description: "PrusaSlicer"),
            StoredAPIKey(name: "plain", username: "bob", roles: nil, digest: .of("k2"), readOnly: false, expires: nil, created: t0),
        ]
        for key in keys { try source.addAPIKey(key) }
        let tokens = [
            IssuedToken(jti: "j1", username: "alice", kind: .refresh, family: "f1", created: t0, expires: t0.addingTimeInterval(60), used: true),
            IssuedToken(jti: "j2", username: "alice", kind: .longLived, family: nil, created: t0, expires: nil, revoked: true, description: "cron"),
        ]
        for token in tokens { try source.addToken(token) }
        let session = SessionRecord(
            digest: .of("cookie"), username: "alice", created: t0, lastSeen: t0.addingTimeInterval(5), expires: t0.addingTimeInterval(99),
            remember: true, origin: "192.0.2.1")
        try source.addSession(session)

        let url = "postgres://\(server.username)@\(server.host):\(server.port)/\(database)"
        let first = try GatehouseBinary.run(["store", "copy", "--from", file, "--to", url, "--tls", "disable"])
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.output.contains("copied 2 users, 2 API keys, 2 tokens, 1 sessions"), first.output)

        let target = try await PostgresStore.open(
            .init(host: server.host, port: server.port, username: server.username, database: database), logger: Logger(label: "gatehouse-test", factory: { _ in SwiftLogNoOpLogHandler() }))
        defer { target.close() }
        let (copiedUsers, copiedKeys, copiedTokens, copiedSessions) = (
            try await target.users(), try await target.apiKeys(ofUser: nil), try await target.tokens(ofUser: nil), try await target.sessions(ofUser: nil)
        )
        XCTAssertEqual(copiedUsers, users)
        XCTAssertEqual(Set(copiedKeys), Set(keys))
        XCTAssertEqual(Set(copiedTokens), Set(tokens))
        XCTAssertEqual(copiedSessions, [session])
        let found = try await target.apiKey(digest: .of("k1"))
        XCTAssertEqual(found?.0.name, "slicer", "a copied key is found by its digest")

        let second = try GatehouseBinary.run(["store", "copy", "--from", file, "--to", url, "--tls", "disable"])
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.output.contains("is not empty"), second.output)
        let counts = try await target.counts()
        XCTAssertEqual(counts, StoreCounts(users: 2, sessions: 1, apiKeys: 2, tokens: 2), "the second copy changed nothing")

        let config = dir.appendingPathComponent("config.yml")
        try "upstream: http://127.0.0.1:9\nstore: {url: \"\(url)\", tls: disable}\n".write(to: config, atomically: true, encoding: .utf8)
        let check = try GatehouseBinary.run(["store", "check", "--config", config.path])
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.output.contains("holds: 2 users, 2 API keys, 2 tokens, 1 sessions"), check.output)
    }

    func testACopyIntoAnUnreachableDatabaseSaysWhyAndAMissingSourceIsNotCreated() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-none-\(UUID().uuidString).db").path
        let noSource = try GatehouseBinary.run(["store", "copy", "--from", missing, "--to", "postgres://gatehouse@127.0.0.1:1/x", "--tls", "disable"])
        XCTAssertEqual(noSource.status, 1)
        XCTAssertTrue(noSource.output.contains("does not exist"), noSource.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing))
        let server = try PostgresTestServer.shared()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-copy-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try SQLiteStore(path: dir.appendingPathComponent("g.db").path)
        let refused = try GatehouseBinary.run([
            "store", "copy", "--from", dir.appendingPathComponent("g.db").path, "--to", "postgres://gatehouse@127.0.0.1:1/x", "--tls", "disable",
        ])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.output.contains("cannot reach the store postgres://gatehouse@127.0.0.1:1/x: connection refused"), refused.output)
        let wrongDatabase = try GatehouseBinary.run([
            "store", "copy", "--from", dir.appendingPathComponent("g.db").path,
            "--to", "postgres://\(server.username)@\(server.host):\(server.port)/no_such_database", "--tls", "disable",
        ])
        XCTAssertTrue(wrongDatabase.output.contains(#"database "no_such_database" does not exist"#), wrongDatabase.output)
    }
}
