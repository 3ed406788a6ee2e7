import Foundation
import GatehouseTestSupport
import XCTest

/// `gatehouse key|token|session …` run as a separate process on the store file a running
/// Gatehouse is using: what the command does takes effect within the credential cache's
/// confirmation limit (one second), even for a credential the server has just answered from memory.
final class CredentialCommandTests: XCTestCase {
    func testKeyCreateListRevokeWhileTheServerRuns() async throws {
        try await IdentityFixture.with { fx in
            let db = fx.directory + "/gatehouse.db"
            var r = try GatehouseBinary.run(["key", "create", "--store", db, "--user", "alice", "--name", "cli-key", "--description", "slicer"])
            XCTAssertEqual(r.status, 0, r.output)
            let key = try XCTUnwrap(r.output.split(separator: "\n").last.map(String.init))
            XCTAssertEqual(key.count, 43)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["X-Api-Key: \(key)"]).status, 200)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["X-Api-Key: \(key)"]).status, 200, "now from the cache")
            XCTAssertEqual(fx.upstream.requests.last?.values("X-Remote-User"), ["alice"])

            r = try GatehouseBinary.run(["key", "list", "--store", db])
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("cli-key"), r.output)
            XCTAssertTrue(r.output.contains("slicer"))
            XCTAssertFalse(r.output.contains(key), "a key is never listed")

            XCTAssertNotEqual(try GatehouseBinary.run(["key", "create", "--store", db, "--user", "nobody", "--name", "x"]).status, 0)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["X-Api-Key: \(key)"]).status, 200, "cached again")
            r = try GatehouseBinary.run(["key", "revoke", "--store", db, "cli-key"])
            XCTAssertEqual(r.status, 0, r.output)
            let revoked = ContinuousClock.now
            XCTAssertEqual(try fx.status("GET", "/api/printer", headers: ["X-Api-Key: \(key)"], becoming: 401, afterChangeAt: revoked), 401)
            XCTAssertEqual(try GatehouseBinary.run(["key", "revoke", "--store", db, "cli-key"]).status, 1)
        }
    }

    func testTokenIssueNeverExpiringListRevoke() async throws {
        try await IdentityFixture.with { fx in
            let config = fx.directory + "/config.yml"
            try "store: {path: ./gatehouse.db}\njwt: {secret_file: ./jwt.secret}\n".write(toFile: config, atomically: true, encoding: .utf8)
            var r = try GatehouseBinary.run(["token", "issue", "--config", config, "--user", "alice", "--expires", "never", "--description", "camera"])
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(r.output.contains("expires never"), r.output)
            let token = try XCTUnwrap(r.output.split(separator: "\n").last.map(String.init))
            fx.clock.advance(5 * 365 * 86400)
            XCTAssertEqual(try fx.send("GET", "/cam", headers: ["Authorization: Bearer \(token)"]).status, 200)
            XCTAssertEqual(try fx.send("GET", "/cam", headers: ["Authorization: Bearer \(token)"]).status, 200)

            r = try GatehouseBinary.run(["token", "list", "--config", config, "--user", "alice"])
            XCTAssertTrue(r.output.contains("long_lived"), r.output)
            XCTAssertTrue(r.output.contains("camera"))
            let id = try XCTUnwrap(try fx.store.tokens(ofUser: "alice").first?.jti)
            XCTAssertTrue(r.output.contains(id))
            XCTAssertFalse(r.output.contains(token))
            r = try GatehouseBinary.run(["token", "revoke", "--config", config, id])
            XCTAssertEqual(r.status, 0, r.output)
            let revoked = ContinuousClock.now
            XCTAssertEqual(try fx.status("GET", "/cam", headers: ["Authorization: Bearer \(token)"], becoming: 401, afterChangeAt: revoked), 401)
            XCTAssertNotEqual(try GatehouseBinary.run(["token", "issue", "--config", config, "--user", "ghost", "--expires", "1d"]).status, 0)
            XCTAssertNotEqual(try GatehouseBinary.run(["token", "issue", "--config", config, "--user", "alice", "--expires", "soon"]).status, 0)
        }
    }

    func testSessionListAndRevoke() async throws {
        try await IdentityFixture.with { fx in
            let db = fx.directory + "/gatehouse.db"
            let (_, c1) = try fx.formLogin()
            let (_, c2) = try fx.formLogin()
            let first = try XCTUnwrap(c1)
            let second = try XCTUnwrap(c2)
            var r = try GatehouseBinary.run(["session", "list", "--store", db, "--user", "alice"])
            XCTAssertEqual(r.status, 0, r.output)
            let id = try XCTUnwrap(try fx.store.sessions(ofUser: "alice").first { $0.digest == .of(first) }?.publicID)
            XCTAssertTrue(r.output.contains(id), r.output)
            XCTAssertFalse(r.output.contains(first))

            for cookie in [first, first, second] {
                XCTAssertEqual(try fx.send("GET", "/a", headers: ["Cookie: gatehouse_session=\(cookie)"]).status, 200)
            }
            r = try GatehouseBinary.run(["session", "revoke", "--store", db, id])
            XCTAssertEqual(r.status, 0, r.output)
            let revoked = ContinuousClock.now
            XCTAssertEqual(try fx.status("GET", "/a", headers: ["Cookie: gatehouse_session=\(first)"], becoming: 401, afterChangeAt: revoked), 401)
            XCTAssertEqual(try fx.send("GET", "/a", headers: ["Cookie: gatehouse_session=\(second)"]).status, 200, "only that one")
            r = try GatehouseBinary.run(["session", "revoke", "--store", db, "--user", "alice"])
            XCTAssertEqual(r.status, 0, r.output)
            let allRevoked = ContinuousClock.now
            XCTAssertEqual(
                try fx.status("GET", "/a", headers: ["Cookie: gatehouse_session=\(second)"], becoming: 401, afterChangeAt: allRevoked), 401)
        }
    }
}
