import GatehouseCore
import XCTest

final class RequestHeadScannerTests: XCTestCase {
    private func scan(_ text: String, limits: RequestHeadScanner.Limits = .init()) -> RequestHeadScanner.Step {
        var scanner = RequestHeadScanner(limits: limits)
        return Array(text.utf8).withUnsafeBytes { scanner.scan($0) }
    }

    private func head(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> RequestHead? {
        guard case .head(let head, let consumed) = scan(text) else {
            XCTFail("no head in \(text.debugDescription): \(scan(text))", file: file, line: line)
            return nil
        }
        XCTAssertEqual(consumed, text.utf8.count, file: file, line: line)
        return head
    }

    private func refusal(_ text: String, limits: RequestHeadScanner.Limits = .init()) -> RequestHeadError? {
        if case .failure(let error) = scan(text, limits: limits) { return error }
        return nil
    }

    func testAHeadIsReadIntoAnIndex() throws {
        let text = "POST /api/files?x=1 HTTP/1.1\r\nHost: printer.local\r\nX-Api-Key:  k1 \r\nContent-Length: 5\r\nX_Remote_User: mallory\r\nAccept: */*\r\n\r\n"
        let head = try XCTUnwrap(head(text))
        XCTAssertEqual(head.method, "POST")
        XCTAssertEqual(head.uri, "/api/files?x=1")
        XCTAssertEqual(head.versionMinor, 1)
        XCTAssertEqual(head.framing, .contentLength(5))
        XCTAssertTrue(head.keepAlive)
        XCTAssertEqual(head.value(.host), "printer.local")
        XCTAssertEqual(head.value(.xAPIKey), "k1", "the value without surrounding spaces")
        XCTAssertEqual(head.count(.contentLength), 1)
        XCTAssertFalse(head.has(.cookie))
        XCTAssertTrue(head.hasUnderscoreName)
        XCTAssertEqual(head.fields.map(\.hasUnderscore), [false, false, false, true, false])
        XCTAssertEqual(head.headerStrings.map(\.name), ["Host", "X-Api-Key", "Content-Length", "X_Remote_User", "Accept"])
        XCTAssertEqual(head.bytes, Array(text.utf8))
    }

    func testOnlyTheExactSpellingOfANameIsRead() throws {
        let head = try XCTUnwrap(head("GET / HTTP/1.1\r\nHost: a\r\nX_Api_Key: k\r\nContent_Length: 9\r\n\r\n"))
        XCTAssertNil(head.value(.xAPIKey))
        XCTAssertEqual(head.framing, RequestBodyFraming.none, "Content_Length frames nothing")
        XCTAssertEqual(head.fields[1].kind, .xAPIKey, "but the policy sees what a WSGI device would read it as")
    }

    func testTheSameHeadHoweverItIsSplit() throws {
        let text = "\r\nGET /a/b HTTP/1.1\r\nHost: h\r\nCookie: a=1; b=2\r\nTransfer-Encoding: chunked\r\n\r\n"
        let bytes = Array(text.utf8)
        for cut in 1..<bytes.count {
            var scanner = RequestHeadScanner(limits: .init())
            let first = bytes[..<cut].withUnsafeBytes { scanner.scan($0) }
            guard case .needMore = first else { return XCTFail("cut at \(cut): \(first)") }
            let second = bytes.withUnsafeBytes { scanner.scan($0) }
            guard case .head(let head, let consumed) = second else { return XCTFail("cut at \(cut): \(second)") }
            XCTAssertEqual(consumed, bytes.count)
            XCTAssertEqual(head.uri, "/a/b")
            XCTAssertEqual(head.framing, .chunked)
            XCTAssertEqual(head.value(.cookie), "a=1; b=2")
        }
    }

    func testOneByteAtATimeIsLinear() {
        // A head offered again and again with one more byte is searched on, not from the start.
        let bytes = Array(("GET / HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X-Pad: \(String(repeating: "p", count: 90))\r\n", count: 300) + "\r\n").utf8)
        var scanner = RequestHeadScanner(limits: .init(maxHeadBytes: 64 * 1024, maxHeaders: 1000))
        var result: RequestHeadScanner.Step = .needMore
        for end in 1...bytes.count {
            result = bytes[..<end].withUnsafeBytes { scanner.scan($0) }
            if case .needMore = result { continue }
            break
        }
        guard case .head(let head, _) = result else { return XCTFail("\(result)") }
        XCTAssertEqual(head.fields.count, 301)
    }

    func testLineBreaksMustBeCRLF() {
        XCTAssertEqual(refusal("GET / HTTP/1.1\nHost: h\n\n"), .bareLineBreak)
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"), .bareLineBreak)
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"), .bareLineBreak)
        XCTAssertEqual(refusal("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), .bareLineBreak)
        // Refused as soon as the bare LF arrives, without waiting for a blank line.
        XCTAssertEqual(refusal("GET / HTTP/1.1\nHo"), .bareLineBreak)
    }

    func testTheRequestLine() {
        XCTAssertEqual(refusal("get / HTTP/1.1\r\nHost: h\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(refusal("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(refusal("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), .unsupportedVersion)
        XCTAssertEqual(refusal("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(refusal("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(refusal("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), .unsupportedVersion)
        XCTAssertEqual(refusal("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), .unsupportedVersion)
        XCTAssertEqual(refusal("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), .unsupportedVersion)
        XCTAssertEqual(refusal("GET http://evil/ HTTP/1.1\r\nHost: h\r\n\r\n"), .framing(.targetNotOriginForm))
        XCTAssertEqual(refusal("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), .framing(.targetNotOriginForm))
        XCTAssertEqual(refusal("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"), .framing(.fragmentInTarget))
        XCTAssertEqual(refusal("GET /\u{7F} HTTP/1.1\r\nHost: h\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(refusal("VERYLONGMETHODNAMEXYZW / HTTP/1.1\r\nHost: h\r\n\r\n"), .malformedRequestLine)
        XCTAssertEqual(head("M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n")?.method, "M-SEARCH")
        XCTAssertEqual(refusal("GET /caf\u{E9} HTTP/1.1\r\nHost: h\r\n\r\n"), .malformedRequestLine, "raw UTF-8 in the target (clients percent-encode)")
        XCTAssertEqual(refusal("GET /admin/\u{30C}users HTTP/1.1\r\nHost: h\r\n\r\n"), .malformedRequestLine)
    }

    func testFieldsAreStrict() {
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n X-Remote-User: m\r\n\r\n"), .foldedHeader)
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\r\nX A: b\r\n\r\n"), .invalidHeaderName)
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n"), .invalidHeaderName)
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n"), .invalidHeaderName)
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\r\nX-Remote-User mallory\r\n\r\n"), .invalidHeaderName)
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{0}b\r\n\r\n"), .invalidHeaderValue(name: "X-A"))
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{1B}b\r\n\r\n"), .invalidHeaderValue(name: "X-A"))
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\u{7F}\r\n\r\n"), .invalidHeaderValue(name: "X-A"))
        XCTAssertEqual(head("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\n\r\n")?.fields.last.map { _ in "ok" }, "ok")
    }

    func testFraming() {
        func framing(_ headers: String, version: Int = 1) -> RequestHeadError? {
            refusal("POST / HTTP/1.\(version)\r\nHost: h\r\n\(headers)\r\n")
        }
        XCTAssertEqual(framing("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), .framing(.contentLengthWithTransferEncoding))
        XCTAssertEqual(framing("Content-Length: 5\r\nContent-Length: 5\r\n"), .framing(.multipleContentLength))
        XCTAssertEqual(framing("Content-Length: 5, 5\r\n"), .framing(.invalidContentLength))
        XCTAssertEqual(framing("Content-Length: +5\r\n"), .framing(.invalidContentLength))
        XCTAssertEqual(framing("Content-Length: 9999999999999999999\r\n"), .framing(.invalidContentLength))
        XCTAssertEqual(framing("Content-Length:\r\n"), .framing(.invalidContentLength))
        XCTAssertEqual(framing("Transfer-Encoding: gzip\r\n"), .framing(.unsupportedTransferEncoding))
        XCTAssertEqual(framing("Transfer-Encoding: chunked, identity\r\n"), .framing(.unsupportedTransferEncoding))
        XCTAssertEqual(framing("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), .framing(.unsupportedTransferEncoding))
        XCTAssertEqual(framing("Transfer-Encoding: chunked\r\n", version: 0), .framing(.transferEncodingInHTTP10))
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\n\r\n"), .framing(.missingHost))
        XCTAssertEqual(refusal("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), .framing(.multipleHost))
        XCTAssertEqual(head("GET / HTTP/1.0\r\n\r\n")?.versionMinor, 0, "HTTP/1.0 needs no Host")
        XCTAssertEqual(head("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n")?.framing, .chunked)
        XCTAssertEqual(head("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n")?.framing, .contentLength(7))
    }

    func testKeepAlive() {
        XCTAssertEqual(head("GET / HTTP/1.1\r\nHost: h\r\n\r\n")?.keepAlive, true)
        XCTAssertEqual(head("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n")?.keepAlive, false)
        XCTAssertEqual(head("GET / HTTP/1.0\r\n\r\n")?.keepAlive, false)
        XCTAssertEqual(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")?.keepAlive, true)
    }

    func testLimits() {
        let limits = RequestHeadScanner.Limits(maxHeadBytes: 1024, maxHeaders: 8, maxRequestLineBytes: 2048)
        let big = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: \(String(repeating: "b", count: 2000))\r\n\r\n"
        XCTAssertEqual(refusal(big, limits: limits), .headTooLarge)
        XCTAssertEqual(refusal(String(big.prefix(1100)), limits: limits), .headTooLarge, "known before the head is complete")
        let many = "GET / HTTP/1.1\r\nHost: h\r\n" + (0..<9).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        XCTAssertEqual(refusal(many, limits: limits), .tooManyHeaders)
        XCTAssertEqual(refusal("GET /\(String(repeating: "a", count: 3000))", limits: limits), .requestLineTooLong)
        XCTAssertEqual(RequestHeadError.headTooLarge.status, 431)
        XCTAssertEqual(RequestHeadError.requestLineTooLong.status, 414)
        XCTAssertEqual(RequestHeadError.foldedHeader.status, 400)
    }

    func testAHeadBuiltFromPartsIsScannedLikeAReceivedOne() throws {
        let head = try RequestHead(method: "GET", uri: "/x", headers: [("Host", "h"), ("X-Api-Key", "k")])
        XCTAssertEqual(head.value(.xAPIKey), "k")
        XCTAssertThrowsError(try RequestHead(method: "GET", uri: "/x", headers: [("Host", "h"), ("X-A", "a\r\nX-Remote-User: m")])) { error in
            XCTAssertEqual(error as? RequestHeadError, .invalidHeaderValue(name: "X-A"))
        }
        XCTAssertThrowsError(try RequestHead(method: "GET", uri: "/x HTTP/1.1\r\nHost: evil", headers: [("Host", "h")]))
        XCTAssertThrowsError(try RequestHead(method: "GET", uri: "/x", headers: [("X-A", "1")])) { error in
            XCTAssertEqual(error as? RequestHeadError, .framing(.missingHost))
        }
    }
}

final class RequestBodyScannerTests: XCTestCase {
    /// What goes to the device and the payload count, for `wire` offered in pieces of `piece` bytes.
    private func run(_ framing: RequestBodyFraming, _ wire: String, piece: Int = .max) -> (forwarded: String, payload: Int, consumed: Int, failed: Bool) {
        let bytes = Array(wire.utf8)
        var scanner = RequestBodyScanner(framing)
        var forwarded: [UInt8] = []
        var payload = 0
        var offset = 0
        var available = min(bytes.count, piece)
        while true {
            let step = bytes[offset..<available].withUnsafeBytes { scanner.step($0) }
            switch step {
            case .needMore:
                guard available < bytes.count else { return (String(decoding: forwarded, as: UTF8.self), payload, offset, false) }
                available = min(bytes.count, available + piece)
            case .body(let consumed, let forward, let thenCRLF, let data):
                forwarded += bytes[offset..<(offset + forward)]
                if thenCRLF { forwarded += Array("\r\n".utf8) }
                payload += data
                offset += consumed
            case .end(let consumed, let forward):
                forwarded += bytes[offset..<(offset + forward)]
                offset += consumed
                return (String(decoding: forwarded, as: UTF8.self), payload, offset, false)
            case .failure:
                return (String(decoding: forwarded, as: UTF8.self), payload, offset, true)
            }
        }
    }

    func testAContentLengthBodyPassesAsItCame() {
        let result = run(.contentLength(5), "helloGET /next")
        XCTAssertEqual(result.forwarded, "hello")
        XCTAssertEqual(result.consumed, 5)
        XCTAssertEqual(result.payload, 5)
        XCTAssertEqual(run(.none, "GET /next").consumed, 0)
    }

    func testAChunkedBodyPassesWithoutExtensionsOrTrailers() {
        let wire = "5;name=value\r\nhello\r\n3\r\nabc\r\n0;last\r\nX-Remote-User: mallory\r\nX-B: 2\r\n\r\nGET /next"
        for piece in [1, 2, 3, 7, Int.max] {
            let result = run(.chunked, wire, piece: piece)
            XCTAssertFalse(result.failed, "piece \(piece)")
            XCTAssertEqual(result.forwarded, "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n", "piece \(piece)")
            XCTAssertEqual(result.payload, 8)
            XCTAssertEqual(result.consumed, wire.utf8.count - "GET /next".utf8.count)
        }
    }

    func testMalformedChunksFail() {
        for wire in ["5x\r\nhello\r\n0\r\n\r\n", "-5\r\nhello\r\n0\r\n\r\n", "3\r\nhello\r\n0\r\n\r\n", "ffffffffffffffffff1\r\nx\r\n",
                     "5\nhello\r\n0\r\n\r\n", "\r\n", "5;a\u{1}b\r\nhello\r\n0\r\n\r\n", "5;a b\r\nhello\r\n0\r\n\r\n", "5; a\r\nhello\r\n0\r\n\r\n",
                     "5;a=\"b\"\r\nhello\r\n0\r\n\r\n", "5;=b\r\nhello\r\n0\r\n\r\n", "5;a=\r\nhello\r\n0\r\n\r\n", "0\r\nX A: b\r\n\r\n", "0\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\ncontent-length: 5\r\n\r\n", "0\r\n folded: x\r\n\r\n"] {
            XCTAssertTrue(run(.chunked, wire).failed, wire.debugDescription)
        }
        XCTAssertTrue(run(.chunked, "0\r\n" + String(repeating: "X-T: 1\r\n", count: 2000) + "\r\n").failed, "trailers over their limit")
    }
}
