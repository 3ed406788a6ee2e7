import Foundation
import GatehouseCore
import GatehousePostgres
import GatehouseTestSupport
import Logging
import Synchronization
import XCTest

/// The PostgreSQL store when the database goes away and comes back: a server of the test's own
/// (``PostgresTestServer/own()``), stopped and restarted under it.
final class PostgresFaultTests: XCTestCase {
    private let t0 = Date(timeIntervalSince1970: 1_900_000_000)

    private func open(_ server: PostgresTestServer, _ database: String) async throws -> PostgresStore {
        try await PostgresStore.open(
            .init(host: server.host, port: server.port, username: server.username, database: database, poolSize: 4, callTimeout: .seconds(1)),
            logger: Logger(label: "gatehouse-test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// A server of the test's own, a database on it, and a store holding alice.
    private func ownServerWithAlice() async throws -> (PostgresTestServer, String, PostgresStore) {
        let server = try PostgresTestServer.own()
        do {
            let database = try server.makeDatabase()
            let store = try await open(server, database)
            try await store.addUser(try user("alice"))
            return (server, database, store)
        } catch {
            server.stop()
            throw error
        }
    }

    private func user(_ name: String) throws -> UserRecord {
        UserRecord(username: name, passwordHash: try PasswordHash.make("a long password", parameters: ScryptParameters(n: 16, r: 1, p: 1)), roles: [], created: t0)
    }

    func testADatabaseThatGoesAwayIsAnErrorNotAHangAndTheStoreRecoversOnItsOwn() async throws {
        let (server, _, store) = try await ownServerWithAlice()
        defer {
            store.close()
            server.stop()
        }
        try await store.addAPIKey(StoredAPIKey(name: "k", username: "alice", roles: nil, digest: .of("key"), readOnly: false, expires: nil, created: t0))

        try server.halt()
        do {
            _ = try await store.apiKey(digest: .of("key"))
            XCTFail("answered from a database that is down")
        } catch {
            guard case .failed(let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains(server.host), reason)
        }
        do {
            try await store.addUser(try user("bob"))
            XCTFail("a write to a database that is down was acknowledged")
        } catch {}

        try server.start()
        var found: (StoredAPIKey, UserRecord)?
        for _ in 0..<40 where found == nil {
            found = try? await store.apiKey(digest: .of("key"))
            if found == nil { try await Task.sleep(for: .milliseconds(250)) }
        }
        XCTAssertEqual(found?.0.name, "k", "the pool did not reconnect within 10 s")
        let bob = try await store.user(named: "bob")
        XCTAssertNil(bob, "the refused write left nothing")
    }

    func testNoAcknowledgedWriteIsLostWhenTheDatabaseRestartsUnderLoad() async throws {
        let (server, database, store) = try await ownServerWithAlice()
        defer {
            store.close()
            server.stop()
        }
        let t0 = self.t0
        let restarted = RestartFlag()
        // Four writers keep adding keys until a second after the restart; each counts only what
        // the store acknowledged.
        let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
            for writer in 0..<4 {
                group.addTask {
                    var stored: [String] = []
                    var after: ContinuousClock.Instant?
                    for n in 0..<2000 {
                        if after == nil, restarted.value.load(ordering: .relaxed) { after = .now }
                        if let after, ContinuousClock.now - after > .seconds(1) { break }
                        let name = "w\(writer)-\(n)"
                        let key = StoredAPIKey(name: name, username: "alice", roles: nil, digest: .of(name), readOnly: false, expires: nil, created: t0)
                        if (try? await store.addAPIKey(key)) != nil { stored.append(name) }
                        try await Task.sleep(for: .milliseconds(5))
                    }
                    return stored
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(300))
                try server.restart()
                restarted.value.store(true, ordering: .relaxed)
                return []
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(try server.psql(database, "SELECT 1"), "1", "the server is back")
        XCTAssertGreaterThan(acknowledged.count, 0)
        var kept: Set<String>?
        for _ in 0..<40 where kept == nil {
            kept = (try? await store.apiKeys(ofUser: "alice")).map { Set($0.map(\.name)) }
            if kept == nil { try await Task.sleep(for: .milliseconds(250)) }
        }
        let lost = Set(acknowledged).subtracting(kept ?? [])
        XCTAssertNotNil(kept, "the store did not answer within 10 s of the restart")
        XCTAssertTrue(lost.isEmpty, "acknowledged but gone after the restart: \(lost.sorted().prefix(10))")
    }
}

private final class RestartFlag: Sendable {
    let value = Atomic<Bool>(false)
}
