import Crypto
import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Bodies stream through Gatehouse in both directions, complete and with the framing each side
/// expects.
final class StreamingTests: XCTestCase {
    func testChunkedUploadArrivesAtUpstreamWithSameByteCountAndHash() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client()
            try c.send(
                "POST /upload HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n"
                    + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            // Chunks of uneven sizes, about 4 MiB in all, one of them with a chunk extension.
            let sizes = [1 << 20, 333_333, 7, 2 << 20, 65_536, 1, 500_001]
            var hasher = SHA256()
            var total = 0
            for (i, size) in sizes.enumerated() {
                let chunk = StreamTest.payload(size, seed: i)
                hasher.update(data: chunk)
                total += size
                try c.send(String(size, radix: 16) + (i == 2 ? ";note=small" : "") + "\r\n")
                try c.send(chunk)
                try c.send("\r\n")
            }
            try c.send("0\r\n\r\n")
            let expected = StreamTest.hex(hasher.finalize())

            let response = try c.readResponse()
            XCTAssertEqual(response.status, 200)
            let recorded = fx.upstream.requests
            XCTAssertEqual(recorded.count, 1)
            XCTAssertEqual(recorded.first?.bodyBytes, total)
            XCTAssertEqual(recorded.first?.bodySHA, expected)
            XCTAssertEqual(recorded.first?.values("Transfer-Encoding"), ["chunked"])
            XCTAssertEqual(recorded.first?.values("Content-Length"), [])
        }
    }

    func testContentLengthUploadOf64MiBArrivesCompleteWithContentLengthFraming() async throws {
        try await ProxyFixture.with { fx in
            let pieces = 64
            let total = pieces << 20
            let c = try fx.client()
            try c.send(
                "PUT /firmware HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n"
                    + "Content-Length: \(total)\r\nConnection: close\r\n\r\n")
            var hasher = SHA256()
            for i in 0..<pieces {
                let piece = StreamTest.payload(1 << 20, seed: i)
                hasher.update(data: piece)
                try c.send(piece)
            }
            let expected = StreamTest.hex(hasher.finalize())

            let response = try c.readResponse()
            XCTAssertEqual(response.status, 200)
            let recorded = fx.upstream.requests
            XCTAssertEqual(recorded.count, 1)
            XCTAssertEqual(recorded.first?.bodyBytes, total)
            XCTAssertEqual(recorded.first?.bodySHA, expected)
            XCTAssertEqual(recorded.first?.values("Content-Length"), [String(total)])
            XCTAssertEqual(recorded.first?.values("Transfer-Encoding"), [])
        }
    }

    func testContentLengthDownloadOf64MiBArrivesCompleteWithContentLength() async throws {
        try await ProxyFixture.with { fx in
            let total = 64 << 20
            let c = try fx.client()
            try c.send("GET /download?bytes=\(total) HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nConnection: close\r\n\r\n")
            var received = 0
            let response = try c.readResponse(discardBody: true, bodyCount: &received)
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.header("Content-Length"), String(total))
            XCTAssertNil(response.header("Transfer-Encoding"))
            XCTAssertEqual(received, total)
        }
    }

    func testChunkedDownloadOf16MiBArrivesCompleteAndChunked() async throws {
        try await ProxyFixture.with { fx in
            let total = 16 << 20
            let c = try fx.client()
            try c.send("GET /download?bytes=\(total)&chunked=1 HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\nConnection: close\r\n\r\n")
            var received = 0
            let response = try c.readResponse(discardBody: true, bodyCount: &received)
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.header("Transfer-Encoding")?.lowercased(), "chunked")
            XCTAssertNil(response.header("Content-Length"))
            XCTAssertEqual(received, total)
        }
    }

    /// `preset: mjpg-streamer`: a stream URL carrying its key in `?apikey=` (what apps that take
    /// only a URL can send) plays, the key never reaches the camera, and without it nothing does.
    func testMJPEGStreamerPresetTakesTheKeyFromTheStreamURL() async throws {
        try await ProxyFixture.with({ DevicePreset.mjpgStreamer.apply(to: &$0) }) { fx in
            let c = try fx.client()
            try c.send("GET /mjpeg?action=stream&apikey=\(ProxyFixture.aliceKey) HTTP/1.1\r\nHost: gatehouse.test\r\n\r\n")
            let seen = try StreamTest.read(c) { StreamTest.occurrences(of: "--frame", in: $0) >= 2 }
            XCTAssertTrue(String(decoding: seen, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            XCTAssertEqual(fx.upstream.requests.first?.uri, "/mjpeg?action=stream", "the key is taken out of the URL the camera sees")
            StreamTest.hangUp(c)
            fx.upstream.reset()
            XCTAssertEqual(try fx.get("/mjpeg?action=stream").status, 401)
            XCTAssertEqual(try fx.get("/mjpeg?action=stream&apikey=wrong-key-0123456789abcdef").status, 401)
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }

    func testEndlessMJPEGStreamUpstreamIsClosedWhenClientLeaves() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client()
            try c.send("GET /mjpeg HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n\r\n")
            let seen = try StreamTest.read(c) { StreamTest.occurrences(of: "--frame", in: $0) >= 3 }
            let text = String(decoding: seen, as: UTF8.self)
            XCTAssertTrue(text.hasPrefix("HTTP/1.1 200"), text)
            XCTAssertTrue(text.lowercased().contains("transfer-encoding: chunked"), text)
            XCTAssertEqual(fx.upstream.mjpegStreamsClosed, 0)

            StreamTest.hangUp(c)
            XCTAssertTrue(
                ProxyFixture.eventually { fx.upstream.mjpegStreamsClosed == 1 },
                "the upstream stream stayed open after the client left")
        }
    }

    func testHTTP10ClientGetsChunkedUpstreamBodyCloseDelimitedAndComplete() async throws {
        try await ProxyFixture.with { fx in
            let total = 300_000
            let c = try fx.client()
            try c.send("GET /download?bytes=\(total)&chunked=1 HTTP/1.0\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n\r\n")
            let (bytes, closed) = StreamTest.readUntilEnd(c)
            XCTAssertTrue(closed, "the body of an HTTP/1.0 response without length must end with the connection")
            guard let split = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else {
                return XCTFail("no response head in \(bytes.count) bytes")
            }
            let head = String(decoding: bytes[..<split.lowerBound], as: UTF8.self)
            let body = bytes[split.upperBound...]
            XCTAssertTrue(head.hasPrefix("HTTP/1.0 200"), head)
            XCTAssertFalse(head.lowercased().contains("transfer-encoding"), head)
            XCTAssertFalse(head.lowercased().contains("content-length"), head)
            XCTAssertEqual(body.count, total)
            XCTAssertTrue(body.allSatisfy { $0 == UInt8(ascii: "x") }, "chunk framing leaked into the body")
        }
    }
}
