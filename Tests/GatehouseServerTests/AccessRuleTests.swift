import GatehouseCore
import GatehouseTestSupport
import XCTest

/// End to end: access rules decide on the normalized path, and the device receives exactly that
/// path; paths that cannot be normalized safely never reach it.
final class AccessRuleTests: XCTestCase {
    private let alice = "X-Api-Key: \(ProxyFixture.aliceKey)"  // roles admin, operator
    private let reader = "X-Api-Key: \(ProxyFixture.readerKey)"  // role viewer, read-only

    private static func rules(_ config: inout GatehouseConfig) {
        config.accessRules = [
            AccessRule(pattern: .prefix("/admin"), decision: .deny),
            AccessRule(pattern: .prefix("/plugin/secret"), caseInsensitive: true, decision: .deny),
            AccessRule(pattern: .prefix("/api/files/"), methods: ["POST", "DELETE"], decision: .roles(["operator"])),
            AccessRule(pattern: .prefix("/api/settings"), decision: .roles(["admin"])),
            AccessRule(pattern: .exact("/api/version"), decision: .open),
            AccessRule(pattern: .prefix("/webcam/"), decision: .authenticated, queryCredentials: [.apiKey]),
        ]
        config.publicPaths = ["/static"]
    }

    func testDenyIsForbiddenEvenWithAValidKeyAndNothingReachesTheDevice() async throws {
        try await ProxyFixture.with(Self.rules) { fx in
            for path in ["/admin", "/admin/users", "//admin", "/./admin", "/static/../admin", "/%61dmin", "/admin;x=1", "/admin/", "/x/%2e%2e/admin"] {
                fx.upstream.reset()
                AuthTest.assertForbidden(try AuthTest.send(fx, "GET", path, [alice]), fx, line: #line)
                AuthTest.assertForbidden(try AuthTest.send(fx, "GET", path), fx)
            }
        }
    }

    func testTheMoonrakerPresetKeepsItsOwnKeyAndJSONRPCOverHTTPFromTheDevice() async throws {
        try await ProxyFixture.with({ DevicePreset.moonraker.apply(to: &$0) }) { fx in
            // With a valid admin key: JSON-RPC over HTTP names its method in the body, past every
            // path rule, and Moonraker's own key would open Moonraker without Gatehouse.
            let call = #"{"jsonrpc":"2.0","method":"access.get_api_key","id":1}"#
            for path in ["/server/jsonrpc", "/server/jsonrpc/", "/server//jsonrpc", "/server/./jsonrpc"] {
                AuthTest.assertForbidden(try AuthTest.send(fx, "POST", path, [alice, "Content-Type: application/json"], body: call), fx)
            }
            AuthTest.assertForbidden(try AuthTest.send(fx, "GET", "/access/api_key", [alice]), fx)
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/server/info", [alice]).status, 200, "the rest of Moonraker's API is open to the key")
        }
    }

    func testACaseInsensitiveRuleCoversEverySpelling() async throws {
        try await ProxyFixture.with(Self.rules) { fx in
            for path in ["/plugin/secret", "/PLUGIN/Secret/x", "/Plugin/SECRET;a"] {
                AuthTest.assertForbidden(try AuthTest.send(fx, "GET", path, [alice]), fx)
            }
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/ADMIN", [alice]).status, 200, "other rules are case-sensitive")
        }
    }

    func testPublicRuleNextToAProtectedPath() async throws {
        try await ProxyFixture.with(Self.rules) { fx in
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/version").status, 200)
            XCTAssertEqual(fx.upstream.requests.last?.uri, "/api/version")
            XCTAssertEqual(fx.upstream.requests.last?.values("X-Remote-User"), [])
            fx.upstream.reset()
            for path in ["/api/version/../printer", "/api/version/x", "/api/versionx", "/api/version;x", "/api/version%2f..%2fprinter", "/static/..%2fapi/printer", "/static%2f../api"] {
                let response = try AuthTest.send(fx, "GET", path)
                XCTAssertTrue([400, 401].contains(response.status), "\(path): \(response.status)")
                XCTAssertTrue(fx.upstream.requests.isEmpty, "\(path) reached the device")
            }
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/static/app.js").status, 200)
        }
    }

    func testTheDeviceReceivesTheNormalizedPathThatWasChecked() async throws {
        try await ProxyFixture.with(Self.rules) { fx in
            let cases = [
                ("/api/./job", "/api/job"), ("//api//job", "/api/job"), ("/api/x/../job?a=%2f", "/api/job?a=%2f"),
                ("/%61pi/job", "/api/job"), ("/api/files/a%20b.gcode", "/api/files/a%20b.gcode"), ("/api/job/", "/api/job/"),
            ]
            for (sent, received) in cases {
                fx.upstream.reset()
                XCTAssertEqual(try AuthTest.send(fx, "GET", sent, [alice]).status, 200, sent)
                XCTAssertEqual(fx.upstream.requests.map(\.uri), [received], sent)
            }
        }
    }

    func testUnsafePathsAre400() async throws {
        try await ProxyFixture.with(Self.rules) { fx in
            for path in ["/a%2fb", "/a%5cb", "/a\\b", "/a%00b", "/..", "/a/../../b", "/%c0%ae%c0%ae/admin", "/a%252e%252e/admin", "/a%zz"] {
                let response = try AuthTest.send(fx, "GET", path, [alice])
                XCTAssertEqual(response.status, 400, path)
                XCTAssertNotNil(AuthTest.detail(response), path)
            }
            XCTAssertTrue(fx.upstream.requests.isEmpty, "\(fx.upstream.requests.map(\.uri))")
        }
    }

    func testRolesRule() async throws {
        try await ProxyFixture.with(Self.rules) { fx in
            XCTAssertEqual(try AuthTest.send(fx, "POST", "/api/files/local", [alice]).status, 200)
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/files/local", [reader]).status, 200, "GET is not covered by the rule")
            fx.upstream.reset()
            AuthTest.assertForbidden(try AuthTest.send(fx, "GET", "/api/settings", [reader]), fx)
            AuthTest.assertUnauthorized(try AuthTest.send(fx, "GET", "/api/settings"), fx)
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/settings", [alice]).status, 200)
        }
    }

    func testARuleCanAcceptTheQueryKeyOnItsPathsOnly() async throws {
        try await ProxyFixture.with(Self.rules) { fx in
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/webcam/?action=stream&apikey=\(ProxyFixture.aliceKey)").status, 200)
            XCTAssertEqual(fx.upstream.requests.last?.uri, "/webcam/?action=stream", "the key is not forwarded")
            XCTAssertEqual(fx.upstream.requests.last?.values("X-Remote-User"), ["alice"])
            fx.upstream.reset()
            AuthTest.assertUnauthorized(try AuthTest.send(fx, "GET", "/api/printer?apikey=\(ProxyFixture.aliceKey)"), fx)
        }
    }
}
