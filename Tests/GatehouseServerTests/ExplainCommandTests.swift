import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// End to end: the real binary's `explain` and `check-config` on access rules.
final class ExplainCommandTests: XCTestCase {
    private let key = "alice-key-0123456789abcdef0123456789abcdef"

    private func configFile(_ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-explain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("config.yml").path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    private func rulesConfig(extraRules: String = "") throws -> String {
        return try configFile("""
            listen: 127.0.0.1:8080
            upstream: http://127.0.0.1:5000
            api_keys:
              - {name: slicer, user: alice, roles: [operator], hash: "\(SecretDigest.of(key))"}
            access_rules:
              - {prefix: /admin, access: deny}
              - {prefix: /api/settings, roles: [admin]}
              - {path: /api/version, access: public}
              - {prefix: /webcam/, access: authenticated, query_credentials: [apikey]}
            \(extraRules)
            """)
    }

    func testExplainNamesTheRuleTheIdentityAndTheDecision() throws {
        let config = try rulesConfig()
        var r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/api/./x/../version"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("normalized: /api/version"), r.output)
        XCTAssertTrue(r.output.contains("rule:       path /api/version → public  [access_rules #3, line 8]"), r.output)
        XCTAssertTrue(r.output.contains("identity:   none (public path)"), r.output)
        XCTAssertTrue(r.output.contains("decision:   forward to http://127.0.0.1:5000 as GET /api/version"), r.output)

        r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/admin;x=1/users", "--header", "X-Api-Key: \(key)"])
        XCTAssertTrue(r.output.contains("decision:   403 denied_by_rule"), r.output)

        r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/api/settings", "--header", "X-Api-Key: \(key)"])
        XCTAssertTrue(r.output.contains("rule:       prefix /api/settings → roles [admin]"), r.output)
        XCTAssertTrue(r.output.contains("decision:   403 missing_role"), r.output)

        r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/webcam/?action=stream&apikey=\(key)"])
        XCTAssertTrue(r.output.contains("identity:   alice (roles operator) by api_key 'slicer'"), r.output)
        XCTAssertTrue(r.output.contains("as GET /webcam/?action=stream\n"), "the key is not forwarded: \(r.output)")

        r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/printer"])
        XCTAssertTrue(r.output.contains("rule:       none matches → authenticated (the default)"), r.output)
        XCTAssertTrue(r.output.contains("decision:   401 missing_credential"), r.output)

        r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/a%2fb"])
        XCTAssertTrue(r.output.contains("decision:   400 from Gatehouse — The request path is refused: the path holds an encoded slash (%2F)."), r.output)

        r = try GatehouseBinary.run(["explain", "--config", config, "TRACE", "/printer"])
        XCTAssertTrue(r.output.contains("decision:   405 from Gatehouse"), r.output)

        r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/api/version", "--header", "X_Remote_User: admin", "--header", "Remote-User: admin"])
        XCTAssertTrue(r.output.contains("header:     X-Forwarded-Proto: http"), r.output)
        XCTAssertFalse(r.output.contains("admin"), "the headers the device would get are listed, and these are not among them: \(r.output)")

        r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/x", "--from", "not-an-ip"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--from"), r.output)
    }

    func testExplainNamesPresetRulesAndPathsGatehouseAnswersItself() throws {
        let config = try configFile("""
            preset: octoprint
            api_keys:
              - {name: slicer, user: alice, roles: [operator], hash: "\(SecretDigest.of(key))"}
            """)
        var r = try GatehouseBinary.run(["explain", "--config", config, "GET", "/api/job?apikey=\(key)"])
        XCTAssertTrue(r.output.contains("[preset octoprint]"), r.output)
        XCTAssertTrue(r.output.contains("identity:   alice"), r.output)
        r = try GatehouseBinary.run(["explain", "--config", config, "POST", "/plugin/appkeys/request"])
        XCTAssertTrue(r.output.contains("decision:   answered by Gatehouse itself (octoprint_appkeys); never forwarded to the device"), r.output)
        r = try GatehouseBinary.run(["explain", "--config", config, "--header", "Connection: Upgrade", "--header", "Upgrade: websocket", "GET", "/plugin/appkeys/probe"])
        XCTAssertTrue(r.output.contains("decision:   400 from Gatehouse"), r.output)
    }

    func testCheckConfigFailsOnARuleThatCanNeverMatch() throws {
        var r = try GatehouseBinary.run(["check-config", "--config", try rulesConfig()])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("4 access rule(s)"), r.output)

        let shadowed = try rulesConfig(extraRules: "  - {prefix: /admin/users, access: public}")
        r = try GatehouseBinary.run(["check-config", "--config", shadowed])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("access_rules #5 (line 10) prefix /admin/users → public can never match: access_rules #1 (line 6) prefix /admin → deny covers every request it would"), r.output)
    }
}

