import Crypto
import Foundation
import GatehouseTestSupport
import XCTest

/// Connection handling on both sides: keep-alive and pooling, pipelining, HTTP/1.0, HEAD,
/// unix-socket upstreams, `Expect: 100-continue`, graceful shutdown.
final class ConnectionTests: XCTestCase {
    private static func get(_ path: String, close: Bool = false) -> String {
        "GET \(path) HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n"
    }

    func testKeepAliveRequestsShareOneUpstreamConnection() async throws {
        try await ProxyFixture.with(threads: 1) { fx in
            let c = try fx.client()
            for i in 0..<5 {
                let response = try c.request(Self.get("/keep/\(i)"))
                XCTAssertEqual(response.status, 200)
                XCTAssertEqual(StreamTest.echoedPath(response), "/keep/\(i)")
                XCTAssertNotEqual(response.header("Connection")?.lowercased(), "close")
            }
            let recorded = fx.upstream.requests
            XCTAssertEqual(recorded.map(\.uri), (0..<5).map { "/keep/\($0)" })
            XCTAssertEqual(Set(recorded.map(\.connectionID)).count, 1, "connections: \(recorded.map(\.connectionID))")
            XCTAssertEqual(fx.upstream.connectionsAccepted, 1)
        }
    }

    /// A device that ends a kept-alive connection with `Connection: close` (nginx does at its
    /// 1,000th request): the response still reaches the client, and its connection goes on.
    /// (Gatehouse closed the device's connection in the middle of reading that response, and
    /// the response was never flushed: every client connection hung at its 1,000th request.)
    func testAResponseThatClosesTheDevicesConnectionReachesTheClient() async throws {
        try await ProxyFixture.with(threads: 1) { fx in
            let c = try fx.client(timeout: 3)
            for i in 0..<6 {
                let response = try c.request(Self.get(i.isMultiple(of: 2) ? "/last/\(i)?close=1" : "/keep/\(i)"))
                XCTAssertEqual(response.status, 200, "request \(i)")
                XCTAssertEqual(StreamTest.echoedPath(response), i.isMultiple(of: 2) ? "/last/\(i)" : "/keep/\(i)")
                XCTAssertNotEqual(response.header("Connection")?.lowercased(), "close", "the client's connection stays")
            }
            XCTAssertEqual(fx.upstream.connectionsAccepted, 4, "a fresh device connection after each close")
        }
    }

    func testPipelinedRequestsAreAnsweredInOrder() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client()
            try c.send(Self.get("/one") + Self.get("/two") + Self.get("/three", close: true))
            var paths: [String?] = []
            for _ in 0..<3 {
                let response = try c.readResponse()
                XCTAssertEqual(response.status, 200)
                paths.append(StreamTest.echoedPath(response))
            }
            XCTAssertEqual(paths, ["/one", "/two", "/three"])
            XCTAssertTrue(c.isClosedByPeer())
        }
    }

    func testHTTP10RequestWithoutKeepAliveGetsResponseThenClose() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client(timeout: 3)
            let response = try c.request("GET /legacy HTTP/1.0\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n\r\n")
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(StreamTest.echoedPath(response), "/legacy")
            XCTAssertTrue(c.isClosedByPeer(), "an HTTP/1.0 connection without keep-alive stayed open")
        }
    }

    func testHEADResponseHasNoBodyAndConnectionStaysUsable() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client()
            let head = try c.request("HEAD /thing HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n\r\n")
            XCTAssertEqual(head.status, 200)
            XCTAssertTrue(head.body.isEmpty)
            // Had any body bytes followed the HEAD response, they would be read as this response.
            let next = try c.request(Self.get("/after-head", close: true))
            XCTAssertEqual(next.status, 200)
            XCTAssertEqual(StreamTest.echoedPath(next), "/after-head")
            XCTAssertEqual(fx.upstream.requests.map(\.method), ["HEAD", "GET"])
        }
    }

    func testUnixSocketUpstreamWorks() async throws {
        let path = "/tmp/gh-test-\(UUID()).sock"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await ProxyFixture.with(unixSocket: path) { fx in
            let response = try fx.get("/over-unix", [StreamTest.keyHeader])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(StreamTest.echoedPath(response), "/over-unix")
            XCTAssertEqual(fx.upstream.requests.map(\.uri), ["/over-unix"])
            XCTAssertEqual(fx.upstream.requests.first?.values("X-Remote-User"), ["alice"])
        }
    }

    func testExpect100ContinueUploadArrivesComplete() async throws {
        try await ProxyFixture.with { fx in
            let body = StreamTest.payload(256 << 10, seed: 100)
            let c = try fx.client()
            try c.send(
                "POST /upload HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n"
                    + "Content-Length: \(body.count)\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
            try c.send(body)
            // readResponse skips any 100 Continue and returns the final answer.
            let response = try c.readResponse()
            XCTAssertEqual(response.status, 200)
            let recorded = fx.upstream.requests
            XCTAssertEqual(recorded.count, 1)
            XCTAssertEqual(recorded.first?.bodyBytes, body.count)
            XCTAssertEqual(recorded.first?.bodySHA, StreamTest.hex(SHA256.hash(data: body)))
        }
    }

    func testShutdownDrainsInFlightRequestAndRefusesNewConnections() async throws {
        try await ProxyFixture.with({ config in
            config.timeouts.upstreamResponse = .seconds(2)
        }) { fx in
            let c = try fx.client()
            let started = Date()
            try c.send(Self.get("/slow"))
            let forwarded = await StreamTest.eventually { fx.upstream.requests.count == 1 }
            XCTAssertTrue(forwarded)

            let server = fx.server
            let port = fx.port
            let shutdown = Task { await server.shutdown(drain: .seconds(5)) }
            let refusing = await StreamTest.eventually { !StreamTest.canConnect(port: port) }
            XCTAssertTrue(refusing, "new connections were still accepted after shutdown began")

            // The request in flight still gets its (timed-out) answer instead of a dropped connection.
            let outcome = StreamTest.readOutcome(c)
            XCTAssertEqual(outcome.response?.status, 504, "got \(outcome)")
            XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 1.9)
            XCTAssertTrue(c.isClosedByPeer(), "the drained connection stayed open")
            await shutdown.value
        }
    }
}
