import XCTest

@testable import GatehouseCore

final class ClientAddressResolverTests: XCTestCase {
    let resolver = ClientAddressResolver(trustedProxies: [Fixture.cidr("10.0.0.0/8"), Fixture.cidr("fd00::/8")])
    let proxy = Fixture.ip("10.0.0.1")

    func testNoForwardedForYieldsThePeer() {
        XCTAssertEqual(resolver.clientAddress(peer: Fixture.ip("203.0.113.7"), forwardedFor: []), Fixture.ip("203.0.113.7"))
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: []), proxy)
    }

    func testForwardedForFromUntrustedPeerIsIgnored() {
        let peer = Fixture.ip("203.0.113.7")
        XCTAssertEqual(resolver.clientAddress(peer: peer, forwardedFor: ["192.168.1.5"]), peer)
    }

    func testGarbageForwardedForFromUntrustedPeerIsIgnored() {
        let peer = Fixture.ip("203.0.113.7")
        XCTAssertEqual(resolver.clientAddress(peer: peer, forwardedFor: ["garbage"]), peer)
    }

    func testTrustedProxyForwardedForGivesTheClient() {
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["203.0.113.7"]), Fixture.ip("203.0.113.7"))
    }

    func testForwardedForIsWalkedRightToLeftSkippingTrustedProxies() {
        XCTAssertEqual(
            resolver.clientAddress(peer: proxy, forwardedFor: ["198.51.100.1, 203.0.113.7, 10.0.0.2, fd00::9"]),
            Fixture.ip("203.0.113.7"))
    }

    func testSpoofedLeftmostEntryIsNotTheClient() {
        // The client itself wrote 192.168.1.5; the proxy appended the real address.
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["192.168.1.5, 203.0.113.7"]), Fixture.ip("203.0.113.7"))
    }

    func testGarbageEntryMakesTheClientUnknown() {
        XCTAssertNil(resolver.clientAddress(peer: proxy, forwardedFor: ["203.0.113.7, garbage"]))
        XCTAssertNil(resolver.clientAddress(peer: proxy, forwardedFor: ["unknown"]))
        XCTAssertNil(resolver.clientAddress(peer: proxy, forwardedFor: ["203.0.113.7:4711"]))
    }

    func testGarbageInsideTrustedHopsMakesTheClientUnknown() {
        XCTAssertNil(resolver.clientAddress(peer: proxy, forwardedFor: ["203.0.113.7, bogus, 10.0.0.2"]))
    }

    func testGarbageLeftOfTheClientIsNeverReached() {
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["bogus, 203.0.113.7"]), Fixture.ip("203.0.113.7"))
    }

    func testEmptyEntryMakesTheClientUnknown() {
        XCTAssertNil(resolver.clientAddress(peer: proxy, forwardedFor: ["203.0.113.7,"]))
        XCTAssertNil(resolver.clientAddress(peer: proxy, forwardedFor: [""]))
    }

    func testMultipleHeaderLinesAreConcatenatedInOrder() {
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["198.51.100.1", "203.0.113.7, 10.0.0.2"]), Fixture.ip("203.0.113.7"))
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["203.0.113.7", "10.0.0.2"]), Fixture.ip("203.0.113.7"))
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["10.0.0.3", "198.51.100.1"]), Fixture.ip("198.51.100.1"))
    }

    func testAllTrustedHopsYieldTheLeftmost() {
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["10.0.0.3, 10.0.0.2"]), Fixture.ip("10.0.0.3"))
    }

    func testIPv6AndBracketedEntriesAreRead() {
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["2001:db8::5"]), Fixture.ip("2001:db8::5"))
        XCTAssertEqual(resolver.clientAddress(peer: proxy, forwardedFor: ["[2001:db8::5]"]), Fixture.ip("2001:db8::5"))
    }

    func testTrustedIPv6ProxyIsRecognised() {
        XCTAssertEqual(resolver.clientAddress(peer: Fixture.ip("fd00::1"), forwardedFor: ["203.0.113.7"]), Fixture.ip("203.0.113.7"))
    }

    func testIPv4MappedPeerIsRecognisedAsTrustedProxy() {
        XCTAssertTrue(resolver.isTrustedProxy(Fixture.ip("::ffff:10.0.0.1")))
        XCTAssertEqual(resolver.clientAddress(peer: Fixture.ip("::ffff:10.0.0.1"), forwardedFor: ["203.0.113.7"]), Fixture.ip("203.0.113.7"))
    }

    func testUnixSocketPeerHasNoClientAddress() {
        XCTAssertNil(resolver.clientAddress(peer: nil, forwardedFor: ["203.0.113.7"]))
        XCTAssertFalse(resolver.isTrustedProxy(nil))
    }

    func testNoTrustedProxiesMeansForwardedForIsNeverRead() {
        let none = ClientAddressResolver(trustedProxies: [])
        XCTAssertEqual(none.clientAddress(peer: proxy, forwardedFor: ["203.0.113.7"]), proxy)
    }
}

final class TrustedNetworkAuthenticatorTests: XCTestCase {
    let networks = TrustedNetworkAuthenticator(networks: [
        TrustedNetwork(cidr: Fixture.cidr("192.168.1.0/24"), user: "lan", roles: ["viewer"]),
        TrustedNetwork(cidr: Fixture.cidr("192.168.0.0/16"), user: "site", roles: []),
        TrustedNetwork(cidr: Fixture.cidr("fd00::/8"), user: "lan6", roles: ["viewer", "ops"]),
    ])

    func testClientInsideANetworkGetsItsIdentity() {
        XCTAssertEqual(
            networks.authenticate(client: Fixture.ip("192.168.1.5")),
            Identity(user: "lan", roles: ["viewer"], method: .trustedNetwork, readOnly: false, source: "192.168.1.0/24"))
    }

    func testFirstMatchingNetworkWins() {
        XCTAssertEqual(networks.authenticate(client: Fixture.ip("192.168.1.5"))?.user, "lan")
        XCTAssertEqual(networks.authenticate(client: Fixture.ip("192.168.7.5"))?.user, "site")
    }

    func testIPv6ClientGetsTheIPv6NetworkIdentity() {
        XCTAssertEqual(networks.authenticate(client: Fixture.ip("fd12::1"))?.user, "lan6")
    }

    func testOutsideClientGetsNothing() {
        XCTAssertNil(networks.authenticate(client: Fixture.ip("203.0.113.7")))
        XCTAssertNil(networks.authenticate(client: Fixture.ip("2001:db8::1")))
    }

    func testUnknownClientGetsNothing() {
        XCTAssertNil(networks.authenticate(client: nil))
    }
}
