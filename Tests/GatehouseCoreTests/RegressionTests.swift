import Foundation
import XCTest

@testable import GatehouseCore

/// Bugs found by the first test pass, kept closed.
final class RegressionTests: XCTestCase {
    func testAWorkingQueryKeyBesideABrokenHeaderIsRemovedOnAPublicPath() {
        let config = GatehouseConfig(
            queryAPIKey: true, publicPaths: ["/static"],
            apiKeys: [APIKeyRecord(name: "full", user: "alice", roles: [], digest: .of("full-key"))])
        for broken in [("Authorization", "Basic YTpi"), ("X-Api-Key", "wrong-key")] {
            let facts = RequestFacts(
                head: Fixture.head([("Host", "d"), (name: broken.0, value: broken.1)], uri: "/static/app.js?apikey=full-key&v=2"),
                target: RequestTarget("/static/app.js?apikey=full-key&v=2"), peer: IPAddress("203.0.113.7"))
            guard case .forward(let plan) = RequestGate(config: config).decide(facts, now: Date()) else {
                return XCTFail("a public path is forwarded")
            }
            XCTAssertNil(plan.identity)
            let policy = UpstreamHeaderPolicy(identityHeaders: IdentityHeaderNames(), stripHeaders: [], forwardCredentials: false)
            XCTAssertEqual(policy.target(RequestTarget("/static/app.js?apikey=full-key&v=2"), plan: plan).uri, "/static/app.js?v=2")
        }
    }

    func testAYAMLReaderErrorHasItsLineAndNeverQuotesTheFile() {
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: "api_keys:\n  - {name: a, user: b, hash: \"REALSECRETKEY\u{01}\"}\n")) { error in
            guard let error = error as? ConfigError else { return XCTFail("expected ConfigError") }
            XCTAssertEqual(error.line, 2)
            XCTAssertFalse(error.description.contains("REALSECRETKEY"))
            XCTAssertFalse(error.description.contains("\n"))
        }
    }

    func testAnIPv6WrittenBlockHasAnIPv6PrefixLength() throws {
        let mapped = try CIDR(parsing: "::ffff:0:0/96")
        XCTAssertTrue(mapped.contains(IPAddress("192.0.2.1")!))
        XCTAssertFalse(mapped.contains(IPAddress("2001:db8::1")!))
        XCTAssertThrowsError(try CIDR(parsing: "::ffff:10.0.0.0/8"), "an IPv6 /8 with these bits set is a typo")
        XCTAssertTrue(try CIDR(parsing: "::ffff:192.168.0.0/112").contains(IPAddress("192.168.7.7")!))
    }
}
