import Foundation
import GatehouseCore
import GatehouseTestSupport
import NIOConcurrencyHelpers
import XCTest

/// The audit log records every security event as one JSON object per line, and never a secret.
final class AuditLogTests: XCTestCase {
    /// Collects the audit lines written.
    private final class Lines: Sendable {
        private let box = NIOLockedValueBox<[String]>([])
        var all: [String] { box.withLockedValue { $0 } }
        func append(_ line: String) { box.withLockedValue { $0.append(line) } }
        /// Every line parsed; a line that is not one JSON object fails the test.
        func events(file: StaticString = #filePath, line: UInt = #line) -> [[String: String]] {
            all.compactMap { text in
                XCTAssertTrue(text.hasSuffix("\n") && text.dropLast().firstIndex(of: "\n") == nil, "not one line: \(text)", file: file, line: line)
                let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String]
                XCTAssertNotNil(object, "not a JSON object of strings: \(text)", file: file, line: line)
                return object
            }
        }
    }

    func testSignInsLockoutsLogoutsAndChangesAreRecordedWithoutSecrets() async throws {
        let lines = Lines()
        let audit = AuditLog { lines.append($0) }
        try await IdentityFixture.with(audit: audit, { $0.basicAuth = true }) { fx in
            let (access, _) = try fx.login("root")
            let admin = "Authorization: Bearer \(access)"
            XCTAssertEqual(try fx.api("POST", "user", json: ["username": "carol", "password": "carol's long passphrase", "roles": ["viewer"]], headers: [admin]).0.status, 201)
            let (_, made) = try fx.api("POST", "keys", json: ["name": "slicer"], headers: [admin])
            let key = try XCTUnwrap(made["key"] as? String)
            XCTAssertEqual(try fx.api("DELETE", "keys?name=slicer", headers: [admin]).0.status, 200)
            let (_, cookie) = try fx.formLogin()
            XCTAssertEqual(try fx.send("POST", "/_gatehouse/logout", headers: ["Cookie: gatehouse_session=\(try XCTUnwrap(cookie))", "Sec-Fetch-Site: same-origin"], body: "").status, 303)
            let basic = "Authorization: Basic " + Data("carol:not her password".utf8).base64EncodedString()
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [basic]).status, 401)
            let forged = "mallory\"}\n{\"event\":\"login\",\"user\":\"root"
            for _ in 0..<4 { _ = try fx.api("POST", "login", json: ["username": forged, "password": "guess"]) }
            XCTAssertEqual(try fx.api("POST", "login", json: ["username": "alice", "password": IdentityFixture.password]).0.status, 429)

            let events = lines.events()
            func find(_ event: String, _ check: ([String: String]) -> Bool = { _ in true }) -> [String: String]? {
                events.first { $0["event"] == event && check($0) }
            }
            XCTAssertEqual(find("login") { $0["user"] == "root" }?["via"], "api")
            XCTAssertEqual(find("user_created")?["user"], "carol")
            XCTAssertEqual(find("user_created")?["actor"], "root")
            XCTAssertEqual(find("key_created")?["name"], "slicer")
            XCTAssertEqual(find("key_revoked")?["actor"], "root")
            XCTAssertEqual(find("login") { $0["user"] == "alice" }?["via"], "login_page")
            XCTAssertEqual(find("logout")?["user"], "alice")
            XCTAssertEqual(find("login_failed") { $0["via"] == "basic" }?["user"], "carol")
            XCTAssertNotNil(find("lockout"), "the fifth failure from one address starts a lockout")
            XCTAssertEqual(find("login_failed") { $0["reason"] == "unknown user name" }?["client"], "127.0.0.1")
            XCTAssertNil(find("login_failed") { $0["reason"] == "unknown user name" }?["user"], "a name the store does not know is not written")
            XCTAssertEqual(events.filter { $0["event"] == "login" && $0["user"] == "root" }.count, 1, "no line was forged")
            XCTAssertNil(find("login_locked"), "attempts refused during a lockout are not written one by one")
            for line in lines.all {
                for secret in [IdentityFixture.password, "carol's long passphrase", "not her password", key, access, "mallory"] {
                    XCTAssertFalse(line.contains(secret), "a secret reached the audit log: \(line)")
                }
            }
        }
    }

    func testAFileLogIsAppendedToByTheCommandLineToo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-audit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("config.yml")
        try "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\naudit_log: audit.jsonl\n".write(to: config, atomically: true, encoding: .utf8)
        let added = try GatehouseBinary.run(["user", "add", "dave", "--config", config.path], stdin: "dave's long passphrase\n")
        XCTAssertEqual(added.status, 0, added.output)
        XCTAssertEqual(try GatehouseBinary.run(["user", "disable", "dave", "--config", config.path]).status, 0)
        let text = try String(contentsOf: dir.appendingPathComponent("audit.jsonl"), encoding: .utf8)
        let events = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        XCTAssertEqual(events.map { $0["event"] }, ["user_created", "user_disabled"], text)
        XCTAssertEqual(events.first?["actor"], "command line")
        XCTAssertFalse(text.contains("passphrase"))
        let mode = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("audit.jsonl").path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600, "the audit log is readable by its owner only")
        // An audit log that cannot be written stops a change before it is made.
        try "listen: 127.0.0.1:0\nupstream: http://127.0.0.1:9\naudit_log: /nonexistent-dir/audit.jsonl\n".write(to: config, atomically: true, encoding: .utf8)
        let refused = try GatehouseBinary.run(["user", "enable", "dave", "--config", config.path])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("cannot open the audit log"), refused.output)
    }
}
