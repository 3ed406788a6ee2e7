import Foundation
import GatehouseTestSupport
import XCTest

/// Size limits are answered with their own status before the device sees anything, and clients
/// that hold a connection without using it are cut off.
final class LimitsTests: XCTestCase {
    func testURILongerThanMaxURIBytesGets414() async throws {
        try await ProxyFixture.with { fx in
            XCTAssertEqual(fx.config.limits.maxURIBytes, 8192)
            let path = "/" + String(repeating: "a", count: 10_000)
            let response = try fx.get(path, [StreamTest.keyHeader])
            XCTAssertEqual(response.status, 414)
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }

    func testHeadLargerThanMaxHeadBytesGets431() async throws {
        try await ProxyFixture.with({ config in
            config.limits.maxHeadBytes = 4096
        }) { fx in
            // Each field is well under the limit; together they are over it.
            let filler = (0..<8).map { "X-Filler-\($0): " + String(repeating: "f", count: 1000) }
            let response = try fx.get("/big-head", [StreamTest.keyHeader] + filler)
            XCTAssertEqual(response.status, 431)
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }

    func testSingleHeaderFieldLargerThanMaxHeadBytesGets431() async throws {
        try await ProxyFixture.with({ config in
            config.limits.maxHeadBytes = 4096
        }) { fx in
            let response = try fx.get("/big-field", [StreamTest.keyHeader, "X-Huge: " + String(repeating: "h", count: 8000)])
            XCTAssertEqual(response.status, 431)
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }

    func testMoreHeadersThanMaxHeadersGets431() async throws {
        try await ProxyFixture.with({ config in
            config.limits.maxHeaders = 10
        }) { fx in
            let many = (0..<20).map { "X-Many-\($0): v" }
            let response = try fx.get("/many-headers", [StreamTest.keyHeader] + many)
            XCTAssertEqual(response.status, 431)
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }

    func testContentLengthOverMaxBodyBytesGets413AndReachesNothing() async throws {
        try await ProxyFixture.with({ config in
            config.limits.maxBodyBytes = 1000
        }) { fx in
            let c = try fx.client(timeout: 3)
            // Only the head: the answer must come from the declared length alone.
            try c.send("POST /upload HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nContent-Length: 5000\r\n\r\n")
            let response = try c.readResponse()
            XCTAssertEqual(response.status, 413)
            XCTAssertTrue(c.isClosedByPeer(), "the unread body would be parsed as the next request")
            XCTAssertTrue(fx.upstream.requests.isEmpty)
            XCTAssertEqual(fx.upstream.connectionsAccepted, 0)
        }
    }

    func testChunkedBodyOverMaxBodyBytesIsCutOffBeforeUpstreamGetsItAll() async throws {
        let limit = 64 << 10
        try await ProxyFixture.with({ config in
            config.limits.maxBodyBytes = Int64(limit)
        }) { fx in
            let c = try fx.client(timeout: 3)
            try c.send("POST /upload HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nTransfer-Encoding: chunked\r\n\r\n")
            // 256 KiB in 16 KiB chunks; the server may stop reading (and the send fail) once the
            // limit is passed.
            let chunk = StreamTest.payload(16 << 10, seed: 3)
            var sendFailed = false
            for _ in 0..<16 where !sendFailed {
                do {
                    try c.send(String(chunk.count, radix: 16) + "\r\n")
                    try c.send(chunk)
                    try c.send("\r\n")
                } catch {
                    sendFailed = true
                }
            }
            if !sendFailed { try? c.send("0\r\n\r\n") }

            let outcome = StreamTest.readOutcome(c)
            switch outcome {
            case .response(let response):
                XCTAssertEqual(response.status, 413)
            case .closedEarly:
                break
            case .timedOut, .malformed:
                XCTFail("expected 413 or a closed connection, got \(outcome)")
            }
            // The upstream never saw the body end: no request of it was completed.
            XCTAssertTrue(fx.upstream.requests.allSatisfy { $0.bodySHA == nil && $0.bodyBytes == 0 })
            let upstreamPort = fx.upstream.port
            XCTAssertTrue(
                ProxyFixture.eventually { StreamTest.establishedConnections(localPort: upstreamPort) == 0 },
                "the upstream connection that carried the oversized body stayed open")
        }
    }

    func testIdleKeepAliveConnectionIsClosedByServer() async throws {
        try await ProxyFixture.with({ config in
            config.timeouts.idle = .seconds(1)
        }) { fx in
            let c = try fx.client(timeout: 4)
            let response = try c.request("GET /first HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n\r\n")
            XCTAssertEqual(response.status, 200)
            XCTAssertNotEqual(response.header("Connection")?.lowercased(), "close")
            let idleFrom = Date()
            XCTAssertTrue(c.isClosedByPeer(), "an idle keep-alive connection was kept past the idle timeout")
            XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(idleFrom), 0.8, "closed before the idle timeout")
        }
    }

    func testRequestHeadNotCompletedWithinClientHeaderTimeoutIsCutOff() async throws {
        try await ProxyFixture.with({ config in
            config.timeouts.clientHeader = .seconds(1)
        }) { fx in
            XCTAssertGreaterThan(fx.config.timeouts.idle.seconds, 10)
            let c = try fx.client(timeout: 4)
            try c.send("GET /slowloris HTTP/1.1\r\nHost: gatehouse.test\r\n")
            XCTAssertTrue(c.isClosedByPeer(), "a half-sent request head kept the connection open")
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }
}
