import Foundation
import GatehouseTestSupport
import XCTest

/// What the client sees when the device is down, slow or breaks off, and what the device sees
/// when the client breaks off.
final class UpstreamFailureTests: XCTestCase {
    func testUnreachableUpstreamGets502JSON() async throws {
        let deadPort = try StreamTest.unusedPort()
        try await ProxyFixture.with({ config in
            config.upstream = .tcp(host: "127.0.0.1", port: deadPort)
        }) { fx in
            let response = try fx.get("/api/printer", [StreamTest.keyHeader])
            XCTAssertEqual(response.status, 502)
            XCTAssertEqual(response.header("Content-Type"), "application/json")
            XCTAssertNotNil(StreamTest.errorDetail(response), response.bodyText)
        }
    }

    func testUpstreamThatNeverAnswersGets504AfterResponseTimeout() async throws {
        try await ProxyFixture.with({ config in
            config.timeouts.upstreamResponse = .seconds(1)
        }) { fx in
            let started = Date()
            let response = try fx.get("/slow", [StreamTest.keyHeader])
            let elapsed = Date().timeIntervalSince(started)
            XCTAssertEqual(response.status, 504)
            XCTAssertEqual(response.header("Content-Type"), "application/json")
            XCTAssertNotNil(StreamTest.errorDetail(response), response.bodyText)
            XCTAssertGreaterThanOrEqual(elapsed, 0.9)
            XCTAssertEqual(fx.upstream.requests.count, 1)
        }
    }

    func testTruncatedUpstreamBodyClosesClientWithoutCompletingResponse() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client(timeout: 5)
            // Keep-alive on purpose: only closing the connection can tell the client the body
            // is incomplete.
            try c.send("GET /reset HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n\r\n")
            let (bytes, closed) = StreamTest.readUntilEnd(c)
            XCTAssertTrue(closed, "the client connection was left open after the upstream broke off")
            guard let split = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else {
                return XCTFail("no response head: \(String(decoding: bytes, as: UTF8.self))")
            }
            let head = String(decoding: bytes[..<split.lowerBound], as: UTF8.self)
            XCTAssertTrue(head.hasPrefix("HTTP/1.1 200"), head)
            XCTAssertTrue(head.lowercased().contains("content-length: 1000"), head)
            let body = bytes[split.upperBound...]
            XCTAssertLessThan(body.count, 1000, "the truncated body was padded to look complete")
            XCTAssertEqual(Array(body), Array("0123456789".utf8))
        }
    }

    func testTruncatedUpstreamBodyFailsAFullResponseRead() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client(timeout: 5)
            try c.send("GET /reset HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n\r\n")
            let outcome = StreamTest.readOutcome(c)
            guard case .closedEarly = outcome else {
                return XCTFail("expected the connection to end before the body was complete, got \(outcome)")
            }
        }
    }

    func testClientLeavingMidUploadClosesUpstreamConnection() async throws {
        try await ProxyFixture.with { fx in
            let declared = 10 << 20
            let c = try fx.client()
            try c.send(
                "POST /upload HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n"
                    + "Content-Length: \(declared)\r\n\r\n")
            try c.send(StreamTest.payload(1 << 20, seed: 7))
            let upstreamPort = fx.upstream.port
            XCTAssertTrue(ProxyFixture.eventually { fx.upstream.requests.count == 1 })
            XCTAssertTrue(
                ProxyFixture.eventually { StreamTest.establishedConnections(localPort: upstreamPort) == 1 },
                "the upload never opened an upstream connection")

            StreamTest.hangUp(c)
            XCTAssertTrue(
                ProxyFixture.eventually { StreamTest.establishedConnections(localPort: upstreamPort) == 0 },
                "the upstream connection stayed open after the client left mid-upload")
            let first = fx.upstream.requests[0]
            XCTAssertLessThan(first.bodyBytes, declared)
            XCTAssertNil(first.bodySHA, "the upstream saw the body end although the client never finished it")

            // The server is still up and does not reuse the broken upstream connection.
            let next = try fx.get("/after", [StreamTest.keyHeader])
            XCTAssertEqual(next.status, 200)
            XCTAssertEqual(StreamTest.echoedPath(next), "/after")
            XCTAssertEqual(fx.upstream.requests.count, 2)
            XCTAssertNotEqual(fx.upstream.requests.last?.connectionID, first.connectionID)
        }
    }

    // MARK: A kept-alive connection the device dropped

    func testAKeptAliveConnectionTheDeviceDroppedCostsAGETNothing() async throws {
        try await ProxyFixture.with { fx in
            XCTAssertEqual(try fx.get("/drop-on-reuse", [StreamTest.keyHeader]).status, 200, "the first request on a fresh connection")
            // The device reads this one on the kept-alive connection and closes without answering.
            let response = try fx.get("/drop-on-reuse", [StreamTest.keyHeader])
            XCTAssertEqual(response.status, 200, response.bodyText)
            let seen = fx.upstream.requests
            XCTAssertEqual(seen.map(\.uri), ["/drop-on-reuse", "/drop-on-reuse", "/drop-on-reuse"])
            XCTAssertEqual(seen.map(\.connectionID), [1, 1, 2], "sent again once, on a fresh connection")
        }
    }

    func testARequestWhoseBodyWentOutIsNotSentTwice() async throws {
        try await ProxyFixture.with { fx in
            XCTAssertEqual(try fx.get("/drop-on-reuse", [StreamTest.keyHeader]).status, 200)
            let response = try fx.client().request(
                "POST /drop-on-reuse HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            XCTAssertEqual(response.status, 502)
            XCTAssertEqual(fx.upstream.requests.filter { $0.method == "POST" }.count, 1, "a request whose body was sent is never repeated")
        }
    }

    func testAPOSTIsNeverSentTwiceEvenWithoutABody() async throws {
        // Moonraker takes commands as bodyless POSTs (`/printer/gcode/script?script=G28`): the
        // device may have acted on one before it closed.
        try await ProxyFixture.with { fx in
            XCTAssertEqual(try fx.get("/drop-on-reuse", [StreamTest.keyHeader]).status, 200)
            let response = try fx.client().request(
                "POST /drop-on-reuse?script=G28 HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(response.status, 502, response.bodyText)
            XCTAssertEqual(fx.upstream.requests.map(\.connectionID), [1, 1])
        }
    }

    func testTheOtherRepeatableMethodsAreSentAgain() async throws {
        try await ProxyFixture.with { fx in
            for method in ["HEAD", "OPTIONS", "PUT", "DELETE"] {
                fx.upstream.reset()
                XCTAssertEqual(try fx.get("/drop-on-reuse", [StreamTest.keyHeader]).status, 200, "warm-up for \(method)")
                let c = try fx.client()
                try c.send("\(method) /drop-on-reuse HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nConnection: close\r\n\r\n")
                XCTAssertEqual(try c.readResponse(headRequest: method == "HEAD").status, 200, method)
                XCTAssertEqual(fx.upstream.requests.filter { $0.method == method }.count, 2, "\(method) sent again on a fresh connection")
            }
        }
    }

    func testAFreshConnectionTheDeviceDropsIsNotRetried() async throws {
        try await ProxyFixture.with { fx in
            // The first request takes a fresh connection: when the device drops it, that is its answer.
            XCTAssertEqual(try fx.get("/drop", [StreamTest.keyHeader]).status, 502)
            XCTAssertEqual(fx.upstream.requests.count, 1)
            // After a clean exchange the kept-alive connection is retried once, then the fresh one's failure stands.
            XCTAssertEqual(try fx.get("/warm", [StreamTest.keyHeader]).status, 200)
            XCTAssertEqual(try fx.get("/drop", [StreamTest.keyHeader]).status, 502)
            XCTAssertEqual(fx.upstream.requests.map(\.uri), ["/drop", "/warm", "/drop", "/drop"])
        }
    }

    // MARK: The device's time to answer

    func testASlowUploadIsNotCutOffByTheDevicesResponseTimeout() async throws {
        try await ProxyFixture.with({ config in
            config.timeouts.upstreamResponse = .seconds(1)
            config.timeouts.clientBody = .seconds(5)
        }) { fx in
            let c = try fx.client()
            try c.send("POST /upload HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nContent-Length: 30\r\nConnection: close\r\n\r\n")
            // Three seconds of body, three times the device's own timeout.
            for _ in 0..<6 {
                try c.send("hello")
                usleep(500_000)
            }
            let response = try c.readResponse()
            XCTAssertEqual(response.status, 200, response.bodyText)
            XCTAssertEqual(fx.upstream.requests.first?.bodyBytes, 30)
        }
    }

    func testTheDevicesTimeStartsWhenTheBodyHasArrived() async throws {
        try await ProxyFixture.with({ config in
            config.timeouts.upstreamResponse = .seconds(1)
        }) { fx in
            let c = try fx.client()
            try c.send("POST /slow HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
            try c.send("hello")
            usleep(1_500_000)
            try c.send("world")
            let response = try c.readResponse()
            XCTAssertEqual(response.status, 504, "the device that never answers still gets its timeout, counted from the body's end")
            XCTAssertEqual(fx.upstream.requests.first?.bodyBytes, 10)
        }
    }
}
