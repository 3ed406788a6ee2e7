import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Headers a device reads differently from Gatehouse: names with `_` (a WSGI or PHP device reads
/// `X_Api_Key` as `X-Api-Key`), the identity headers of other authentication proxies, a
/// `Connection` header that deletes what the request needs, methods and targets that are not
/// what they look like, and protocol switches other than the WebSocket that was asked for.
final class HeaderAliasAttackTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)"
    private let viewer = "X-Api-Key: \(PathParameterAttackTests.viewerKey)"

    /// Nothing with `_` in its name, and nothing the attacker wrote, reached the device.
    private static func nothingUnderscoredOr(_ marker: String, user: String) -> @Sendable (RecordedRequest) -> String? {
        { request in
            let underscored = request.headers.filter { $0.name.contains("_") }
            if !underscored.isEmpty { return "the device saw \(underscored.map(\.name))" }
            return Saw.noHeaderMentioning(marker, user: user)(request)
        }
    }

    func testAnUnderscoreAliasCannotReplaceTheConsumedCredential() async throws {
        var attacks: [Attack] = []
        for alias in ["X_Api_Key", "X-API_KEY", "x_api-key", "X_API_KEY", "X_Authorization", "Authorization_Token"] {
            attacks.append(.request("\(alias) beside a valid key", "/api/job", headers: [viewer, "\(alias): other-mallory-key"],
                .forwarded(status: 200, check: Self.nothingUnderscoredOr("mallory", user: "vera"))))
        }
        // Never read as a credential either: alone it is no credential at all.
        attacks.append(.request("X_Api_Key alone", "/api/job", headers: ["X_Api_Key: \(ProxyFixture.aliceKey)"], .refused(401)))
        attacks.append(.request("Authorization_ alone", "/api/job", headers: ["X_Authorization: Bearer \(ProxyFixture.aliceKey)"], .refused(401)))
        for name in ["X_Custom", "Accept_Language", "User_Agent", "X_CSRF_Token", "Content_Type"] {
            attacks.append(.request("\(name) is dropped", "/api/job", headers: [key, "\(name): mallory"],
                .forwarded(status: 200, check: Self.nothingUnderscoredOr("mallory", user: "alice"))))
        }
        try await ProxyFixture.with(PathParameterAttackTests.rules) { fx in try await launch(attacks, on: fx) }
    }

    func testForwardUnderscoreHeadersLetsNamedOnesThrough() async throws {
        let attacks: [Attack] = [
            .request("named", "/api/job", headers: [key, "X_Trace_Id: 42"],
                .forwarded(status: 200, check: { $0.headers.contains { $0.name == "X_Trace_Id" && $0.value == "42" } ? nil : "X_Trace_Id was dropped" })),
            .request("named, other case", "/api/job", headers: [key, "x_trace_id: 43"],
                .forwarded(status: 200, check: { $0.headers.contains { $0.name == "x_trace_id" } ? nil : "x_trace_id was dropped" })),
            .request("not named", "/api/job", headers: [key, "X_Other: mallory"],
                .forwarded(status: 200, check: Self.nothingUnderscoredOr("mallory", user: "alice"))),
        ]
        try await ProxyFixture.with({ $0.forwardUnderscoreHeaders = ["X_Trace_Id"] }) { fx in try await launch(attacks, on: fx) }
    }

    func testForwardUnderscoreHeadersRefusesNamesGatehouseReadsOrSets() {
        for name in ["X_Api_Key", "X_Remote_User", "Remote_User", "X_Forwarded_For", "x_forwarded_anything", "Content_Length",
                     "Transfer_Encoding", "X_Auth_Request_User", "X_Real_IP", "Sec_Fetch_Site", "X_CSRF_Token"] {
            let yaml = "forward_underscore_headers:\n  - \(name)\n"
            XCTAssertThrowsError(try ConfigLoader.parse(yaml: yaml), name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("config.yml:2: forward_underscore_headers[0]"), text)
                XCTAssertTrue(text.contains("Gatehouse reads or sets"), text)
            }
        }
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: "forward_underscore_headers: [X-Plain]\n")) { error in
            XCTAssertTrue("\(error)".contains("holds no _"), "\(error)")
        }
        XCTAssertEqual(try ConfigLoader.parse(yaml: "forward_underscore_headers: [X_Trace_Id]\n").forwardUnderscoreHeaders, ["X_Trace_Id"])
    }

    func testIdentityHeadersOfOtherProxiesNeverReachTheDevice() async throws {
        let family = [
            "Remote-User", "Remote-Groups", "Remote-Email", "Remote-Name", "X-Forwarded-User", "X-Forwarded-Groups", "X-Forwarded-Email",
            "X-Forwarded-Preferred-Username", "X-Forwarded-Access-Token", "X-Auth-Request-User", "X-Auth-Request-Groups",
            "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username", "X-Auth-Request-Access-Token", "X-WEBAUTH-USER", "X-WEBAUTH-EMAIL",
            "X-WEBAUTH-ROLE", "X-Authentik-Username", "X-Authentik-Groups", "X-Pomerium-Claim-Email", "Cf-Access-Authenticated-User-Email",
            "Tailscale-User-Login", "X-Authenticated-User", "X-Remote-Email", "X-Remote-Groups", "X-User", "X-Email",
        ]
        var attacks: [Attack] = []
        for name in family {
            for spelling in [name, name.uppercased(), name.lowercased()] {
                attacks.append(.request("\(spelling) with a key", "/api/job", headers: [viewer, "\(spelling): mallory"],
                    .forwarded(status: 200, check: Saw.noHeaderMentioning("mallory", user: "vera"))))
            }
            attacks.append(.request("\(name) on a public path", "/pub/x", headers: ["\(name): mallory"],
                .forwarded(status: 200, check: Saw.noHeaderMentioning("mallory", user: nil))))
            attacks.append(.request("\(name) alone", "/api/job", headers: ["\(name): admin"], .refused(401)))
        }
        try await ProxyFixture.with(PathParameterAttackTests.rules) { fx in try await launch(attacks, on: fx) }
    }

    func testConfiguredIdentityHeadersJoinTheFamily() async throws {
        let attacks: [Attack] = [
            .request("the configured name", "/api/job", headers: [key, "X-Printer-User: mallory"],
                .forwarded(status: 200, check: { r in r.values("X-Printer-User") == ["alice"] ? nil : "X-Printer-User was \(r.values("X-Printer-User"))" })),
            .request("the default name still stripped", "/api/job", headers: [key, "X-Remote-User: mallory"],
                .forwarded(status: 200, check: { r in r.values("X-Remote-User").isEmpty ? nil : "X-Remote-User reached the device" })),
        ]
        try await ProxyFixture.with({ $0.identityHeaders.user = "X-Printer-User" }) { fx in try await launch(attacks, on: fx) }
    }

    func testConnectionCannotDeleteWhatTheRequestNeeds() async throws {
        let named = [
            "host", "Host", "HOST, close", "content-length", "Transfer-Encoding", "X-Forwarded-For", "x-forwarded-proto", "X-Forwarded-Host",
            "X-Forwarded-Port", "Forwarded", "X-Real-IP", "X-Remote-User", "X-Remote-Roles", "X-Remote-Auth", "Remote-User",
            "X-Auth-Request-User", "keep-alive, host", "Upgrade, Host",
        ]
        var attacks = named.map { Attack.request("Connection: \($0)", "/api/job", headers: [key, "Connection: \($0)"], .refused(400)) }
        attacks.append(.request("Connection: keep-alive still works", "/api/job", headers: [key, "Connection: keep-alive"],
            .forwarded(status: 200, check: Saw.identity("alice"))))
        attacks.append(.request("Connection naming an ordinary header drops it", "/api/job", headers: [key, "Connection: X-Debug", "X-Debug: 1"],
            .forwarded(status: 200, check: { $0.values("X-Debug").isEmpty ? nil : "X-Debug was forwarded" })))
        try await ProxyFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testTraceAndOtherUnlistedMethodsAre405() async throws {
        var attacks: [Attack] = []
        for method in ["TRACE", "PROPFIND", "MKCOL", "LOCK", "SEARCH", "PURGE"] {
            attacks.append(.request("\(method)", "/api/job", method: method, headers: [key, "Cookie: secret-cookie=1"],
                .answered(405, check: { r in r.header("Allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" ? nil : "Allow was \(r.header("Allow") ?? "none")" })))
        }
        // Every upper-case token is a method to Gatehouse's parser (SwiftNIO's refused those it did
        // not know, such as TRACK): unlisted ones are 405 like the rest.
        attacks.append(.request("TRACK", "/api/job", method: "TRACK", headers: [key],
            .answered(405, check: { r in r.header("Allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" ? nil : "Allow was \(r.header("Allow") ?? "none")" })))
        attacks.append(.request("TRACE on a public path", "/pub/x", method: "TRACE", .refused(405)))
        attacks.append(.request("TRACE on Gatehouse's own", "/_gatehouse/healthz", method: "TRACE", .refused(405)))
        try await ProxyFixture.with(PathParameterAttackTests.rules) { fx in try await launch(attacks, on: fx) }
    }

    func testMethodsAllowedWidensTheList() async throws {
        let attacks: [Attack] = [
            .request("PROPFIND allowed", "/dav/", method: "PROPFIND", headers: [key], .forwarded(status: 200, check: Saw.identity("alice"))),
            .request("TRACE still refused", "/dav/", method: "TRACE", headers: [key],
                .answered(405, check: { r in r.header("Allow")?.hasSuffix("OPTIONS, PROPFIND") == true ? nil : "Allow was \(r.header("Allow") ?? "none")" })),
        ]
        try await ProxyFixture.with({ $0.methodsAllowed = ["PROPFIND"] }) { fx in try await launch(attacks, on: fx) }
    }

    func testAFragmentInTheTargetIsRefused() async throws {
        let forms = ["/api/job#x", "/x#/../admin", "/pub#/../admin", "/api/job?x=1#frag", "/#", "/pub/a#b"]
        var attacks = forms.map { Attack.request("target \($0)", $0, headers: [key], .refused(400)) }
        attacks.append(.request("an encoded # is a path character", "/files/a%23b", headers: [key],
            .forwarded(status: 200, check: Saw.identity("alice", uri: "/files/a%23b"))))
        try await ProxyFixture.with(PathParameterAttackTests.rules) { fx in try await launch(attacks, on: fx) }
    }

    private static let webSocket = ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]

    /// The device saw neither an `Upgrade` nor `HTTP2-Settings`.
    private static let noSecondProtocol: @Sendable (RecordedRequest) -> String? = { r in
        let found = r.values("Upgrade") + r.values("HTTP2-Settings")
        return found.isEmpty ? nil : "the device saw \(found)"
    }

    func testOnlyAWebSocketUpgradeIsForwarded() async throws {
        let h2cBeside = [
            "Connection: Upgrade, HTTP2-Settings", "Upgrade: websocket", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
        ]
        let attacks: [Attack] = [
            .request("h2c beside websocket on a public path", "/pub/ws", headers: h2cBeside, .forwarded(status: 200, check: Self.noSecondProtocol)),
            .request("h2c beside websocket with a key", "/ws/h2c", headers: [key] + h2cBeside, .forwarded(status: 200, check: Self.noSecondProtocol)),
            .request("websocket, h2c in one line", "/ws/h2c", headers: [key, "Connection: Upgrade", "Upgrade: websocket, h2c",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="], .forwarded(status: 200, check: Self.noSecondProtocol)),
            .request("h2c alone", "/ws/h2c", headers: [key, "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMA"],
                .forwarded(status: 200, check: Self.noSecondProtocol)),
            .request("a WebSocket without a key", "/ws", headers: [key, "Connection: Upgrade", "Upgrade: websocket"], .refused(400)),
            .request("a WebSocket with two keys", "/ws", headers: [key] + Self.webSocket + ["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="], .refused(400)),
            .request("a WebSocket with a short key", "/ws", headers: [key, "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: c2hvcnQ="], .refused(400)),
            .request("the device switches to h2c", "/ws/h2c", headers: [key] + Self.webSocket,
                .forwarded(status: 502, check: { r in r.values("Upgrade") == ["websocket"] ? nil : "the device saw Upgrade \(r.values("Upgrade"))" })),
            .request("the device answers the wrong key", "/ws/wrong-accept", headers: [key] + Self.webSocket, .forwarded(status: 502, check: { _ in nil })),
        ]
        try await ProxyFixture.with(PathParameterAttackTests.rules) { fx in try await launch(attacks, on: fx) }
    }

    func testAProtocolSwitchTheClientDidNotAskForClosesBothConnections() async throws {
        try await ProxyFixture.with { fx in
            let client = try fx.client()
            try client.send("GET /ws/h2c HTTP/1.1\r\nHost: gatehouse.test\r\n\(key)\r\n" + Self.webSocket.map { $0 + "\r\n" }.joined() + "\r\n")
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 502)
            // The HTTP/2 preface the attacker sends next reaches nothing: the connection is closed.
            try? client.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            XCTAssertTrue(StreamTest.readUntilEnd(client).closed)
            XCTAssertEqual(fx.upstream.requests.map(\.uri), ["/ws/h2c"])
            XCTAssertTrue(ProxyFixture.eventually { fx.upstream.tunnelsClosed == 1 }, "the device's connection stayed open")
        }
    }
}
