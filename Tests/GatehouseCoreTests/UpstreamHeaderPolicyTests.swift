import XCTest

@testable import GatehouseCore

final class UpstreamHeaderPolicyTests: XCTestCase {
    let policy = UpstreamHeaderPolicy(identityHeaders: IdentityHeaderNames(), stripHeaders: ["X-Internal-Token"], forwardCredentials: false)
    let alice = Identity(user: "alice", roles: ["admin", "ops"], method: .apiKey, source: "slicer")

    func build(
        _ incoming: [(name: String, value: String)], plan: ForwardPlan? = nil, upgrade: Bool = false, peer: String? = "203.0.113.7",
        policy: UpstreamHeaderPolicy? = nil
    ) -> [(name: String, value: String)] {
        (policy ?? self.policy).headers(
            from: Fixture.head([(name: "Host", value: "device.local")] + incoming), plan: plan ?? Fixture.plan(identity: alice, consumed: [.apiKeyHeader]),
            isWebSocketUpgrade: upgrade, scheme: "http", peer: peer.map { Fixture.ip($0) })
    }

    // MARK: Identity headers

    func testEverySpoofedVariantOfTheUserHeaderIsReplacedByOneGatehouseCopy() {
        let out = build([("x-remote-user", "mallory"), ("X_Remote_User", "mallory"), ("X-REMOTE-USER", "mallory"), ("x_remote-User", "mallory")])
        let copies = foldedMatches(out, "X-Remote-User")
        XCTAssertEqual(copies.count, 1)
        XCTAssertEqual(copies.first?.name, "X-Remote-User")
        XCTAssertEqual(copies.first?.value, "alice")
    }

    func testSpoofedRolesAndMethodHeadersAreReplaced() {
        let out = build([("x_remote_roles", "superuser"), ("X-Remote-Roles", "superuser"), ("X-REMOTE_AUTH", "trusted_network")])
        XCTAssertEqual(foldedMatches(out, "X-Remote-Roles").map(\.value), ["admin,ops"])
        XCTAssertEqual(foldedMatches(out, "X-Remote-Auth").map(\.value), ["api_key"])
    }

    func testTrustedNetworkIdentityIsWrittenWithItsMethod() {
        let lan = Identity(user: "lan", roles: [], method: .trustedNetwork, source: "192.168.1.0/24")
        let out = build([], plan: Fixture.plan(identity: lan))
        XCTAssertEqual(values(out, "X-Remote-User"), ["lan"])
        XCTAssertEqual(values(out, "X-Remote-Roles"), [""])
        XCTAssertEqual(values(out, "X-Remote-Auth"), ["trusted_network"])
    }

    func testAnonymousRequestCarriesNoIdentityHeadersEvenWhenSpoofed() {
        let out = build([("X-Remote-User", "admin"), ("x_remote_roles", "admin"), ("X-Remote-Auth", "api_key")], plan: Fixture.plan())
        XCTAssertTrue(foldedMatches(out, "X-Remote-User").isEmpty)
        XCTAssertTrue(foldedMatches(out, "X-Remote-Roles").isEmpty)
        XCTAssertTrue(foldedMatches(out, "X-Remote-Auth").isEmpty)
    }

    func testCustomIdentityHeaderNamesAreStrippedAndSet() {
        let custom = UpstreamHeaderPolicy(
            identityHeaders: IdentityHeaderNames(user: "X-User", roles: "X-Groups", method: "X-Via"), stripHeaders: [], forwardCredentials: false)
        let out = build([("x_user", "mallory"), ("X-GROUPS", "root"), ("X-Remote-User", "untouched")], policy: custom)
        XCTAssertEqual(foldedMatches(out, "X-User").map(\.value), ["alice"])
        XCTAssertEqual(foldedMatches(out, "X-Groups").map(\.value), ["admin,ops"])
        XCTAssertEqual(foldedMatches(out, "X-Via").map(\.value), ["api_key"])
        XCTAssertEqual(values(out, "X-Remote-User"), [], "X-Remote-User is of the identity family whatever identity_headers says")
    }

    func testStripHeadersEntriesAreStrippedInEverySpelling() {
        let out = build([("X-Internal-Token", "t"), ("x_internal_token", "t"), ("X-INTERNAL_TOKEN", "t"), ("X-Other", "kept")])
        XCTAssertTrue(foldedMatches(out, "X-Internal-Token").isEmpty)
        XCTAssertEqual(values(out, "X-Other"), ["kept"])
    }

    func testStripHeaderConfiguredWithUnderscoresStripsTheDashedForm() {
        let underscored = UpstreamHeaderPolicy(identityHeaders: IdentityHeaderNames(), stripHeaders: ["x_debug_mode"], forwardCredentials: false)
        XCTAssertTrue(foldedMatches(build([("X-Debug-Mode", "1")], policy: underscored), "X-Debug-Mode").isEmpty)
    }

    // MARK: Hop-by-hop

    func testHopByHopHeadersAreRemoved() {
        // (Framing goes as the forwarder writes it; a request carries only one of the two.)
        for framing in [("Transfer-Encoding", "chunked"), ("Content-Length", "5")] {
            let out = build([
                ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("TE", "trailers"),
                ("Trailer", "X-Checksum"), framing, ("Upgrade", "websocket"),
            ])
            for name in ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Content-Length", "Upgrade"] {
                XCTAssertTrue(foldedMatches(out, name).isEmpty, "\(name) should be removed")
            }
        }
    }

    func testHeadersNamedInConnectionAreRemovedButIdentityIsStillSet() {
        let out = build([("Connection", "X-Remote-User, Foo"), ("Foo", "bar"), ("X-Remote-User", "mallory"), ("Bar", "kept")])
        XCTAssertTrue(values(out, "Foo").isEmpty)
        XCTAssertEqual(values(out, "Bar"), ["kept"])
        XCTAssertEqual(foldedMatches(out, "X-Remote-User").map(\.value), ["alice"])
    }

    func testConnectionTokensAreMatchedWithCaseAndUnderscoreFolding() {
        let out = build([("connection", " foo_BAR ,baz"), ("Foo-Bar", "1"), ("BAZ", "2"), ("Qux", "3")])
        XCTAssertTrue(values(out, "Foo-Bar").isEmpty)
        XCTAssertTrue(values(out, "Baz").isEmpty)
        XCTAssertEqual(values(out, "Qux"), ["3"])
    }

    func testTokensFromEveryConnectionHeaderAreHonoured() {
        let out = build([("Connection", "Foo"), ("Connection", "Bar"), ("Foo", "1"), ("Bar", "2")])
        XCTAssertTrue(values(out, "Foo").isEmpty)
        XCTAssertTrue(values(out, "Bar").isEmpty)
    }

    func testUpgradeIsKeptForAWebSocketWithOneConnectionUpgrade() {
        let out = build([("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "abc")], upgrade: true)
        XCTAssertEqual(values(out, "Upgrade"), ["websocket"])
        XCTAssertEqual(values(out, "Connection"), ["Upgrade"])
        XCTAssertEqual(values(out, "Sec-WebSocket-Key"), ["abc"])
    }

    func testUpgradeIsDroppedWithoutAWebSocket() {
        let out = build([("Connection", "Upgrade"), ("Upgrade", "h2c")])
        XCTAssertTrue(values(out, "Upgrade").isEmpty)
        XCTAssertTrue(values(out, "Connection").isEmpty)
    }

    // MARK: Credentials

    func testADeviceCSRFPairReplacesTheClientsOwn() {
        let incoming: [(name: String, value: String)] = [
            ("Host", "device.local"), ("X-CSRF-Token", "client-header"), ("x_csrf_token", "client-header-2"),
            ("Cookie", "a=1; csrf_token_P5000=client-cookie; gatehouse_session=S; csrf_token=old; b=2"),
        ]
        let out = policy.headers(
            from: Fixture.head(incoming), plan: Fixture.plan(identity: alice, consumed: [.apiKeyHeader]), isWebSocketUpgrade: false, scheme: "http",
            peer: nil, deviceCSRFToken: "T.signed")
        XCTAssertEqual(values(out, "X-CSRF-Token"), ["T.signed"])
        XCTAssertEqual(values(out, "Cookie"), ["a=1; b=2; csrf_token=T.signed"], "one Cookie header")
        // Without a pair, the client's own pass untouched (a browser's OctoPrint page sends them).
        let plain = policy.headers(
            from: Fixture.head(incoming), plan: Fixture.plan(identity: alice, consumed: [.apiKeyHeader]), isWebSocketUpgrade: false, scheme: "http", peer: nil)
        XCTAssertEqual(values(plain, "X-CSRF-Token"), ["client-header"])
        XCTAssertEqual(values(plain, "x_csrf_token"), [], "a header with _ in its name is never forwarded")
        XCTAssertEqual(values(plain, "Cookie"), ["a=1; csrf_token_P5000=client-cookie; csrf_token=old; b=2"])
    }

    func testConsumedXApiKeyIsRemoved() {
        let out = build([("X-Api-Key", "K"), ("x-api-key", "K")], plan: Fixture.plan(identity: alice, consumed: [.apiKeyHeader]))
        XCTAssertTrue(values(out, "X-Api-Key").isEmpty)
    }

    func testConsumedAuthorizationIsRemoved() {
        XCTAssertTrue(values(build([("Authorization", "Bearer K")], plan: Fixture.plan(identity: alice, consumed: [.authorizationBearer])), "Authorization").isEmpty)
        XCTAssertTrue(values(build([("authorization", "Token K")], plan: Fixture.plan(identity: alice, consumed: [.authorizationToken])), "Authorization").isEmpty)
    }

    func testUnconsumedAuthorizationIsKept() {
        let out = build([("Authorization", "Digest abc")], plan: Fixture.plan(identity: alice, consumed: [.apiKeyHeader]))
        XCTAssertEqual(values(out, "Authorization"), ["Digest abc"])
    }

    func testCredentialsAreKeptWithForwardCredentials() {
        let forwarding = UpstreamHeaderPolicy(identityHeaders: IdentityHeaderNames(), stripHeaders: [], forwardCredentials: true)
        let out = build(
            [("X-Api-Key", "K"), ("Authorization", "Bearer K")], plan: Fixture.plan(identity: alice, consumed: [.apiKeyHeader, .authorizationBearer]),
            policy: forwarding)
        XCTAssertEqual(values(out, "X-Api-Key"), ["K"])
        XCTAssertEqual(values(out, "Authorization"), ["Bearer K"])
    }

    func testCredentialHeadersOfAnAnonymousPublicRequestAreRemoved() {
        let plan = Fixture.plan(consumed: [.apiKeyHeader, .authorizationBearer, .authorizationToken])
        let out = build([("X-Api-Key", "bad"), ("Authorization", "Basic YTpi")], plan: plan)
        XCTAssertTrue(values(out, "X-Api-Key").isEmpty)
        XCTAssertTrue(values(out, "Authorization").isEmpty)
    }

    // MARK: Forwarding headers

    func testForwardedForFromUntrustedPeerIsReplacedByThePeer() {
        let out = build([("X-Forwarded-For", "192.168.1.5"), ("x_forwarded_for", "10.0.0.1")])
        XCTAssertEqual(foldedMatches(out, "X-Forwarded-For").map(\.value), ["203.0.113.7"])
    }

    func testForwardedForFromTrustedProxyIsAppendedTo() {
        let plan = Fixture.plan(identity: alice, peerIsTrustedProxy: true)
        let out = build([("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.7")], plan: plan, peer: "10.0.0.1")
        XCTAssertEqual(values(out, "X-Forwarded-For"), ["198.51.100.1, 203.0.113.7, 10.0.0.1"])
    }

    func testWithoutForwardClientAddressNoAddressHeaderReachesTheDeviceFromAnyone() {
        let quiet = UpstreamHeaderPolicy(identityHeaders: IdentityHeaderNames(), stripHeaders: [], forwardCredentials: false, forwardClientAddress: false)
        let spoofed: [(name: String, value: String)] = [("X-Forwarded-For", "127.0.0.1"), ("X-Real-IP", "127.0.0.1"), ("Forwarded", "for=127.0.0.1"), ("X_Real_IP", "127.0.0.1")]
        for trusted in [false, true] {
            let out = build(spoofed, plan: Fixture.plan(identity: alice, peerIsTrustedProxy: trusted), peer: "10.0.0.1", policy: quiet)
            for name in ["X-Forwarded-For", "X-Real-IP", "Forwarded", "X_Real_IP"] {
                XCTAssertEqual(values(out, name), [], "\(name) from a \(trusted ? "trusted proxy" : "client")")
            }
            XCTAssertEqual(values(out, "X-Remote-User"), ["alice"])
        }
    }

    func testIPv4MappedPeerIsWrittenAsIPv4() {
        XCTAssertEqual(values(build([], peer: "::ffff:203.0.113.7"), "X-Forwarded-For"), ["203.0.113.7"])
    }

    func testUnixSocketPeerAddsNoForwardedFor() {
        XCTAssertTrue(values(build([("X-Forwarded-For", "1.2.3.4")], peer: nil), "X-Forwarded-For").isEmpty)
    }

    func testForwardedProtoFromUntrustedPeerIsReplacedByTheScheme() {
        XCTAssertEqual(values(build([("X-Forwarded-Proto", "https")]), "X-Forwarded-Proto"), ["http"])
    }

    func testForwardedProtoFromTrustedProxyIsKept() {
        let plan = Fixture.plan(identity: alice, peerIsTrustedProxy: true)
        let out = build([("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")], plan: plan, peer: "10.0.0.1")
        XCTAssertEqual(values(out, "X-Forwarded-Proto"), ["https"])
    }

    func testForwardedHostFromUntrustedPeerIsReplacedByHost() {
        XCTAssertEqual(values(build([("X-Forwarded-Host", "evil.example")]), "X-Forwarded-Host"), ["device.local"])
    }

    func testForwardedHostFromTrustedProxyIsKept() {
        let plan = Fixture.plan(identity: alice, peerIsTrustedProxy: true)
        XCTAssertEqual(values(build([("X-Forwarded-Host", "printer.example")], plan: plan, peer: "10.0.0.1"), "X-Forwarded-Host"), ["printer.example"])
    }

    func testForwardedAndRealIPFromUntrustedPeerAreDropped() {
        let out = build([("Forwarded", "for=192.168.1.5"), ("X-Real-IP", "192.168.1.5")])
        XCTAssertTrue(values(out, "Forwarded").isEmpty)
        XCTAssertTrue(values(out, "X-Real-IP").isEmpty)
    }

    func testForwardedAndRealIPFromTrustedProxyAreReplacedByTheDerivedClient() {
        let plan = Fixture.plan(identity: alice, clientAddress: Fixture.ip("198.51.100.9"), peerIsTrustedProxy: true)
        let out = build([("Forwarded", "for=203.0.113.7;proto=http"), ("X-Real-IP", "203.0.113.7")], plan: plan, peer: "10.0.0.1")
        XCTAssertEqual(values(out, "Forwarded"), ["for=198.51.100.9;proto=http"])
        XCTAssertEqual(values(out, "X-Real-IP"), ["198.51.100.9"])
        let v6 = Fixture.plan(identity: alice, clientAddress: Fixture.ip("2001:db8::7"), peerIsTrustedProxy: true)
        XCTAssertEqual(values(build([("Forwarded", "for=1.2.3.4")], plan: v6, peer: "10.0.0.1"), "Forwarded"), ["for=\"[2001:db8::7]\";proto=http"])
        let unknown = Fixture.plan(identity: alice, clientAddress: nil, peerIsTrustedProxy: true)
        let dropped = build([("Forwarded", "for=1.2.3.4"), ("X-Real-IP", "1.2.3.4")], plan: unknown, peer: "10.0.0.1")
        XCTAssertEqual(values(dropped, "Forwarded") + values(dropped, "X-Real-IP"), [], "an unknown client is never named")
    }

    // MARK: Aliases and the identity family

    func testHeadersWithAnUnderscoreAreDroppedUnlessNamed() {
        let out = build([("X_Api_Key", "other"), ("X-API_KEY", "other"), ("X_Custom", "1"), ("X-Custom", "2")])
        XCTAssertEqual(values(out, "X-Api-Key"), [], "no alias stands in for the consumed credential")
        XCTAssertEqual(out.filter { $0.name.contains("_") }.map(\.name), [])
        XCTAssertEqual(values(out, "X-Custom"), ["2"])
        let relaxed = UpstreamHeaderPolicy(identityHeaders: IdentityHeaderNames(), stripHeaders: [], forwardCredentials: false, forwardUnderscoreHeaders: ["X_Custom"])
        XCTAssertEqual(build([("x_custom", "1"), ("X_Other", "2")], policy: relaxed).filter { $0.name.contains("_") }.map(\.name), ["x_custom"])
        XCTAssertTrue(policy.dropsUnderscoreHeader("X_Api_Key"))
        XCTAssertFalse(relaxed.dropsUnderscoreHeader("X_CUSTOM"))
    }

    func testTheIdentityFamilyOfOtherProxiesNeverReachesTheDevice() {
        let family = [
            "Remote-User", "REMOTE-USER", "Remote-Groups", "Remote-Email", "X-Forwarded-User", "X-Forwarded-Groups", "X-Forwarded-Email",
            "X-Forwarded-Preferred-Username", "X-Auth-Request-User", "X-Auth-Request-Groups", "x-auth-request-access-token", "X-WEBAUTH-USER",
            "X-Webauth-Email", "X-Authentik-Username", "X-Pomerium-Claim-Email", "Cf-Access-Authenticated-User-Email", "Tailscale-User-Login",
            "X-Authenticated-User", "X-Remote-Email",
        ]
        let out = build(family.map { ($0, "admin") } + [("X-Forwarded-Proto", "https"), ("X-Something", "kept")])
        XCTAssertEqual(out.filter { $0.value == "admin" }.map(\.name), [], "only Gatehouse's own identity reaches the device")
        XCTAssertEqual(values(out, "X-Something"), ["kept"])
        let relaxed = UpstreamHeaderPolicy(identityHeaders: IdentityHeaderNames(), stripHeaders: [], forwardCredentials: false, forwardIdentityFamily: ["X-Email"])
        XCTAssertEqual(values(build([("X-Email", "a@b"), ("X-User", "root")], policy: relaxed), "X-Email"), ["a@b"])
        XCTAssertEqual(values(build([("X-Email", "a@b"), ("X-User", "root")], policy: relaxed), "X-User"), [])
    }

    func testConnectionMayNotNameWhatTheRequestNeedsOrGatehouseSets() {
        for named in ["host", "Host", "content-length", "Transfer-Encoding", "X-Forwarded-For", "x-forwarded-host", "X-Forwarded-Proto",
                      "Forwarded", "X-Real-IP", "X-Remote-User", "x_remote_roles", "Remote-User", "X-Auth-Request-Email"] {
            XCTAssertNotNil(policy.connectionViolation(in: Fixture.head([("Connection", "keep-alive, \(named)")])), named)
        }
        for fine in ["keep-alive", "close", "Upgrade", "TE", "X-Custom"] {
            XCTAssertNil(policy.connectionViolation(in: Fixture.head([("Connection", fine)])), fine)
        }
    }

    func testAWebSocketUpgradeGetsExactlyUpgradeWebsocket() {
        let out = build([("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "websocket"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA"),
                         ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")], upgrade: true)
        XCTAssertEqual(values(out, "Upgrade"), ["websocket"])
        XCTAssertEqual(values(out, "Connection"), ["Upgrade"])
        XCTAssertEqual(values(out, "HTTP2-Settings"), [])
        let plain = build([("Connection", "Upgrade"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMA")])
        XCTAssertEqual(values(plain, "Upgrade") + values(plain, "HTTP2-Settings"), [])
    }

    func testGatehouseSessionCookieIsRemovedInEverySpelling() {
        let spellings = [
            "a=1, gatehouse_session=SID", "GATEHOUSE_SESSION=SID", "Gatehouse_Session=SID", " gatehouse_session =SID", "\"gatehouse_session\"=SID",
            "gatehouse%5Fsession=SID", "gatehouse%5fsession=SID", "gatehouse.session=SID", "gatehouse-session=SID", "gatehouse+session=SID",
            "gatehouse[session=SID", "a=1,gatehouse_session=SID,b=2", "gatehouse_session", "$gatehouse_session=SID",
            "a=1 gatehouse_session=SID", "a=1\tgatehouse_session=SID", "a=1 gatehouse_session = SID", "a=1 b=2 gatehouse_session=SID, c=3",
        ]
        for spelling in spellings {
            let out = build([("Cookie", spelling + "; keep=1")])
            XCTAssertFalse(values(out, "Cookie").joined().contains("SID"), spelling)
            XCTAssertTrue(values(out, "Cookie").joined().contains("keep=1"), spelling)
        }
        XCTAssertEqual(SessionCookie.removing(from: "a=1, gatehouse_session=SID, b=2; c=3"), "a=1, b=2; c=3")
        XCTAssertEqual(SessionCookie.removing(from: "x=\"a,b\"; gatehouse_sessions=1"), "x=\"a,b\"; gatehouse_sessions=1")
        XCTAssertEqual(SessionCookie.removing(from: "x=\"a b\"; y=1"), "x=\"a b\"; y=1")
        XCTAssertEqual(SessionCookie.removing(from: "a=1 b=2 gatehouse_session = SID, c=3; d=4"), "a=1 b=2, c=3; d=4")
    }

    func testOrdinaryHeadersPassInOrderWithTheirSpelling() {
        let out = build([("Accept", "*/*"), ("x-custom", "1"), ("Cookie", "a=b"), ("X-Custom", "2")])
        let passed = out.filter { ["host", "accept", "x-custom", "cookie"].contains($0.name.lowercased()) }
        XCTAssertEqual(passed.map(\.name), ["Host", "Accept", "x-custom", "Cookie", "X-Custom"])
        XCTAssertEqual(passed.map(\.value), ["device.local", "*/*", "1", "a=b", "2"])
    }

    // MARK: Request target

    func testConsumedQueryKeyIsRemovedFromTheTarget() {
        let target = policy.target(RequestTarget("/api?a=1&apikey=K&b=2"), plan: Fixture.plan(identity: alice, consumed: [.apiKeyQueryParameter]))
        XCTAssertEqual(target.uri, "/api?a=1&b=2")
    }

    func testEncodedQueryKeyNameIsRemovedWhenConsumed() {
        let target = policy.target(RequestTarget("/api?%61pikey=K"), plan: Fixture.plan(identity: alice, consumed: [.apiKeyQueryParameter]))
        XCTAssertEqual(target.uri, "/api")
    }

    func testUnconsumedQueryKeyIsKept() {
        let target = policy.target(RequestTarget("/api?apikey=K"), plan: Fixture.plan(identity: alice, consumed: [.apiKeyHeader]))
        XCTAssertEqual(target.uri, "/api?apikey=K")
    }

    func testQueryKeyIsKeptWithForwardCredentials() {
        let forwarding = UpstreamHeaderPolicy(identityHeaders: IdentityHeaderNames(), stripHeaders: [], forwardCredentials: true)
        let target = forwarding.target(RequestTarget("/api?apikey=K"), plan: Fixture.plan(identity: alice, consumed: [.apiKeyQueryParameter]))
        XCTAssertEqual(target.uri, "/api?apikey=K")
    }

    func testCanonicalNameLowercasesAndFoldsUnderscores() {
        XCTAssertEqual(UpstreamHeaderPolicy.canonicalName("X_Remote-USER"), "x-remote-user")
    }
}

final class DownstreamResponseHeadersTests: XCTestCase {
    func testHopByHopHeadersAreRemovedAndContentLengthKept() {
        let out = DownstreamResponseHeaders.clean(
            [("Connection", "close"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("Content-Length", "12"), ("Content-Type", "text/plain")],
            isSwitchingProtocols: false)
        XCTAssertEqual(out.map(\.name), ["Content-Length", "Content-Type"])
    }

    func testHeadersNamedInConnectionAreRemoved() {
        let out = DownstreamResponseHeaders.clean([("Connection", "X-Secret"), ("x_secret", "1"), ("X-Other", "2")], isSwitchingProtocols: false)
        XCTAssertEqual(out.map(\.name), ["X-Other"])
    }

    func testUpgradeIsKeptOnlyOnSwitchingProtocols() {
        XCTAssertEqual(DownstreamResponseHeaders.clean([("Upgrade", "websocket")], isSwitchingProtocols: true).map(\.name), ["Upgrade"])
        XCTAssertTrue(DownstreamResponseHeaders.clean([("Upgrade", "websocket")], isSwitchingProtocols: false).isEmpty)
    }
}
