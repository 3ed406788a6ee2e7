import Foundation
import GatehouseTestSupport
import XCTest

/// Requests whose framing or fields a proxy and its device could read differently are refused
/// with 400 before anything reaches the device, and their connection is closed. Every request
/// carries a valid API key, so only the framing checks can stop it.
final class SmugglingTests: XCTestCase {
    private static let host = "Host: gatehouse.test\r\n"
    private static let key = "\(StreamTest.keyHeader)\r\n"

    /// Sends `raw` on a fresh connection and checks: 400, connection closed, upstream untouched.
    private func assertRefused(_ raw: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client(timeout: 3)
            try c.send(raw)
            let outcome = StreamTest.readOutcome(c)
            guard let response = outcome.response else {
                return XCTFail("expected a 400 response, got \(outcome)", file: file, line: line)
            }
            XCTAssertEqual(response.status, 400, response.bodyText, file: file, line: line)
            XCTAssertTrue(c.isClosedByPeer(), "the connection stayed open after a framing error", file: file, line: line)
            XCTAssertTrue(fx.upstream.requests.isEmpty, "the upstream saw \(fx.upstream.requests.map(\.uri))", file: file, line: line)
            XCTAssertEqual(fx.upstream.connectionsAccepted, 0, file: file, line: line)
        }
    }

    // MARK: Content-Length and Transfer-Encoding together

    func testContentLengthThenTransferEncodingIsRefused() async throws {
        try await assertRefused(
            "POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    }

    func testTransferEncodingThenContentLengthIsRefused() async throws {
        try await assertRefused(
            "POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")
    }

    func testSmuggledSecondRequestInsideCLTEBodyIsRefused() async throws {
        let smuggled = "GET /smuggled HTTP/1.1\r\n\(Self.host)\(Self.key)\r\n"
        let body = "0\r\n\r\n" + smuggled
        try await assertRefused(
            "POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Content-Length: \(body.utf8.count)\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n" + body)
    }

    // MARK: Content-Length

    func testTwoDifferingContentLengthsAreRefused() async throws {
        try await assertRefused("POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
    }

    func testContentLengthWithPlusSignIsRefused() async throws {
        try await assertRefused("POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Content-Length: +5\r\n\r\nhello")
    }

    func testHexadecimalContentLengthIsRefused() async throws {
        try await assertRefused("POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Content-Length: 0x10\r\n\r\n0123456789abcdef")
    }

    // MARK: Transfer-Encoding

    func testTransferEncodingXchunkedIsRefused() async throws {
        try await assertRefused("POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n")
    }

    func testTransferEncodingChunkedThenIdentityIsRefused() async throws {
        try await assertRefused("POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n")
    }

    func testTransferEncodingGzipIsRefused() async throws {
        try await assertRefused("POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n")
    }

    func testTwoTransferEncodingHeadersAreRefused() async throws {
        try await assertRefused(
            "POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    }

    func testIdentityAndChunkedTransferEncodingHeadersAreRefused() async throws {
        try await assertRefused(
            "POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    }

    func testSpaceBetweenTransferEncodingNameAndColonIsRefused() async throws {
        try await assertRefused("POST /upload HTTP/1.1\r\n\(Self.host)\(Self.key)Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n")
    }

    func testTransferEncodingInHTTP10RequestIsRefused() async throws {
        try await assertRefused("POST /upload HTTP/1.0\r\n\(Self.host)\(Self.key)Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    }

    // MARK: Header syntax

    func testObsoleteLineFoldingIsRefused() async throws {
        try await assertRefused("GET /folded HTTP/1.1\r\n\(Self.host)\(Self.key)X-Foo: a\r\n  b\r\n\r\n")
    }

    func testNULInHeaderValueIsRefused() async throws {
        try await assertRefused("GET /nul HTTP/1.1\r\n\(Self.host)\(Self.key)X-Foo: a\u{0}b\r\n\r\n")
    }

    func testBareLFLineEndingsAreRefused() async throws {
        try await assertRefused("GET /bare-lf HTTP/1.1\nHost: gatehouse.test\n\(StreamTest.keyHeader)\n\n")
    }

    func testHeaderNameWithSpaceIsRefused() async throws {
        try await assertRefused("GET /space HTTP/1.1\r\n\(Self.host)\(Self.key)X Foo: bar\r\n\r\n")
    }

    // MARK: Target and Host

    func testAbsoluteFormTargetIsRefused() async throws {
        try await assertRefused("GET http://evil/ HTTP/1.1\r\n\(Self.host)\(Self.key)\r\n")
    }

    func testMissingHostOnHTTP11IsRefused() async throws {
        try await assertRefused("GET /no-host HTTP/1.1\r\n\(Self.key)\r\n")
    }

    func testTwoHostHeadersAreRefused() async throws {
        try await assertRefused("GET /two-hosts HTTP/1.1\r\n\(Self.host)Host: evil.test\r\n\(Self.key)\r\n")
    }
}
