import GatehouseCore
import XCTest

/// The strict scanner that finds where each device response ends, fed whole and byte by byte.
final class ResponseFramingScannerTests: XCTestCase {
    /// What one scan of `text` gives: statuses, bodies (payload), passed-through bytes, and a refusal.
    struct Outcome: Equatable {
        var statuses: [Int] = []
        var bodies: [String] = []
        var wire: [String] = []
        var error: ResponseScanError?
    }

    /// Scans `text` fed in pieces of `piece` bytes (0: all at once), as the answer to `requests`
    /// requests, then the device closes.
    func scan(_ text: String, head: Bool = false, piece: Int = 0, requests: Int = 1) -> Outcome {
        let bytes = Array(text.utf8)
        var scanner = ResponseFramingScanner()
        scanner.expectResponse(requestWasHEAD: head)
        var outcome = Outcome()
        var available = piece == 0 ? bytes.count : min(piece, bytes.count)
        var offset = 0
        var body = ""
        var wire = ""
        while true {
            let step = bytes.withUnsafeBytes { raw in scanner.step(UnsafeRawBufferPointer(rebasing: raw[offset..<available])) }
            switch step {
            case .needMore:
                if available < bytes.count {
                    available = piece == 0 ? bytes.count : min(available + piece, bytes.count)
                    continue
                }
                switch scanner.connectionClosed() {
                case .end:
                    outcome.bodies.append(body)
                    outcome.wire.append(wire)
                case .failure(let error): outcome.error = error
                default: break
                }
                return outcome
            case .head(let parsed, let consumed):
                outcome.statuses.append(parsed.status)
                offset += consumed
                if parsed.status == 101 { return outcome }
            case .body(let consumed, let payloadOffset, let payloadCount):
                body += String(decoding: bytes[(offset + payloadOffset)..<(offset + payloadOffset + payloadCount)], as: UTF8.self)
                wire += String(decoding: bytes[offset..<(offset + consumed)], as: UTF8.self)
                offset += consumed
            case .end(let consumed):
                wire += String(decoding: bytes[offset..<(offset + consumed)], as: UTF8.self)
                offset += consumed
                outcome.bodies.append(body)
                outcome.wire.append(wire)
                body = ""
                wire = ""
                guard outcome.bodies.count < requests else { continue }
                scanner.expectResponse(requestWasHEAD: head)
            case .failure(let error):
                outcome.error = error
                return outcome
            }
        }
    }

    /// The same outcome fed whole and one byte at a time.
    func assertScans(_ text: String, head: Bool = false, requests: Int = 1, _ expected: Outcome, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(scan(text, head: head, requests: requests), expected, "whole", file: file, line: line)
        XCTAssertEqual(scan(text, head: head, piece: 1, requests: requests), expected, "byte by byte", file: file, line: line)
        XCTAssertEqual(scan(text, head: head, piece: 7, requests: requests), expected, "seven at a time", file: file, line: line)
    }

    func testContentLengthResponsesEndAtTheirLength() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        assertScans(text, requests: 2, Outcome(statuses: [200, 201], bodies: ["hello", ""], wire: ["hello", ""]))
    }

    func testChunkedBodiesPassThroughWithTheirFraming() {
        let body = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
        assertScans("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body, Outcome(statuses: [200], bodies: ["hello world"], wire: [body]))
        assertScans("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
            Outcome(statuses: [200], bodies: ["0123456789"], wire: ["A\r\n0123456789\r\n0\r\n\r\n"]))
    }

    func testResponsesWithoutABody() {
        assertScans("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", head: true, Outcome(statuses: [200], bodies: [""], wire: [""]))
        assertScans("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", Outcome(statuses: [204], bodies: [""], wire: [""]))
        assertScans("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", Outcome(statuses: [304], bodies: [""], wire: [""]))
        assertScans("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            Outcome(statuses: [100, 200], bodies: ["ok"], wire: ["ok"]))
        assertScans("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframes", Outcome(statuses: [101]))
    }

    /// HTTP/1.0 has no 1xx: a device that sends one is refused (a fuzz find: NIO's decoder closed
    /// the stream after it where a 1.1 reader would have waited for the final answer).
    func testAnInterimAnswerFromHTTP10IsRefused() {
        assertScans("HTTP/1.0 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Outcome(error: .unsupportedVersion))
        assertScans("HTTP/1.0 103 Early Hints\r\n\r\n", Outcome(error: .unsupportedVersion))
        assertScans("HTTP/1.0 101 Switching Protocols\r\n\r\n", Outcome(error: .unsupportedVersion))
    }

    func testABodyWithoutLengthEndsAtTheClose() {
        assertScans("HTTP/1.0 200 OK\r\n\r\nall of it", Outcome(statuses: [200], bodies: ["all of it"], wire: ["all of it"]))
        var scanner = ResponseFramingScanner()
        scanner.expectResponse(requestWasHEAD: false)
        let head = Array("HTTP/1.1 200 OK\r\n\r\n".utf8)
        guard case .head(let parsed, _) = head.withUnsafeBytes({ scanner.step($0) }) else { return XCTFail("no head") }
        XCTAssertEqual(parsed.framing, .untilClose)
        XCTAssertFalse(parsed.keepAlive, "a body ended by the close never leaves the connection reusable")
    }

    func testKeepAliveFollowsVersionAndConnection() {
        func keepAlive(_ head: String) -> Bool? {
            var scanner = ResponseFramingScanner()
            scanner.expectResponse(requestWasHEAD: false)
            guard case .head(let parsed, _) = Array(head.utf8).withUnsafeBytes({ scanner.step($0) }) else { return nil }
            return parsed.keepAlive
        }
        XCTAssertEqual(keepAlive("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), true)
        XCTAssertEqual(keepAlive("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), false)
        XCTAssertEqual(keepAlive("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), false)
        XCTAssertEqual(keepAlive("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"), true)
    }

    func testAmbiguousFramingIsRefused() {
        let cases: [(String, ResponseScanError)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", .contentLengthWithTransferEncoding),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .multipleContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", .multipleContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", .invalidContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", .invalidContentLength),
            ("HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n", .invalidContentLength),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferEncoding),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .unsupportedTransferEncoding),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", .unsupportedTransferEncoding),
            ("HTTP/1.1 200 OK\r\nX-A: 1\r\n continued\r\n\r\n", .foldedHeader),
            ("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nX-A: a\u{1}b\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", .malformedHeader),
            ("HTTP/1.1 200 OK\r\n: 1\r\n\r\n", .malformedHeader),
            ("HTTP/2 200 OK\r\n\r\n", .unsupportedVersion),
            ("HTTP/1.1 20 OK\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 200OK\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 700 Odd\r\n\r\n", .malformedStatusLine),
            ("garbage\r\n\r\n", .malformedStatusLine),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", .malformedChunk),
            ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA", .unexpectedBytes),
            ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", .truncated),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe", .truncated),
        ]
        for (text, error) in cases {
            var bytes = scan(text)
            XCTAssertEqual(bytes.error, error, text.debugDescription)
            bytes = scan(text, piece: 1)
            XCTAssertEqual(bytes.error, error, "byte by byte: " + text.debugDescription)
        }
    }

    func testBytesBeforeAnyRequestAreRefused() {
        var scanner = ResponseFramingScanner()
        guard case .failure(.unexpectedBytes) = Array("HTTP/1.1 200 OK\r\n\r\n".utf8).withUnsafeBytes({ scanner.step($0) }) else {
            return XCTFail("an unsolicited response was accepted")
        }
    }

    func testAHeadOverTheLimitIsRefused() {
        var limits = ResponseFramingScanner.Limits()
        limits.maxHeadBytes = 64
        var scanner = ResponseFramingScanner(limits: limits)
        scanner.expectResponse(requestWasHEAD: false)
        let head = Array(("HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: 100) + "\r\n\r\n").utf8)
        guard case .failure(.headTooLarge) = head.withUnsafeBytes({ scanner.step($0) }) else { return XCTFail("accepted") }
    }
}
