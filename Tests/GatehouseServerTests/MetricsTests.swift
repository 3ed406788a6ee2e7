import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// `/_gatehouse/metrics`: Prometheus text for a configured role or trusted network only,
/// counting what really happened.
final class MetricsTests: XCTestCase {
    /// The value of the series whose line starts with `series` (name and labels), or nil.
    private func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    func testOnlyTheMetricsRoleReadsThemAndTheyCountRequests() async throws {
        try await IdentityFixture.with { fx in
            XCTAssertEqual(try fx.send("GET", "/_gatehouse/metrics").status, 401)
            XCTAssertEqual(try fx.send("GET", "/_gatehouse/metrics", headers: ["X-Api-Key: \(ProxyFixture.readerKey)"]).status, 403, "viewer lacks admin")
            XCTAssertEqual(try fx.send("POST", "/_gatehouse/metrics", headers: ["X-Api-Key: \(ProxyFixture.aliceKey)"], body: "").status, 405)

            for _ in 0..<3 { XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["X-Api-Key: \(ProxyFixture.aliceKey)"]).status, 200) }
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["X-Api-Key: wrong-key"]).status, 401)
            XCTAssertEqual(try fx.send("GET", "/api/printer").status, 401)
            let tunnel = try RawClient(port: fx.port, timeoutSeconds: 5)
            try tunnel.send(
                "GET /ws HTTP/1.1\r\nHost: t\r\nX-Api-Key: \(ProxyFixture.aliceKey)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            XCTAssertEqual(try tunnel.readResponse().status, 101)

            let response = try fx.send("GET", "/_gatehouse/metrics", headers: ["X-Api-Key: \(ProxyFixture.aliceKey)"])
            XCTAssertEqual(response.status, 200)
            XCTAssertTrue(response.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") ?? false)
            let text = response.bodyText
            XCTAssertEqual(value(text, #"gatehouse_requests_total{status_class="2xx",auth="api_key"}"#), 3, text)
            XCTAssertEqual(value(text, #"gatehouse_requests_total{status_class="4xx",auth="none"}"#), 5, "401, 403, 405, the wrong key, no key:\n\(text)")
            XCTAssertEqual(value(text, #"gatehouse_auth_failures_total{reason="unknown_key"}"#), 1, text)
            XCTAssertEqual(value(text, #"gatehouse_auth_failures_total{reason="missing_credential"}"#), 1, text)
            XCTAssertEqual(value(text, "gatehouse_open_tunnels"), 1, text)
            XCTAssertGreaterThanOrEqual(value(text, "gatehouse_open_connections") ?? 0, 2, "the tunnel and this request:\n\(text)")
            XCTAssertGreaterThanOrEqual(value(text, "gatehouse_upstream_response_seconds_count") ?? 0, 4, "three requests and the upgrade:\n\(text)")
            XCTAssertNotNil(value(text, "gatehouse_lockouts_started"), text)
            XCTAssertFalse(text.contains(ProxyFixture.aliceKey) || text.contains("wrong-key"), "no credential in the metrics")
            StreamTest.hangUp(tunnel)
            let closed = await StreamTest.eventually {
                let later = (try? fx.send("GET", "/_gatehouse/metrics", headers: ["X-Api-Key: \(ProxyFixture.aliceKey)"]).bodyText) ?? ""
                return self.value(later, "gatehouse_open_tunnels") == 0
            }
            XCTAssertTrue(closed, "the tunnel gauge goes back down")
        }
    }

    func testDroppedUnderscoreHeadersAreCountedAndLoggedAtMostOnceAMinute() async throws {
        let log = CapturedLog()
        let fx = try await IdentityFixture(log: log)
        do {
            let key = "X-Api-Key: \(ProxyFixture.aliceKey)"
            for name in ["X_Api_Key", "X_Custom", "Remote_User"] {
                XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [key, "\(name): other"]).status, 200)
            }
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [key, "X_One: 1", "X_Two: 2"]).status, 200)
            let text = try fx.send("GET", "/_gatehouse/metrics", headers: [key]).bodyText
            XCTAssertEqual(value(text, #"gatehouse_dropped_headers_total{reason="underscore"}"#), 5, text)
            let lines = log.all.filter { $0.contains("dropped request header") }
            XCTAssertEqual(lines.count, 1, "logged once, not once per request: \(lines)")
            XCTAssertTrue(lines.first?.contains("X_Api_Key") ?? false, "\(lines)")
            XCTAssertFalse(log.all.joined().contains("other"), "a dropped header's value is never logged")
        } catch {
            await fx.stop(removeFiles: true)
            throw error
        }
        await fx.stop(removeFiles: true)
    }

    func testATrustedNetworkWithTheRoleReadsThemWithoutACredential() async throws {
        try await IdentityFixture.with({ config in
            config.metricsRoles = ["monitoring"]
            config.trustedNetworks = [TrustedNetwork(cidr: AuthTest.cidr("127.0.0.1/32"), user: "prometheus", roles: ["monitoring"])]
        }) { fx in
            XCTAssertEqual(try fx.send("GET", "/_gatehouse/metrics").status, 200)
            XCTAssertEqual(try fx.send("GET", "/_gatehouse/metrics", headers: ["X-Api-Key: \(ProxyFixture.aliceKey)"]).status, 403, "admin is not the metrics role here")
        }
    }
}
