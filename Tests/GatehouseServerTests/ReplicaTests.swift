import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Two real `gatehouse serve` processes on one PostgreSQL database (``PostgresTestServer``), in
/// front of one recording upstream: to their users they are one Gatehouse.
final class ReplicaTests: XCTestCase {
    private static let adminPassword = "replica admin password"

    /// Replicas A and B on a new database, sharing one JWT secret.
    private func startReplicas(
        upstreamPort: Int, login: String = "", on server: PostgresTestServer? = nil
    ) throws -> (a: ServeProcess, aPort: Int, b: ServeProcess, bPort: Int) {
        let server = try server ?? PostgresTestServer.shared()
        let database = try server.makeDatabase("replicas")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-replicas-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let secret = dir.appendingPathComponent("jwt.secret").path
        XCTAssertTrue(FileManager.default.createFile(atPath: secret, contents: Data((0..<32).map { _ in UInt8.random(in: 0...255) }), attributes: [.posixPermissions: 0o600]))
        let config = dir.appendingPathComponent("config.yml")
        try """
            listen: "127.0.0.1:0"
            upstream: "http://127.0.0.1:\(upstreamPort)"
            store: {url: "postgres://\(server.username)@\(server.host):\(server.port)/\(database)", tls: disable}
            jwt: {secret_file: "\(secret)"}
            \(login)
            """.write(to: config, atomically: true, encoding: .utf8)
        let arguments = ["serve", "--threads", "1", "--config", config.path]
        let a = try ServeProcess(arguments: arguments, environment: ["GATEHOUSE_ADMIN_PASSWORD": Self.adminPassword])
        addTeardownBlock { a.kill() }
        let aPort = try XCTUnwrap(a.waitForListeningPort(), a.output)
        let b = try ServeProcess(arguments: arguments)
        addTeardownBlock { b.kill() }
        let bPort = try XCTUnwrap(b.waitForListeningPort(), b.output)
        return (a, aPort, b, bPort)
    }

    /// One request to a replica; `body` is sent as JSON, `rawBody` with the caller's own `Content-Type`.
    private func send(
        _ port: Int, _ method: String, _ path: String, headers: [String] = [], body: String? = nil, rawBody: String? = nil
    ) throws -> RawResponse {
        let client = try RawClient(port: port)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: replica.test\r\nConnection: close\r\n"
        for header in headers { head += header + "\r\n" }
        if body != nil { head += "Content-Type: application/json\r\n" }
        let content = body ?? rawBody
        if let content { head += "Content-Length: \(content.utf8.count)\r\n" }
        return try client.request(head + "\r\n" + (content ?? ""))
    }

    private func json(_ response: RawResponse) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any], response.bodyText)
    }

    /// Signs in as admin on `port` and returns the access token.
    private func signIn(_ port: Int) throws -> String {
        let response = try send(port, "POST", "/_gatehouse/api/login", body: #"{"username": "admin", "password": "\#(Self.adminPassword)"}"#)
        XCTAssertEqual(response.status, 200, response.bodyText)
        let result = try json(response)["result"] as? [String: Any] ?? json(response)
        return try XCTUnwrap(result["token"] as? String, response.bodyText)
    }

    func testWhatOneReplicaIssuesTheOtherHonoursAndWhatOneRevokesTheOtherRefuses() async throws {
        try await withRecordingUpstream { upstream in
            let (a, aPort, b, bPort) = try startReplicas(upstreamPort: upstream.port)
            // A token from A works on B (one JWT secret, one token table).
            let token = try signIn(aPort)
            XCTAssertEqual(try send(bPort, "GET", "/api/version", headers: ["Authorization: Bearer \(token)"]).status, 200)
            // A key created through A's API works on B at once.
            let created = try send(aPort, "POST", "/_gatehouse/api/keys", headers: ["Authorization: Bearer \(token)"], body: #"{"name": "slicer"}"#)
            XCTAssertEqual(created.status, 201, created.bodyText)
            let key = try XCTUnwrap(try json(created)["key"] as? String)
            XCTAssertEqual(try send(bPort, "GET", "/api/job", headers: ["X-Api-Key: \(key)"]).status, 200)
            XCTAssertEqual(try send(aPort, "GET", "/api/job", headers: ["X-Api-Key: \(key)"]).status, 200, "A has it cached now")
            // Revoked through B: A refuses it within the bound (the goal: well under a second).
            XCTAssertEqual(try send(bPort, "DELETE", "/_gatehouse/api/keys?name=slicer", headers: ["Authorization: Bearer \(token)"]).status, 200)
            let revoked = Date()
            XCTAssertTrue(ProxyFixture.eventually(seconds: 1) { (try? self.send(aPort, "GET", "/api/job", headers: ["X-Api-Key: \(key)"]).status) == 401 },
                          "A still honours a key B revoked, after 1 s")
            let delay = Date().timeIntervalSince(revoked)
            XCTAssertLessThan(delay, 1.0)
            // Logout on A ends the token on B.
            XCTAssertEqual(try send(aPort, "POST", "/_gatehouse/api/logout", headers: ["Authorization: Bearer \(token)"]).status, 200)
            XCTAssertTrue(ProxyFixture.eventually(seconds: 1) {
                (try? self.send(bPort, "GET", "/api/version", headers: ["Authorization: Bearer \(token)"]).status) == 401
            }, "B still honours a token A logged out")
            a.terminate()
            b.terminate()
            XCTAssertEqual(a.waitForExit(seconds: 30), 0, a.output)
            XCTAssertEqual(b.waitForExit(seconds: 30), 0, b.output)
        }
    }

    func testAOneShotTokenFromOneReplicaIsSpentOnceOnTheOther() async throws {
        try await withRecordingUpstream { upstream in
            let (a, aPort, b, bPort) = try startReplicas(upstreamPort: upstream.port)
            let token = try signIn(aPort)
            let issued = try send(aPort, "GET", "/_gatehouse/api/oneshot_token", headers: ["Authorization: Bearer \(token)"])
            XCTAssertEqual(issued.status, 200, issued.bodyText)
            let result = try json(issued)["result"] as? [String: Any] ?? json(issued)
            let oneShot = try XCTUnwrap(result["token"] as? String, issued.bodyText)
            XCTAssertEqual(try send(bPort, "GET", "/webcam/?action=stream&token=\(oneShot)").status, 200, "issued on A, spent on B")
            XCTAssertEqual(try send(aPort, "GET", "/webcam/?action=stream&token=\(oneShot)").status, 401, "never twice")
            XCTAssertEqual(try send(bPort, "GET", "/webcam/?action=stream&token=\(oneShot)").status, 401, "never twice")
            a.terminate()
            b.terminate()
        }
    }

    /// OctoPrint app-key pairing through a load balancer: the app asks on A and polls on B,
    /// the user allows on B, the app collects on A (once), and the key works everywhere.
    func testAnAppPairsThroughBothReplicas() async throws {
        try await withRecordingUpstream { upstream in
            let (a, aPort, b, bPort) = try startReplicas(upstreamPort: upstream.port, login: "octoprint_appkeys: true")
            let asked = try send(aPort, "POST", "/plugin/appkeys/request", body: #"{"app": "Cura"}"#)
            XCTAssertEqual(asked.status, 201, asked.bodyText)
            let appToken = try XCTUnwrap(try json(asked)["app_token"] as? String)
            let dialog = try XCTUnwrap(URLComponents(string: try XCTUnwrap(try json(asked)["auth_dialog"] as? String))?.path)
            XCTAssertEqual(try send(bPort, "GET", "/plugin/appkeys/request/\(appToken)").status, 202, "B knows A's request")
            let signedIn = try send(
                bPort, "POST", "/_gatehouse/login",
                headers: ["Content-Type: application/x-www-form-urlencoded", "Origin: http://replica.test"],
                rawBody: "username=admin&password=\(Self.adminPassword.replacingOccurrences(of: " ", with: "+"))&next=%2F")
            let cookie = "Cookie: gatehouse_session=\(try XCTUnwrap(IdentityFixture.sessionCookie(in: signedIn), signedIn.bodyText))"
            XCTAssertEqual(try send(bPort, "GET", dialog, headers: [cookie]).status, 200, "the approval page on B")
            let allowed = try send(
                bPort, "POST", dialog.replacingOccurrences(of: "/auth/", with: "/decision/"),
                headers: [cookie, "Origin: http://replica.test", "Content-Type: application/x-www-form-urlencoded"], rawBody: "decision=allow")
            XCTAssertEqual(allowed.status, 200, allowed.bodyText)
            let collected = try send(aPort, "GET", "/plugin/appkeys/request/\(appToken)")
            XCTAssertEqual(collected.status, 200, collected.bodyText)
            let key = try XCTUnwrap(try json(collected)["api_key"] as? String)
            XCTAssertEqual(try send(bPort, "GET", "/plugin/appkeys/request/\(appToken)").status, 404, "collected once, whichever replica asks")
            XCTAssertEqual(try send(bPort, "GET", "/api/job", headers: ["X-Api-Key: \(key)"]).status, 200)
            a.terminate()
            b.terminate()
        }
    }

    func testGuessesSpreadOverBothReplicasLockTheName() async throws {
        try await withRecordingUpstream { upstream in
            let (a, aPort, b, bPort) = try startReplicas(upstreamPort: upstream.port, login: "login: {max_failures: 4, lockout: 60s}")
            for attempt in 0..<4 {
                let port = attempt.isMultiple(of: 2) ? aPort : bPort
                let response = try send(port, "POST", "/_gatehouse/api/login", body: #"{"username": "admin", "password": "wrong guess \#(attempt)"}"#)
                XCTAssertEqual(response.status, 401, response.bodyText)
            }
            for port in [aPort, bPort] {
                let response = try send(port, "POST", "/_gatehouse/api/login", body: #"{"username": "admin", "password": "\#(Self.adminPassword)"}"#)
                XCTAssertEqual(response.status, 429, "locked on both, the right password included: \(response.bodyText)")
                XCTAssertNotNil(response.header("Retry-After"))
            }
            a.terminate()
            b.terminate()
        }
    }

    func testWhileTheDatabaseIsDownALookupIs503AndAfterwardsRequestsSucceedWithoutARestart() async throws {
        let server = try PostgresTestServer.own()
        defer { server.stop() }
        try await withRecordingUpstream { upstream in
            let (a, aPort, b, _) = try startReplicas(upstreamPort: upstream.port, on: server)
            b.terminate()
            let token = try signIn(aPort)
            let created = try send(aPort, "POST", "/_gatehouse/api/keys", headers: ["Authorization: Bearer \(token)"], body: #"{"name": "cam"}"#)
            let key = try XCTUnwrap(try json(created)["key"] as? String, created.bodyText)
            XCTAssertEqual(try send(aPort, "GET", "/api/job", headers: ["X-Api-Key: \(key)"]).status, 200)
            try server.halt()
            // Once the cached answer is older than its confirmation (a second), the key needs the store.
            XCTAssertTrue(ProxyFixture.eventually(seconds: 10) {
                (try? self.send(aPort, "GET", "/api/job", headers: ["X-Api-Key: \(key)"]).status) == 503
            }, "a key was not refused with 503 while the store was down")
            XCTAssertEqual(try send(aPort, "GET", "/api/job", headers: ["X-Api-Key: wrong-\(key)"]).status, 503, "an unknown key cannot be judged either")
            XCTAssertEqual(try send(aPort, "GET", "/api/job").status, 401, "no credential needs no store")
            try server.start()
            XCTAssertTrue(ProxyFixture.eventually(seconds: 15) {
                (try? self.send(aPort, "GET", "/api/job", headers: ["X-Api-Key: \(key)"]).status) == 200
            }, "requests did not succeed again after the database came back")
            a.terminate()
            XCTAssertEqual(a.waitForExit(seconds: 30), 0, a.output)
        }
    }
}
