import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// `limits.max_connections` and `limits.max_connections_per_client`: past them a new connection
/// gets a 503 and is closed, the device sees nothing, and everyone else is still served.
final class ConnectionLimitTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)"

    private func assertTurnedAway(_ fx: ProxyFixture, host: String = "127.0.0.1", file: StaticString = #filePath, line: UInt = #line) throws {
        let client = try fx.client(host: host, timeout: 5)
        guard case .response(let response) = StreamTest.readOutcome(client) else {
            return XCTFail("expected a 503 without sending anything", file: file, line: line)
        }
        XCTAssertEqual(response.status, 503, file: file, line: line)
        XCTAssertEqual(response.header("Retry-After"), "1", file: file, line: line)
        XCTAssertTrue(client.isClosedByPeer(), "the refused connection stayed open", file: file, line: line)
    }

    /// A request on a new connection, retried for a moment: a released slot is counted out when
    /// the closed connection's close has been processed.
    private func servedSoon(_ fx: ProxyFixture, host: String = "127.0.0.1") throws -> Int {
        let deadline = Date().addingTimeInterval(3)
        var status = 0
        repeat {
            status = (try? AuthTest.send(fx, "GET", "/api/job", [key], host: host).status) ?? 0
            if status == 200 { return status }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        return status
    }

    func testPerClientLimitTurnsAwayOnlyThatAddress() async throws {
        try await ProxyFixture.with({ config in
            config.listen = ListenAddress(host: "::", port: 0)
            config.limits.maxConnectionsPerClient = 3
        }) { fx in
            var open = try (0..<3).map { _ in try fx.client(host: "127.0.0.1") }
            try assertTurnedAway(fx)
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/job", [key], host: "::1").status, 200, "another address is served")
            XCTAssertEqual(fx.upstream.requests.count, 1, "only the request from ::1 reached the device")
            open.removeLast()
            XCTAssertEqual(try servedSoon(fx), 200, "a freed slot can be used again")
            XCTAssertEqual(open.count, 2)
        }
    }

    func testTotalLimit() async throws {
        try await ProxyFixture.with({ config in
            config.limits.maxConnections = 4
        }) { fx in
            var open = try (0..<4).map { _ in try fx.client() }
            try assertTurnedAway(fx)
            open.removeAll()
            XCTAssertEqual(try servedSoon(fx), 200)
        }
    }

    func testATrustedProxyIsHeldOnlyToTheTotal() async throws {
        try await ProxyFixture.with({ config in
            config.limits.maxConnectionsPerClient = 2
            config.trustedProxies = [AuthTest.cidr("127.0.0.1/32")]
        }) { fx in
            let open = try (0..<5).map { _ in try fx.client() }
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/job", [key]).status, 200)
            XCTAssertEqual(open.count, 5)
        }
    }

    func testLimitsAreConfigurable() throws {
        let config = try ConfigLoader.parse(yaml: "limits: {max_connections: 10, max_connections_per_client: 2}\n")
        XCTAssertEqual(config.limits.maxConnections, 10)
        XCTAssertEqual(config.limits.maxConnectionsPerClient, 2)
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: "limits: {max_connections: 0}\n"))
    }
}
