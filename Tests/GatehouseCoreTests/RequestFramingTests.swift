import XCTest

@testable import GatehouseCore

/// The framing rules of ``RequestHeadScanner``, put to heads built from parts (as `gatehouse
/// explain` builds them): each refusal is the ``FramingViolation`` a received head would get.
final class RequestFramingTests: XCTestCase {
    func validate(
        _ headers: [(name: String, value: String)], uri: String = "/api", version: (Int, Int) = (1, 1), host: Bool = true
    ) -> FramingViolation? {
        do {
            _ = try RequestHead(method: "GET", uri: uri, versionMinor: version.1, headers: (host ? [("Host", "device")] : []) + headers)
            return nil
        } catch {
            switch error {
            case .framing(let violation): return violation
            case .invalidHeaderName: return .invalidHeaderName
            case .invalidHeaderValue(let name): return .invalidHeaderValue(name: name)
            // An empty target leaves no request line at all.
            case .malformedRequestLine where uri.isEmpty: return .targetNotOriginForm
            default: return nil
            }
        }
    }

    func testCleanRequestPasses() {
        XCTAssertNil(validate([("Accept", "*/*"), ("User-Agent", "curl/8.0 (x86_64)"), ("X-Tab", "a\tb")]))
    }

    func testCleanRequestWithContentLengthPasses() {
        XCTAssertNil(validate([("Content-Length", "5")], uri: "/api?x=1"))
        XCTAssertNil(validate([("content-length", "0")]))
    }

    func testCleanChunkedRequestPasses() {
        XCTAssertNil(validate([("Transfer-Encoding", "chunked")]))
        XCTAssertNil(validate([("transfer-encoding", "Chunked")]))
    }

    func testObsTextInValuePasses() {
        XCTAssertNil(validate([("X-Name", "Jos\u{e9}")]))
    }

    func testContentLengthWithTransferEncodingIsRefused() {
        XCTAssertEqual(validate([("Content-Length", "5"), ("Transfer-Encoding", "chunked")]), .contentLengthWithTransferEncoding)
        XCTAssertEqual(validate([("Transfer-Encoding", "chunked"), ("Content-Length", "5")]), .contentLengthWithTransferEncoding)
    }

    func testTwoContentLengthsAreRefused() {
        XCTAssertEqual(validate([("Content-Length", "5"), ("Content-Length", "5")]), .multipleContentLength)
        XCTAssertEqual(validate([("Content-Length", "5"), ("content-length", "6")]), .multipleContentLength)
    }

    func testContentLengthWithSignIsRefused() {
        XCTAssertEqual(validate([("Content-Length", "+5")]), .invalidContentLength)
        XCTAssertEqual(validate([("Content-Length", "-5")]), .invalidContentLength)
    }

    func testHexContentLengthIsRefused() {
        XCTAssertEqual(validate([("Content-Length", "0x10")]), .invalidContentLength)
    }

    func testSpacesAroundAValueAreNotPartOfIt() throws {
        // RFC 9110 §5.5: optional whitespace around a field value is not part of it; the device
        // gets Gatehouse's own framing line, never the client's.
        XCTAssertNil(validate([("Content-Length", " 5")]))
        XCTAssertNil(validate([("Content-Length", "5 ")]))
        XCTAssertEqual(try RequestHead(method: "POST", uri: "/", headers: [("Host", "h"), ("Content-Length", "\t5 ")]).framing, .contentLength(5))
        XCTAssertEqual(validate([("Content-Length", "5 5")]), .invalidContentLength)
    }

    func testEmptyContentLengthIsRefused() {
        XCTAssertEqual(validate([("Content-Length", "")]), .invalidContentLength)
    }

    func testContentLengthListIsRefused() {
        XCTAssertEqual(validate([("Content-Length", "5, 5")]), .invalidContentLength)
    }

    func testOverlongContentLengthIsRefused() {
        XCTAssertEqual(validate([("Content-Length", "1234567890123456789")]), .invalidContentLength)
        XCTAssertNil(validate([("Content-Length", "123456789012345678")]))
    }

    func testGzipTransferEncodingIsRefused() {
        XCTAssertEqual(validate([("Transfer-Encoding", "gzip")]), .unsupportedTransferEncoding)
    }

    func testTransferEncodingListIsRefused() {
        XCTAssertEqual(validate([("Transfer-Encoding", "chunked, identity")]), .unsupportedTransferEncoding)
        XCTAssertEqual(validate([("Transfer-Encoding", "gzip, chunked")]), .unsupportedTransferEncoding)
    }

    func testLookalikeChunkedIsRefused() {
        XCTAssertEqual(validate([("Transfer-Encoding", "xchunked")]), .unsupportedTransferEncoding)
        XCTAssertEqual(validate([("Transfer-Encoding", "chunked;q=1")]), .unsupportedTransferEncoding)
        XCTAssertNil(validate([("Transfer-Encoding", "chunked ")]), "trailing whitespace is not part of the value")
    }

    func testTwoTransferEncodingHeadersAreRefused() {
        XCTAssertEqual(validate([("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")]), .unsupportedTransferEncoding)
    }

    func testTransferEncodingInHTTP10IsRefused() {
        XCTAssertEqual(validate([("Transfer-Encoding", "chunked")], version: (1, 0)), .transferEncodingInHTTP10)
    }

    func testHeaderNameWithSpaceIsRefused() {
        XCTAssertEqual(validate([("X Foo", "1")]), .invalidHeaderName)
        XCTAssertEqual(validate([("Content-Length ", "5")]), .invalidHeaderName)
    }

    func testHeaderNameWithColonIsRefused() {
        XCTAssertEqual(validate([("X:Foo", "1")]), .invalidHeaderName)
    }

    func testEmptyOrNonASCIIHeaderNameIsRefused() {
        XCTAssertEqual(validate([("", "1")]), .invalidHeaderName)
        XCTAssertEqual(validate([("X-Caf\u{e9}", "1")]), .invalidHeaderName)
    }

    func testValueWithNULIsRefused() {
        XCTAssertEqual(validate([("X-Foo", "a\u{0}b")]), .invalidHeaderValue(name: "X-Foo"))
    }

    func testValueWithCRIsRefused() {
        XCTAssertEqual(validate([("X-Foo", "a\rb")]), .invalidHeaderValue(name: "X-Foo"))
    }

    func testValueWithLFIsRefused() {
        XCTAssertEqual(validate([("X-Foo", "a\nX-Remote-User: admin")]), .invalidHeaderValue(name: "X-Foo"))
    }

    func testValueWithDELIsRefused() {
        XCTAssertEqual(validate([("X-Foo", "a\u{7f}")]), .invalidHeaderValue(name: "X-Foo"))
    }

    func testInvalidValueNamesAtMost64CharactersOfTheHeader() {
        let name = String(repeating: "X", count: 100)
        XCTAssertEqual(validate([(name, "\u{0}")]), .invalidHeaderValue(name: String(repeating: "X", count: 64)))
    }

    func testMissingHostInHTTP11IsRefused() {
        XCTAssertEqual(validate([], host: false), .missingHost)
    }

    func testMissingHostInHTTP10IsAllowed() {
        XCTAssertNil(validate([], version: (1, 0), host: false))
    }

    func testTwoHostsAreRefused() {
        XCTAssertEqual(validate([("host", "other")]), .multipleHost)
        XCTAssertEqual(validate([("Host", "other")], version: (1, 0)), .multipleHost)
    }

    func testAbsoluteFormTargetIsRefused() {
        XCTAssertEqual(validate([], uri: "http://device/api"), .targetNotOriginForm)
    }

    func testAsteriskTargetIsRefused() {
        XCTAssertEqual(validate([], uri: "*"), .targetNotOriginForm)
    }

    func testAuthorityFormAndEmptyTargetsAreRefused() {
        XCTAssertEqual(validate([], uri: "device:443"), .targetNotOriginForm)
        XCTAssertEqual(validate([], uri: ""), .targetNotOriginForm)
    }

    func testEveryViolationHasADetail() {
        let all: [FramingViolation] = [
            .contentLengthWithTransferEncoding, .multipleContentLength, .invalidContentLength, .unsupportedTransferEncoding,
            .transferEncodingInHTTP10, .invalidHeaderName, .invalidHeaderValue(name: "X"), .missingHost, .multipleHost, .targetNotOriginForm,
        ]
        XCTAssertEqual(Set(all.map(\.detail)).count, all.count)
    }
}
