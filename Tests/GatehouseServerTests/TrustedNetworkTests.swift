import GatehouseCore
import GatehouseTestSupport
import XCTest

/// End to end: identities granted by the client's network, over IPv4 and IPv6, and the client
/// address taken from `X-Forwarded-For` only when a trusted proxy sent it.
final class TrustedNetworkTests: XCTestCase {
    private static func network(_ cidr: String, user: String = "lan", roles: [String] = ["viewer"]) -> TrustedNetwork {
        TrustedNetwork(cidr: AuthTest.cidr(cidr), user: user, roles: roles)
    }

    /// Gatehouse listening on ::1 only.
    private static func listenOnIPv6Loopback(_ config: inout GatehouseConfig) {
        config.listen = ListenAddress(host: "::1", port: 0)
    }

    // MARK: Socket peer

    func testTrustedLoopbackNetworkGivesIdentityWithoutCredential() async throws {
        try await ProxyFixture.with({ $0.trustedNetworks = [Self.network("127.0.0.0/8", user: "lan", roles: ["viewer", "operator"])] }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer")
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Remote-User"), ["lan"])
            XCTAssertEqual(seen?.values("X-Remote-Roles"), ["viewer,operator"])
            XCTAssertEqual(seen?.values("X-Remote-Auth"), ["trusted_network"])
        }
    }

    func testWrongKeyFromTrustedNetworkIsStillUnauthorized() async throws {
        let wrong = "wrong-key-0123456789abcdef0123456789abcdef"
        try await ProxyFixture.with({ $0.trustedNetworks = [Self.network("127.0.0.0/8")] }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(wrong)"])
            AuthTest.assertUnauthorized(response, fx, secret: wrong)
        }
    }

    func testValidKeyFromTrustedNetworkUsesTheKeyIdentity() async throws {
        try await ProxyFixture.with({ $0.trustedNetworks = [Self.network("127.0.0.0/8")] }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Api-Key: \(ProxyFixture.aliceKey)"])
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Remote-User"), ["alice"])
            XCTAssertEqual(seen?.values("X-Remote-Auth"), ["api_key"])
        }
    }

    func testIPv6TrustedNetworkGivesIdentityToIPv6LoopbackPeer() async throws {
        // No skip: if ::1 cannot be bound or reached, the fixture or the client throws and the test fails.
        try await ProxyFixture.with({ config in
            Self.listenOnIPv6Loopback(&config)
            config.trustedNetworks = [Self.network("::1/128", user: "lan6", roles: ["viewer"])]
        }) { fx in
            let client = try fx.client(host: "::1")
            let response = try client.request("GET /api/printer HTTP/1.1\r\nHost: gatehouse.test\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Remote-User"), ["lan6"])
            XCTAssertEqual(seen?.values("X-Remote-Auth"), ["trusted_network"])
            XCTAssertEqual(seen?.values("X-Forwarded-For"), ["::1"])
        }
    }

    func testIPv4TrustedNetworkDoesNotMatchIPv6LoopbackPeer() async throws {
        try await ProxyFixture.with({ config in
            Self.listenOnIPv6Loopback(&config)
            config.trustedNetworks = [Self.network("127.0.0.0/8")]
        }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", host: "::1")
            AuthTest.assertUnauthorized(response, fx)
        }
    }

    // MARK: X-Forwarded-For

    private static func behindTrustedProxy(_ config: inout GatehouseConfig) {
        config.trustedProxies = [AuthTest.cidr("127.0.0.1/32")]
        config.trustedNetworks = [network("10.9.0.0/16", user: "shop", roles: ["operator"])]
    }

    func testForwardedForFromTrustedProxyGivesTrustedNetworkIdentity() async throws {
        try await ProxyFixture.with(Self.behindTrustedProxy) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Forwarded-For: 10.9.1.2"])
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Remote-User"), ["shop"])
            XCTAssertEqual(seen?.values("X-Remote-Roles"), ["operator"])
            XCTAssertEqual(seen?.values("X-Remote-Auth"), ["trusted_network"])
        }
    }

    func testForwardedForWithoutTrustedProxiesIsIgnored() async throws {
        try await ProxyFixture.with({ $0.trustedNetworks = [Self.network("10.9.0.0/16", user: "shop")] }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Forwarded-For: 10.9.1.2"])
            AuthTest.assertUnauthorized(response, fx)
        }
    }

    func testForwardedForWithGarbageEntryFromTrustedProxyGivesNoIdentity() async throws {
        try await ProxyFixture.with(Self.behindTrustedProxy) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Forwarded-For: 10.9.1.2, garbage"])
            AuthTest.assertUnauthorized(response, fx)
        }
    }

    func testForwardedForFromTrustedProxyIsAppendedToForUpstream() async throws {
        try await ProxyFixture.with(Self.behindTrustedProxy) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", ["X-Forwarded-For: 10.9.1.2"])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("X-Forwarded-For"), ["10.9.1.2, 127.0.0.1"])
        }
    }

    func testForwardedForFromUntrustedPeerIsReplacedForUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(
                fx, "GET", "/api/printer", ["X-Forwarded-For: 10.9.1.2", "X-Api-Key: \(ProxyFixture.aliceKey)"])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("X-Forwarded-For"), ["127.0.0.1"])
        }
    }
}
