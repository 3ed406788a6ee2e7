import GatehouseCore
import XCTest

final class AccessRulesTests: XCTestCase {
    private func config(_ yaml: String) throws -> GatehouseConfig { try ConfigLoader.parse(yaml: yaml) }

    private func decision(_ policy: AccessPolicy, _ path: String, method: String = "GET", host: String? = "printer.local") -> AccessDecision {
        policy.decision(method: method, host: host, path: path)
    }

    func testFirstMatchingRuleDecidesAndAuthenticatedIsTheDefault() throws {
        let policy = try config("""
            access_rules:
              - {prefix: /admin, access: deny}
              - {prefix: /api/files/, methods: [POST, DELETE], roles: [operator, admin]}
              - {path: /api/version, access: public}
              - {glob: "/webcam/*.jpg", access: public}
              - {glob: "/downloads/**/*.gcode", roles: [viewer]}
              - {prefix: /, host: kiosk.local, access: public}
            public_paths: [/static]
            """).accessPolicy
        XCTAssertEqual(decision(policy, "/admin"), .deny)
        XCTAssertEqual(decision(policy, "/admin/users"), .deny)
        XCTAssertEqual(decision(policy, "/administrator"), .authenticated, "segment boundary")
        XCTAssertEqual(decision(policy, "/api/files/local", method: "POST"), .roles(["operator", "admin"]))
        XCTAssertEqual(decision(policy, "/api/files/local", method: "GET"), .authenticated, "methods limit the rule")
        XCTAssertEqual(decision(policy, "/api/version"), .open)
        XCTAssertEqual(decision(policy, "/api/version/x"), .authenticated, "exact")
        XCTAssertEqual(decision(policy, "/webcam/snap.jpg"), .open)
        XCTAssertEqual(decision(policy, "/webcam/a/snap.jpg"), .authenticated, "* stays in one segment")
        XCTAssertEqual(decision(policy, "/downloads/a/b/c.gcode"), .roles(["viewer"]))
        XCTAssertEqual(decision(policy, "/downloads/c.gcode"), .roles(["viewer"]), "**/ also matches no segment")
        XCTAssertEqual(decision(policy, "/downloads/c.gcodex"), .authenticated)
        XCTAssertEqual(decision(policy, "/anything", host: "KIOSK.local:8080"), .open, "host without case or port")
        XCTAssertEqual(decision(policy, "/anything", host: "other.local"), .authenticated)
        XCTAssertEqual(decision(policy, "/static/app.js"), .open, "public_paths shorthand")
        XCTAssertEqual(decision(policy, "/staticx"), .authenticated)
    }

    /// Paths are compared as bytes: Swift's String comparisons follow Unicode (a `/` followed by a
    /// combining mark is one Character; canonically equivalent strings are `==`; `K` (Kelvin)
    /// lowercases to `k`), and each of those would let the rules see a different path than the device.
    func testRulesCompareBytesNotUnicodeCharacters() throws {
        let policy = try config("""
            access_rules:
              - {prefix: /admin, access: deny}
              - {path: "/caf\u{E9}", access: public}
              - {prefix: /kit, access: public, case_insensitive: true}
            """).accessPolicy
        XCTAssertEqual(decision(policy, "/admin/\u{30C}users"), .deny, "the / before a combining mark is still a boundary")
        XCTAssertEqual(decision(policy, "/admin;\u{30C}/x"), .deny)
        XCTAssertEqual(decision(policy, "/caf\u{E9}"), .open)
        XCTAssertEqual(decision(policy, "/cafe\u{301}"), .authenticated, "canonically equivalent is not the same path")
        XCTAssertEqual(decision(policy, "/KIT/x"), .open)
        XCTAssertEqual(decision(policy, "/\u{212A}it/x"), .authenticated, "only ASCII case is folded")
    }

    func testSemicolonParametersCannotDodgeARuleAndAreNeverPublic() throws {
        let policy = try config("""
            access_rules:
              - {prefix: /admin, access: deny}
              - {prefix: /static, access: public}
            """).accessPolicy
        XCTAssertEqual(decision(policy, "/admin;jsessionid=1"), .deny)
        XCTAssertEqual(decision(policy, "/admin;x/users"), .deny)
        XCTAssertEqual(decision(policy, "/static;x/app.js"), .authenticated)
        XCTAssertEqual(decision(policy, "/static/app.js;v=2"), .authenticated)
        XCTAssertEqual(AccessPolicy.matchingPath("/a;b/c;d=1;e/f"), "/a/c/f")
    }

    func testCaseIsSignificantUnlessTheRuleSaysOtherwise() throws {
        let policy = try config("""
            access_rules:
              - {prefix: /Admin, access: deny}
              - {prefix: /secret, access: deny, case_insensitive: true}
            """).accessPolicy
        XCTAssertEqual(decision(policy, "/Admin/x"), .deny)
        XCTAssertEqual(decision(policy, "/admin/x"), .authenticated)
        XCTAssertEqual(decision(policy, "/SeCrEt/x"), .deny)
    }

    func testGlobIsLinearNotBacktracking() {
        let rule = AccessRule(pattern: .glob("/**/**/**/**/**/**/x"), decision: .deny)
        let path = "/" + String(repeating: "a/", count: 3000) + "y"
        XCTAssertFalse(rule.matches(method: "GET", host: nil, path: path))
        XCTAssertTrue(rule.matches(method: "GET", host: nil, path: "/a/b/x"))
        XCTAssertTrue(rule.matches(method: "GET", host: nil, path: "/x"))
    }

    func testShadowedRulesAreFound() throws {
        let policy = try config("""
            access_rules:
              - {prefix: /api, access: authenticated}
              - {prefix: /api/files, access: deny}
              - {path: /api/version, access: public}
              - {prefix: /webcam/, methods: [GET], access: public}
              - {prefix: /webcam/stream, methods: [GET, POST], access: deny}
              - {glob: "/files/**", roles: [admin]}
              - {prefix: /files/a, access: deny}
              - {path: /other, access: public}
            """).accessPolicy
        let shadowed = policy.shadowedRules().map { [$0.rule, $0.by] }
        XCTAssertEqual(shadowed, [[1, 0], [2, 0], [6, 5]])
    }

    func testBadRulesAreLocatedErrors() {
        let cases: [(String, String)] = [
            ("- {access: deny}", "exactly one of path"),
            ("- {path: /a, prefix: /b, access: deny}", "exactly one of path"),
            ("- {path: a, access: deny}", "normal form"),
            ("- {prefix: /a/../b, access: deny}", "normal form"),
            ("- {prefix: /a%2fb, access: deny}", "normal form"),
            ("- {prefix: /a*, access: deny}", "normal form"),
            ("- {glob: /a/***, access: deny}", "with *"),
            ("- {path: /a}", "exactly one of access"),
            ("- {path: /a, access: deny, roles: [x]}", "exactly one of access"),
            ("- {path: /a, access: maybe}", "public, authenticated or deny"),
            ("- {path: /a, roles: []}", "at least one role"),
            ("- {path: /a, access: deny, methods: [get]}", "upper-case method"),
            ("- {path: /a, access: deny, host: 'a:80'}", "without port"),
            ("- {path: /a, access: deny, query_credentials: [cookie]}", "expected apikey"),
            ("- {path: /a, access: deny, colour: red}", "unknown key"),
        ]
        for (rule, message) in cases {
            XCTAssertThrowsError(try config("listen: 127.0.0.1:8080\naccess_rules:\n  \(rule)\n"), rule) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(message), "\(rule): \(text)")
                XCTAssertTrue(text.hasPrefix("config.yml:3: access_rules[0]"), "\(rule): \(text)")
            }
        }
    }
}
