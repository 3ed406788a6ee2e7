import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// A client that stops sending its request body mid-way is cut off after `timeouts.client_body`;
/// one that keeps sending, however slowly, is not.
final class SlowBodyTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)"

    private static func quickBodyTimeout(_ config: inout GatehouseConfig) { config.timeouts.clientBody = .seconds(1) }

    func testAStalledBodyIsCutOffAndOthersAreServed() async throws {
        try await ProxyFixture.with(Self.quickBodyTimeout) { fx in
            let stalled = try fx.client(timeout: 5)
            try stalled.send("POST /api/files HTTP/1.1\r\nHost: gatehouse.test\r\n\(key)\r\nContent-Length: 1000\r\n\r\n" + String(repeating: "a", count: 10))
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/job", [key]).status, 200, "others are served meanwhile")
            let started = Date()
            XCTAssertTrue(stalled.isClosedByPeer(), "a stalled upload held its connection")
            XCTAssertLessThan(Date().timeIntervalSince(started), 4.5)
            XCTAssertFalse(fx.upstream.requests.contains { $0.complete && $0.uri == "/api/files" }, "the device never got a complete upload")
        }
    }

    func testASlowButSteadyBodyIsNotCutOff() async throws {
        try await ProxyFixture.with(Self.quickBodyTimeout) { fx in
            let client = try fx.client(timeout: 10)
            try client.send("POST /api/files HTTP/1.1\r\nHost: gatehouse.test\r\n\(key)\r\nContent-Length: 6\r\nConnection: close\r\n\r\n")
            for byte in "abcdef" {
                try await Task.sleep(for: .milliseconds(400))
                try client.send(String(byte))
            }
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(fx.upstream.requests.last?.bodyBytes, 6)
        }
    }
}
