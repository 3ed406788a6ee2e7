import GatehouseCore
import GatehouseTestSupport
import XCTest

/// End to end: API keys presented in each accepted form, refused in each refused form, read-only
/// keys, and what the upstream sees of the credential.
final class APIKeyAuthenticationTests: XCTestCase {
    private let alice = ProxyFixture.aliceKey
    private let reader = ProxyFixture.readerKey

    /// The identity Gatehouse injects for alice's key, exactly once each.
    private func assertAliceIdentity(_ request: RecordedRequest?, file: StaticString = #filePath, line: UInt = #line) {
        guard let request else { return }
        XCTAssertEqual(request.values("X-Remote-User"), ["alice"], file: file, line: line)
        XCTAssertEqual(request.values("X-Remote-Roles"), ["admin,operator"], file: file, line: line)
        XCTAssertEqual(request.values("X-Remote-Auth"), ["api_key"], file: file, line: line)
    }

    private func webSocketRequest(key: String, path: String = "/ws") -> String {
        "GET \(path) HTTP/1.1\r\nHost: gatehouse.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + "X-Api-Key: \(key)\r\n\r\n"
    }

    // MARK: Accepted forms

    func testXApiKeyHeaderReachesUpstreamWithIdentity() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(alice)"])
            XCTAssertEqual(response.status, 200)
            assertAliceIdentity(AuthTest.onlyUpstreamRequest(fx))
        }
    }

    func testBearerAuthorizationReachesUpstreamWithIdentity() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["Authorization: Bearer \(alice)"])
            XCTAssertEqual(response.status, 200)
            assertAliceIdentity(AuthTest.onlyUpstreamRequest(fx))
        }
    }

    func testTokenAuthorizationReachesUpstreamWithIdentity() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["Authorization: Token \(alice)"])
            XCTAssertEqual(response.status, 200)
            assertAliceIdentity(AuthTest.onlyUpstreamRequest(fx))
        }
    }

    func testQueryAPIKeyIsRefusedWhenQueryAPIKeyIsOff() async throws {
        try await ProxyFixture.with { fx in
            XCTAssertFalse(fx.config.queryAPIKey, "query_api_key must be off by default")
            let response = try AuthTest.send(fx, "GET", "/api/printer?apikey=\(alice)")
            AuthTest.assertUnauthorized(response, fx, secret: alice)
        }
    }

    func testQueryAPIKeyIsAcceptedWhenQueryAPIKeyIsOn() async throws {
        try await ProxyFixture.with({ $0.queryAPIKey = true }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer?apikey=\(alice)")
            XCTAssertEqual(response.status, 200)
            assertAliceIdentity(AuthTest.onlyUpstreamRequest(fx))
        }
    }

    func testQueryAPIKeyIsRemovedFromUpstreamURIKeepingOtherParametersInOrder() async throws {
        try await ProxyFixture.with({ $0.queryAPIKey = true }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/files?z=1&apikey=\(alice)&a=2&m=%20x")
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.uri, "/api/files?z=1&a=2&m=%20x")
            XCTAssertFalse(seen?.uri.contains(alice) ?? true)
        }
    }

    // MARK: Refused credentials

    func testMissingKeyIsUnauthorizedAndNeverReachesUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer")
            AuthTest.assertUnauthorized(response, fx)
        }
    }

    func testUnknownKeyIsUnauthorizedWithoutEchoingTheKey() async throws {
        let unknown = "unknown-key-0123456789abcdef0123456789abcdef"
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(unknown)"])
            AuthTest.assertUnauthorized(response, fx, secret: unknown)
        }
    }

    func testNearMissKeyDifferingInLastCharacterIsUnauthorized() async throws {
        let nearMiss = String(alice.dropLast()) + (alice.hasSuffix("f") ? "e" : "f")
        XCTAssertNotEqual(nearMiss, alice)
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(nearMiss)"])
            AuthTest.assertUnauthorized(response, fx, secret: nearMiss)
        }
    }

    func testExpiredKeyIsUnauthorized() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(ProxyFixture.expiredKey)"])
            AuthTest.assertUnauthorized(response, fx, secret: ProxyFixture.expiredKey)
        }
    }

    func testDisabledKeyIsUnauthorized() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["Authorization: Bearer \(ProxyFixture.disabledKey)"])
            AuthTest.assertUnauthorized(response, fx, secret: ProxyFixture.disabledKey)
        }
    }

    func testBasicAuthorizationIsUnauthorized() async throws {
        let basic = Data("alice:\(alice)".utf8).base64EncodedString()
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["Authorization: Basic \(basic)"])
            AuthTest.assertUnauthorized(response, fx, secret: basic)
            XCTAssertFalse(response.bodyText.contains(alice))
        }
    }

    func testEmptyAuthorizationHeaderIsUnauthorized() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["Authorization:"])
            AuthTest.assertUnauthorized(response, fx)
        }
    }

    func testTwoDifferentKeysInXApiKeyAndBearerAreUnauthorized() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(alice)", "Authorization: Bearer \(reader)"])
            AuthTest.assertUnauthorized(response, fx, secret: alice)
            XCTAssertFalse(response.bodyText.contains(reader))
        }
    }

    // MARK: Read-only keys

    func testReadOnlyKeyMayGET() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(reader)"])
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Remote-User"), ["rita"])
            XCTAssertEqual(seen?.values("X-Remote-Auth"), ["api_key"])
        }
    }

    func testReadOnlyKeyPOSTIsForbiddenAndNeverReachesUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "POST", "/api/job", ["X-Api-Key: \(reader)", "Content-Type: application/json"], body: "{\"command\":\"start\"}")
            AuthTest.assertForbidden(response, fx)
        }
    }

    func testReadOnlyKeyPUTIsForbiddenAndNeverReachesUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "PUT", "/api/settings", ["X-Api-Key: \(reader)"], body: "{}")
            AuthTest.assertForbidden(response, fx)
        }
    }

    func testReadOnlyKeyDELETEIsForbiddenAndNeverReachesUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "DELETE", "/api/files/local/part.gcode", ["X-Api-Key: \(reader)"])
            AuthTest.assertForbidden(response, fx)
        }
    }

    func testReadOnlyKeyWebSocketUpgradeIsForbiddenAndNeverReachesUpstream() async throws {
        try await ProxyFixture.with { fx in
            let client = try fx.client()
            let response = try client.request(webSocketRequest(key: reader))
            AuthTest.assertForbidden(response, fx)
        }
    }

    func testFullKeyWebSocketUpgradeReachesUpstream() async throws {
        // The control for the read-only refusal above. The path is not the recording upstream's
        // `/ws` echo: only that Gatehouse lets the upgrade request through is asserted here.
        try await ProxyFixture.with { fx in
            let client = try fx.client()
            let response = try client.request(webSocketRequest(key: alice, path: "/socket"))
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("Upgrade"), ["websocket"])
            assertAliceIdentity(seen)
        }
    }

    // MARK: The consumed credential

    func testConsumedXApiKeyIsNotForwardedUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(alice)"])
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Api-Key"), [])
            XCTAssertFalse(seen?.headers.contains { $0.value.contains(self.alice) } ?? true)
        }
    }

    func testConsumedBearerAuthorizationIsNotForwardedUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["Authorization: Bearer \(alice)"])
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("Authorization"), [])
            XCTAssertFalse(seen?.headers.contains { $0.value.contains(self.alice) } ?? true)
        }
    }

    func testConsumedCredentialIsForwardedWhenForwardCredentialsIsOn() async throws {
        try await ProxyFixture.with({ $0.forwardCredentials = true }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(alice)"])
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Api-Key"), [alice])
            assertAliceIdentity(seen)
        }
    }

    func testConsumedAuthorizationIsForwardedWhenForwardCredentialsIsOn() async throws {
        try await ProxyFixture.with({ $0.forwardCredentials = true }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["Authorization: Token \(alice)"])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("Authorization"), ["Token \(alice)"])
        }
    }
}
