import GatehouseTestSupport
import XCTest

final class SmokeTests: XCTestCase {
    func testValidKeyReachesUpstreamWithIdentityAndMissingKeyDoesNot() async throws {
        try await ProxyFixture.with { fx in
            let denied = try fx.get("/api/printer")
            XCTAssertEqual(denied.status, 401)
            XCTAssertEqual(fx.upstream.requests.count, 0)
            let ok = try fx.get("/api/printer", ["X-Api-Key: \(ProxyFixture.aliceKey)"])
            XCTAssertEqual(ok.status, 200)
            XCTAssertEqual(fx.upstream.requests.count, 1)
            XCTAssertEqual(fx.upstream.requests[0].values("X-Remote-User"), ["alice"])
        }
    }
}
