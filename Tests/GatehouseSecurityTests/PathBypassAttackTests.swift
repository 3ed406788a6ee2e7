import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Ways to reach a denied path, or a protected path through a public one: none may reach the
/// device; what is forwarded is the normalized path the rules saw.
final class PathBypassAttackTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)"

    private static func rules(_ config: inout GatehouseConfig) {
        config.accessRules = [
            AccessRule(pattern: .prefix("/admin"), decision: .deny),
            AccessRule(pattern: .prefix("/public"), decision: .open),
        ]
    }

    func testADenyRuleCannotBeDodged() async throws {
        let forms = [
            "/admin", "/admin/", "//admin", "///admin/users", "/./admin", "/x/../admin", "/public/../admin",
            "/%61dmin", "/%61%64%6d%69%6e/users", "/%2e/admin", "/x/%2e%2e/admin", "/x/%2E%2E/admin", "/x/.%2e/admin",
            "/admin;jsessionid=1", "/admin;/users", "/admin/.", "/admin/x/..",
            // A combining mark after the `/` (escaped; raw ones are below).
            "/admin/%CC%8Cusers", "/admin/%CC%81",
        ]
        var attacks = forms.map { Attack.request("deny \($0)", $0, headers: [key], .refused(403)) }
        // Found by the path fuzzer: `/` and a combining mark are one Swift Character, so the
        // Character-wise prefix test in the rules missed the boundary the device sees (rules now
        // compare bytes). Over the wire, raw non-ASCII in the target never gets that far: 400.
        for raw in ["/admin/\u{30C}users", "/admin/\u{301}", "/admin;\u{30C}/users"] {
            attacks.append(.request("deny, raw combining mark \(raw)", raw, headers: [key], .refused(400)))
        }
        try await ProxyFixture.with(Self.rules) { fx in try await launch(attacks, on: fx) }
    }

    func testUnsafeEncodingsAreRefusedBeforeAnyRule() async throws {
        let forms = [
            "/admin%2fusers", "/public%2f..%2fadmin", "/public/..%2fadmin", "/public%5c..%5cadmin", "/public\\..\\admin",
            "/x/%252e%252e/admin", "/public/%252e%252e/admin", "/%c0%ae%c0%ae/admin", "/public/%c0%af../admin",
            "/admin%00", "/public/%00/../admin", "/%e0%80%ae%e0%80%ae/admin", "/..", "/public/../../admin",
            // Found by the path fuzzer: unreserved escapes decoded first leave `%252e` behind.
            "/public/%25%32%65%25%32%65/admin", "/public/%25%32e%25%32e/admin", "/public/%252%65%252%65/admin", "/x/%25%32%66admin",
        ]
        let attacks = forms.map { Attack.request("encoded \($0)", $0, headers: [key], .refused(400)) }
        try await ProxyFixture.with(Self.rules) { fx in try await launch(attacks, on: fx) }
    }

    func testAPublicRuleDoesNotOpenItsNeighbours() async throws {
        let refused = [
            "/publicx", "/public/../private", "/public;/../private", "/public;x", "/public/a;b",
            "/PUBLIC/x", "/Public", "/public./x",
        ]
        var attacks = refused.map { Attack.request("public neighbour \($0)", $0, .refused(401)) }
        attacks.append(.request("public itself", "/public/app.js", .forwarded(status: 200, check: Saw.identity(nil, uri: "/public/app.js"))))
        attacks.append(.request("public, normalized", "/public/x/../app.js", .forwarded(status: 200, check: Saw.identity(nil, uri: "/public/app.js"))))
        attacks.append(.request("public with trailing slash", "/public/", .forwarded(status: 200, check: Saw.identity(nil, uri: "/public/"))))
        attacks.append(.request("public with a bad key stays anonymous", "/public/app.js", headers: ["X-Api-Key: wrong-key-0123456789"],
            .forwarded(status: 200, check: Saw.noHeaderMentioning("wrong-key", user: nil))))
        try await ProxyFixture.with(Self.rules) { fx in try await launch(attacks, on: fx) }
    }
}
