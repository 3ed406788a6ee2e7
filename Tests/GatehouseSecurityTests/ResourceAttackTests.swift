import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Attempts to exhaust Gatehouse or slip past it with size and count: each is cut off cleanly,
/// the device sees nothing, and Gatehouse keeps serving.
final class ResourceAttackTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)"

    func testOversizedHeadsAndBodies() async throws {
        let bigHeader = "X-Big: " + String(repeating: "a", count: 40_000)
        let manyHeaders = (0..<10_000).map { "X-H\($0): v" }
        let attacks: [Attack] = [
            .request("a 40 kB header", "/api/job", headers: [key, bigHeader], .refused(431)),
            .request("10,000 headers", "/api/job", headers: [key] + manyHeaders, .refused(431)),
            .request("a 20 kB URI", "/api/job?x=" + String(repeating: "a", count: 20_000), headers: [key], .refused(414)),
            Attack("a declared body past the limit",
                "POST /api/files HTTP/1.1\r\nHost: gatehouse.test\r\n\(key)\r\nContent-Length: 10000000\r\n\r\n" + String(repeating: "a", count: 1000),
                .refused(413)),
            .request("a WebSocket upgrade without a credential", "/websocket",
                headers: ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"],
                .refused(401)),
            .request("a WebSocket upgrade with a wrong key", "/websocket",
                headers: ["X-Api-Key: wrong", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"],
                .refused(401)),
        ]
        try await ProxyFixture.with({ config in config.limits.maxBodyBytes = 1_000_000 }) { fx in
            try await launch(attacks, on: fx)
        }
    }

    func testAnEndlessChunkedBodyIsCutAtTheLimit() async throws {
        try await ProxyFixture.with({ config in config.limits.maxBodyBytes = 100_000 }) { fx in
            let client = try fx.client(timeout: 10)
            try client.send("POST /api/files HTTP/1.1\r\nHost: gatehouse.test\r\n\(key)\r\nTransfer-Encoding: chunked\r\n\r\n")
            let chunk = Array("1000\r\n".utf8) + Array(repeating: UInt8(ascii: "a"), count: 0x1000) + Array("\r\n".utf8)
            var sent = 0
            // Socket buffers absorb a few megabytes; past that, sending fails once Gatehouse stopped reading.
            while sent < 50_000_000 {
                do { try client.send(chunk) } catch { break }
                sent += 0x1000
            }
            let outcome = StreamTest.readOutcome(client)
            switch outcome {
            case .response(let response): XCTAssertEqual(response.status, 413)
            case .closedEarly: break  // the head went upstream already; the cut shows as a closed connection
            default: XCTFail("expected 413 or a closed connection, got \(outcome)")
            }
            XCTAssertLessThan(sent, 50_000_000, "Gatehouse kept reading an endless body")
            for request in fx.upstream.requests {
                XCTAssertLessThanOrEqual(request.bodyBytes, 100_000, "the device got more than the limit")
            }
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/job", [key]).status, 200, "still serving")
        }
    }

    func testThousandsOfIdleConnectionsDoNotStopService() async throws {
        // Both ends of every connection live in this process: make room for them.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < 4096 {
            limit.rlim_cur = min(limit.rlim_max, 4096)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let count = Int(min(1000, (limit.rlim_cur - 200) / 2))
        // Limits above the count: this is about the event loop, not the connection limits.
        try await ProxyFixture.with({ config in
            config.limits.maxConnections = 5000
            config.limits.maxConnectionsPerClient = 5000
        }) { fx in
            var idle: [RawClient] = []
            for _ in 0..<count { idle.append(try fx.client(timeout: 5)) }
            for client in idle.prefix(count / 2) { try client.send("GET /api/job HTTP/1.1\r\nHost: gatehouse.test\r\n") }  // heads never finished
            XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/job", [key]).status, 200, "a real client is served")
            XCTAssertTrue(fx.upstream.requests.allSatisfy { $0.values("X-Remote-User") == ["alice"] }, "no half-sent head reached the device")
            idle.removeAll()
        }
    }

    func testAFloodOfConnectionsFromOneAddressIsTurnedAwayAtItsLimit() async throws {
        try await ProxyFixture.with({ config in config.limits.maxConnectionsPerClient = 50 }) { fx in
            let held = try (0..<50).map { _ in try fx.client(timeout: 5) }
            var refused = 0
            for _ in 0..<200 {
                let extra = try fx.client(timeout: 5)
                if case .response(let r) = StreamTest.readOutcome(extra), r.status == 503 { refused += 1 }
            }
            XCTAssertEqual(refused, 200, "every connection past the limit gets a 503")
            XCTAssertEqual(fx.upstream.requests.count, 0)
            XCTAssertEqual(held.count, 50)
        }
    }
}
