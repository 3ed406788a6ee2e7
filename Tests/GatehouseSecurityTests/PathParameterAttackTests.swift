import GatehouseCore
import GatehouseTestSupport
import XCTest

/// `;` path parameters that leave a dot segment (or nothing) behind: servlet containers and many
/// embedded device servers cut the parameter first and then walk up, so `/x/..;/admin` is
/// `/admin` to them. Every such segment is refused (400) before any rule is read, however it is
/// spelled; parameters that leave a real segment behind are matched on that segment.
final class PathParameterAttackTests: XCTestCase {
    static let viewerKey = "viewer-key-0123456789abcdef0123456789abcdef"
    private let viewer = "X-Api-Key: \(PathParameterAttackTests.viewerKey)"

    static func rules(_ config: inout GatehouseConfig) {
        config.apiKeys.append(APIKeyRecord(name: "viewer", user: "vera", roles: ["viewer"], digest: .of(viewerKey)))
        config.accessRules = [
            AccessRule(pattern: .prefix("/admin"), decision: .deny),
            AccessRule(pattern: .prefix("/settings"), decision: .roles(["admin"])),
            AccessRule(pattern: .prefix("/pub"), decision: .open),
        ]
    }

    static let dotSegmentsBehindParameters = [
        // The review's findings.
        "/x/..;/admin", "/x/..;/settings", "/x/%2e%2e;/admin", "/pub/..;/admin",
        // The same class, spelled otherwise.
        "/x/%2E%2E;/settings", "/x/.%2e;/admin", "/x/%2e.;/admin", "/x/..;jsessionid=0/admin", "/x/..;a=b;c=d/settings",
        "/x/..%3B/admin", "/x/..%3b/settings", "/x/%2e%2e%3b/admin", "/x/%2E%2E%3B/settings", "/x/y/..;/..;/admin",
        "/x;a/..;/admin", "/x/.;/admin", "/x/.;x=1/settings", "/pub/.;/../admin", "/..;/admin", "/pub/..;", "/pub/..;/",
        "/pub/sub/..;/..;/settings", "/x/..;/..;/..;/admin",
        // Segments that are empty once cut: merged by the device into the neighbours.
        "/x/;/admin", "/x/;jsessionid=1/admin", "/pub/;x/../admin", "/x/%3B/admin", "/x/%3bjs=1/settings", "/;/admin",
        // A `;` a device that decodes twice would see.
        "/pub/..%253B/admin", "/pub/..%25%33%42/admin", "/x/..%253b/settings", "/pub/%252e%252e%253B/admin",
    ]

    func testDotSegmentsBehindParametersAreRefusedBeforeAnyRule() async throws {
        var attacks: [Attack] = []
        for form in Self.dotSegmentsBehindParameters {
            attacks.append(.request("viewer key \(form)", form, headers: [viewer], .refused(400)))
            attacks.append(.request("no key \(form)", form, .refused(400)))
        }
        try await ProxyFixture.with(Self.rules) { fx in try await launch(attacks, on: fx) }
    }

    func testParametersNeverHideGatehousesOwnOrClaimedPaths() async throws {
        let forms = [
            "/_gatehouse;x/api/login", "/_gatehouse%3Bx/healthz", "/_gatehouse/api;x/keys", "/plugin/appkeys;x/request",
            "/plugin;a/appkeys/probe", "/access/oneshot_token;x", "/access/oneshot_token%3Bjs=1",
        ]
        let attacks = forms.map { Attack.request("\($0)", $0, headers: [viewer], .refused(400)) }
        try await IdentityFixture.with({ config in
            Self.rules(&config)
            config.octoPrintAppKeys = true
            config.moonrakerOneshot = true
        }) { fx in try await launch(attacks, on: fx) }
    }

    func testParametersThatLeaveASegmentAreMatchedOnIt() async throws {
        let attacks: [Attack] = [
            .request("deny with a parameter", "/admin;jsessionid=1", headers: [viewer], .refused(403)),
            .request("deny with an encoded parameter", "/admin%3Bjsessionid=1", headers: [viewer], .refused(403)),
            .request("deny with a parameter below", "/admin/users;x=1", headers: [viewer], .refused(403)),
            .request("roles with a parameter", "/settings;x=1/network", headers: [viewer], .refused(403)),
            .request("roles with an encoded parameter", "/settings%3bx/network", headers: [viewer], .refused(403)),
            .request("a public path with a parameter is not public", "/pub;x/app.js", .refused(401)),
            .request("a public path with an encoded parameter is not public", "/pub%3Bx/app.js", .refused(401)),
            .request("an ordinary parameter is forwarded as it is", "/files/a;v=1", headers: [viewer],
                .forwarded(status: 200, check: Saw.identity("vera", uri: "/files/a;v=1"))),
            .request("admin may reach settings with a parameter", "/settings;x=1", headers: ["X-Api-Key: \(ProxyFixture.aliceKey)"],
                .forwarded(status: 200, check: Saw.identity("alice", uri: "/settings;x=1"))),
        ]
        try await ProxyFixture.with(Self.rules) { fx in try await launch(attacks, on: fx) }
    }
}
