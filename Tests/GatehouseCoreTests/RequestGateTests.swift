import Foundation
import XCTest

@testable import GatehouseCore

final class RequestGateTests: XCTestCase {
    static let now = Fixture.date("2026-06-01T12:00:00Z")

    static func config(queryAPIKey: Bool = true, trustedNetworks: [TrustedNetwork]? = nil) -> GatehouseConfig {
        GatehouseConfig(
            queryAPIKey: queryAPIKey,
            publicPaths: ["/static", "/healthz"],
            apiKeys: [
                APIKeyRecord(name: "full", user: "alice", roles: ["admin"], digest: SecretDigest.of("full-key")),
                APIKeyRecord(name: "ro", user: "bob", roles: ["viewer"], digest: SecretDigest.of("ro-key"), readOnly: true),
                APIKeyRecord(name: "old", user: "carol", roles: [], digest: SecretDigest.of("old-key"), expires: now.addingTimeInterval(-3600)),
                APIKeyRecord(name: "off", user: "dave", roles: [], digest: SecretDigest.of("off-key"), disabled: true),
            ],
            trustedNetworks: trustedNetworks ?? [
                TrustedNetwork(cidr: Fixture.cidr("192.168.1.0/24"), user: "lan", roles: ["viewer"]),
                TrustedNetwork(cidr: Fixture.cidr("fd00::/8"), user: "lan6", roles: ["ops"]),
            ],
            trustedProxies: [Fixture.cidr("10.0.0.0/8")])
    }

    let outsider = "203.0.113.7"

    func decide(
        _ method: String = "GET", _ uri: String = "/api/printer", headers: [(name: String, value: String)] = [], peer: String? = "203.0.113.7",
        upgrade: Bool = false, config: GatehouseConfig = RequestGateTests.config()
    ) -> GateDecision {
        let facts = RequestFacts(
            head: Fixture.head([(name: "Host", value: "device.local")] + headers, method: method, uri: uri), target: RequestTarget(uri),
            peer: peer.map { Fixture.ip($0) }, isWebSocketUpgrade: upgrade)
        return RequestGate(config: config).decide(facts, now: Self.now)
    }

    func forwarded(_ decision: GateDecision, file: StaticString = #filePath, line: UInt = #line) -> ForwardPlan? {
        switch decision {
        case .forward(let plan): return plan
        case .refuse(let failure):
            XCTFail("expected the request to be forwarded, it was refused: \(failure)", file: file, line: line)
            return nil
        case .lookUp(let pending):
            XCTFail("expected the request to be forwarded, it needs a store lookup (\(pending.kind))", file: file, line: line)
            return nil
        }
    }

    func refused(_ decision: GateDecision, file: StaticString = #filePath, line: UInt = #line) -> AuthenticationFailure? {
        switch decision {
        case .refuse(let failure): return failure
        case .forward(let plan):
            XCTFail("expected the request to be refused, it was forwarded as \(String(describing: plan.identity))", file: file, line: line)
            return nil
        case .lookUp(let pending):
            XCTFail("expected the request to be refused, it needs a store lookup (\(pending.kind))", file: file, line: line)
            return nil
        }
    }

    // MARK: A presented credential decides

    func testValidKeyIsForwardedWithItsIdentityAndConsumedSource() {
        guard let plan = forwarded(decide(headers: [("X-Api-Key", "full-key")])) else { return }
        XCTAssertEqual(plan.identity, Identity(user: "alice", roles: ["admin"], method: .apiKey, readOnly: false, source: "full"))
        XCTAssertEqual(plan.consumed, [.apiKeyHeader])
        XCTAssertEqual(plan.clientAddress, Fixture.ip(outsider))
        XCTAssertFalse(plan.peerIsTrustedProxy)
    }

    func testValidBearerKeyConsumesTheAuthorizationHeader() {
        XCTAssertEqual(forwarded(decide(headers: [("Authorization", "Bearer full-key")]))?.consumed, [.authorizationBearer])
    }

    func testValidQueryKeyConsumesTheQueryParameter() {
        let plan = forwarded(decide("GET", "/api/printer?apikey=full-key"))
        XCTAssertEqual(plan?.identity?.user, "alice")
        XCTAssertEqual(plan?.consumed, [.apiKeyQueryParameter])
    }

    func testSameKeyInSeveralPlacesConsumesEveryPlace() {
        let plan = forwarded(decide("GET", "/x?apikey=full-key", headers: [("X-Api-Key", "full-key"), ("Authorization", "Token full-key")]))
        XCTAssertEqual(plan?.consumed, [.apiKeyHeader, .authorizationToken, .apiKeyQueryParameter])
    }

    func testValidKeyFromTrustedNetworkUsesTheKeyIdentity() {
        XCTAssertEqual(forwarded(decide(headers: [("X-Api-Key", "full-key")], peer: "192.168.1.5"))?.identity?.method, .apiKey)
    }

    func testUnknownKeyIsRefused() {
        XCTAssertEqual(refused(decide(headers: [("X-Api-Key", "nope")])), .unknownAPIKey)
    }

    func testInvalidKeyFromTrustedNetworkIsRefusedAsUnknown() {
        XCTAssertEqual(refused(decide(headers: [("X-Api-Key", "nope")], peer: "192.168.1.5")), .unknownAPIKey)
    }

    func testMalformedAuthorizationFromTrustedNetworkIsRefused() {
        guard case .malformedAuthorization? = refused(decide(headers: [("Authorization", "Bearer")], peer: "192.168.1.5")) else {
            return XCTFail("a malformed Authorization from a trusted network should be refused as malformed")
        }
    }

    func testBasicAuthorizationIsRefusedAsUnsupported() {
        XCTAssertEqual(refused(decide(headers: [("Authorization", "Basic YTpi")])), .unsupportedAuthorizationScheme("Basic"))
    }

    func testConflictingKeysAreRefused() {
        XCTAssertEqual(refused(decide(headers: [("X-Api-Key", "full-key"), ("Authorization", "Bearer ro-key")])), .conflictingCredentials)
    }

    func testExpiredKeyIsRefused() {
        XCTAssertEqual(refused(decide(headers: [("X-Api-Key", "old-key")])), .expiredAPIKey)
    }

    func testDisabledKeyIsRefused() {
        XCTAssertEqual(refused(decide(headers: [("X-Api-Key", "off-key")])), .disabledAPIKey)
    }

    func testQueryKeyIsIgnoredWhenDisabled() {
        XCTAssertEqual(refused(decide("GET", "/api?apikey=full-key", config: Self.config(queryAPIKey: false))), .missingCredential)
    }

    // MARK: Trusted networks

    func testNoCredentialFromTrustedIPv4NetworkGetsTheNetworkIdentity() {
        guard let plan = forwarded(decide(peer: "192.168.1.5")) else { return }
        XCTAssertEqual(plan.identity, Identity(user: "lan", roles: ["viewer"], method: .trustedNetwork, readOnly: false, source: "192.168.1.0/24"))
        XCTAssertEqual(plan.consumed, [])
    }

    func testNoCredentialFromIPv4MappedPeerGetsTheIPv4NetworkIdentity() {
        XCTAssertEqual(forwarded(decide(peer: "::ffff:192.168.1.5"))?.identity?.user, "lan")
    }

    func testNoCredentialFromTrustedIPv6NetworkGetsTheNetworkIdentity() {
        let plan = forwarded(decide(peer: "fd00::42"))
        XCTAssertEqual(plan?.identity?.user, "lan6")
        XCTAssertEqual(plan?.identity?.method, .trustedNetwork)
    }

    func testNoCredentialFromOutsideIsRefusedAsMissing() {
        XCTAssertEqual(refused(decide(peer: outsider)), .missingCredential)
    }

    func testUnixSocketClientWithoutCredentialIsRefused() {
        XCTAssertEqual(refused(decide(peer: nil)), .missingCredential)
    }

    func testClientBehindTrustedProxyGetsTheNetworkIdentity() {
        guard let plan = forwarded(decide(headers: [("X-Forwarded-For", "192.168.1.5")], peer: "10.0.0.1")) else { return }
        XCTAssertEqual(plan.identity?.user, "lan")
        XCTAssertEqual(plan.clientAddress, Fixture.ip("192.168.1.5"))
        XCTAssertTrue(plan.peerIsTrustedProxy)
    }

    func testForwardedForFromUntrustedPeerCannotClaimATrustedNetwork() {
        XCTAssertEqual(refused(decide(headers: [("X-Forwarded-For", "192.168.1.5")], peer: outsider)), .missingCredential)
    }

    func testGarbageForwardedForFromTrustedProxyInsideTrustedNetworkGrantsNothing() {
        let config = Self.config(trustedNetworks: [TrustedNetwork(cidr: Fixture.cidr("10.0.0.0/8"), user: "infra", roles: [])])
        XCTAssertEqual(refused(decide(headers: [("X-Forwarded-For", "garbage")], peer: "10.0.0.1", config: config)), .missingCredential)
    }

    func testSpoofedForwardedForBehindTrustedProxyUsesTheRealClient() {
        let decision = decide(headers: [("X-Forwarded-For", "192.168.1.5, 203.0.113.7")], peer: "10.0.0.1")
        XCTAssertEqual(refused(decision), .missingCredential)
    }

    // MARK: Public paths

    func testPublicPathWithoutCredentialIsForwardedAnonymously() {
        guard let plan = forwarded(decide("GET", "/static/app.js")) else { return }
        XCTAssertNil(plan.identity)
        XCTAssertEqual(plan.consumed, [])
    }

    func testPublicPathWithBadKeyIsForwardedAnonymouslyWithTheKeyConsumed() {
        guard let plan = forwarded(decide("GET", "/static/app.js", headers: [("X-Api-Key", "nope")])) else { return }
        XCTAssertNil(plan.identity)
        XCTAssertEqual(plan.consumed, [.apiKeyHeader])
    }

    func testPublicPathWithMalformedAuthorizationIsForwardedAnonymouslyWithHeadersConsumed() {
        guard let plan = forwarded(decide("GET", "/healthz", headers: [("Authorization", "Basic YTpi")])) else { return }
        XCTAssertNil(plan.identity)
        XCTAssertTrue(plan.consumed.isSuperset(of: [.apiKeyHeader, .authorizationBearer, .authorizationToken]))
    }

    func testPublicPathWithValidKeyKeepsTheIdentity() {
        XCTAssertEqual(forwarded(decide("GET", "/static/app.js", headers: [("X-Api-Key", "full-key")]))?.identity?.user, "alice")
    }

    func testPublicPathFromTrustedNetworkKeepsTheNetworkIdentity() {
        XCTAssertEqual(forwarded(decide("GET", "/static/app.js", peer: "192.168.1.5"))?.identity?.user, "lan")
    }

    func testDotSegmentPathUnderPublicPrefixNeedsACredential() {
        XCTAssertEqual(refused(decide("GET", "/static/../api/printer")), .missingCredential)
    }

    func testPublicPathWithQueryIsStillPublic() {
        XCTAssertNil(forwarded(decide("GET", "/static/app.js?v=3"))?.identity)
    }

    // MARK: Read-only identities

    func testReadOnlyKeyMayUseSafeMethods() {
        for method in ["GET", "HEAD", "OPTIONS"] {
            XCTAssertEqual(forwarded(decide(method, headers: [("X-Api-Key", "ro-key")]))?.identity?.readOnly, true, method)
        }
    }

    func testReadOnlyKeyPostIsRefusedWith403() {
        let failure = refused(decide("POST", headers: [("X-Api-Key", "ro-key")]))
        XCTAssertEqual(failure, .readOnlyCredential(method: "POST"))
        XCTAssertEqual(failure?.status, 403)
    }

    func testReadOnlyKeyUnsafeMethodsAreRefused() {
        // (A lower-case method never gets this far: the request parser refuses it.)
        for method in ["PUT", "PATCH", "DELETE", "CONNECT", "PROPFIND"] {
            XCTAssertEqual(refused(decide(method, headers: [("X-Api-Key", "ro-key")])), .readOnlyCredential(method: method), method)
        }
    }

    func testReadOnlyKeyWebSocketUpgradeIsRefused() {
        let failure = refused(decide("GET", "/websocket", headers: [("X-Api-Key", "ro-key")], upgrade: true))
        XCTAssertEqual(failure, .readOnlyUpgrade)
        XCTAssertEqual(failure?.status, 403)
    }

    func testReadOnlyKeyPostOnPublicPathIsRefused() {
        XCTAssertEqual(refused(decide("POST", "/static/x", headers: [("X-Api-Key", "ro-key")])), .readOnlyCredential(method: "POST"))
    }

    func testFullKeyMayPostAndOpenAWebSocket() {
        XCTAssertNotNil(forwarded(decide("POST", headers: [("X-Api-Key", "full-key")])))
        XCTAssertNotNil(forwarded(decide("GET", "/websocket", headers: [("X-Api-Key", "full-key")], upgrade: true)))
    }

    func testTrustedNetworkIdentityMayPost() {
        XCTAssertEqual(forwarded(decide("POST", peer: "192.168.1.5"))?.identity?.readOnly, false)
    }

    // MARK: Status codes

    func testRefusalsWithoutAValidCredentialAre401() {
        let failures: [AuthenticationFailure] = [
            .missingCredential, .unknownAPIKey, .expiredAPIKey, .disabledAPIKey, .malformedAuthorization(reason: "r"),
            .unsupportedAuthorizationScheme("Basic"), .conflictingCredentials,
        ]
        for failure in failures { XCTAssertEqual(failure.status, 401, "\(failure)") }
    }

    func testRefusalsOfAKnownCallerAre403() {
        XCTAssertEqual(AuthenticationFailure.readOnlyCredential(method: "POST").status, 403)
        XCTAssertEqual(AuthenticationFailure.readOnlyUpgrade.status, 403)
    }

    func testEveryFailureHasADistinctCode() {
        let failures: [AuthenticationFailure] = [
            .missingCredential, .unknownAPIKey, .expiredAPIKey, .disabledAPIKey, .malformedAuthorization(reason: "r"),
            .unsupportedAuthorizationScheme("Basic"), .conflictingCredentials, .readOnlyCredential(method: "POST"), .readOnlyUpgrade,
        ]
        XCTAssertEqual(Set(failures.map(\.code)).count, failures.count)
    }
}
