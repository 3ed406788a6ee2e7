import Foundation
import GatehouseCore
import GatehouseFuzzChecks
import XCTest

/// Every input kept in `Fuzz/Regressions/<target>/` (inputs a fuzz target once found, after the
/// fix) and every seed in `Fuzz/Corpus/<target>/` goes through the same check as in the fuzz
/// target, on every test run.
final class FuzzRegressionTests: XCTestCase {
    private static let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fuzz").standardized

    private func check(_ target: String, _ property: ([UInt8]) -> String?, file: StaticString = #filePath, line: UInt = #line) throws {
        var checked = 0
        for folder in ["Regressions", "Corpus"] {
            let directory = Self.fuzz.appendingPathComponent(folder).appendingPathComponent(target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for name in names.sorted() where !name.hasPrefix(".") {
                let bytes = Array(try Data(contentsOf: directory.appendingPathComponent(name)))
                XCTAssertNil(property(bytes), "\(folder)/\(target)/\(name)", file: file, line: line)
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, "no inputs found for \(target) under \(Self.fuzz.path)", file: file, line: line)
    }

    func testConfigLoaderInputs() throws { try check("FuzzConfigLoader", FuzzChecks.configLoader) }
    func testPathNormalizerInputs() throws { try check("FuzzPathNormalizer", FuzzChecks.pathNormalizer) }
    func testCredentialParserInputs() throws { try check("FuzzCredentialParsers", FuzzChecks.credentialParsers) }
    func testJSONWebTokenInputs() throws { try check("FuzzJSONWebToken", FuzzChecks.jsonWebToken) }
    func testResponseScannerInputs() throws { try check("FuzzResponseScanner", FuzzChecks.responseScanner) }
    func testRequestScannerInputs() throws { try check("FuzzRequestScanner", FuzzChecks.requestScanner) }

    /// The request check reads streams as NIO does, and flags a scanner that completes requests
    /// NIO refuses (unless NIO refused only an unknown method).
    func testTheRequestScannerCheckComparesWithNIO() {
        let stream = Array("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        let scanned = FuzzChecks.scanRequests(stream)
        XCTAssertEqual(scanned, FuzzChecks.decodeRequestsWithNIO(stream))
        XCTAssertEqual(scanned.requests.map(\.uri), ["/a", "/b"])
        XCTAssertEqual(scanned.requests.first?.body, Array("abc".utf8))
        XCTAssertNil(FuzzChecks.requestScanner(stream))
        // NIO's parser knows no TRACK; Gatehouse reads it (and answers 405).
        XCTAssertNil(FuzzChecks.requestScanner(Array("TRACK / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)))
        // Lower-case methods are refused by both.
        XCTAssertEqual(FuzzChecks.scanRequests(Array("get / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)).refused, true)
    }

    /// The differential check reads streams as NIO does, and flags a scanner looser than NIO.
    func testTheResponseScannerCheckComparesWithNIO() {
        let stream = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n".utf8)
        let heads = [Bool](repeating: false, count: 16)
        let expected = ParsedResponses(statuses: [200, 204], bodies: [Array("abc".utf8), []])
        XCTAssertEqual(FuzzChecks.scan(stream, heads: heads), expected)
        XCTAssertEqual(FuzzChecks.decodeWithNIO(stream, heads: heads), expected)
        let looser = ParsedResponses(statuses: [200, 204], bodies: [Array("abc".utf8), [], []])
        XCTAssertNotNil(FuzzChecks.problem(scanned: looser, reference: expected))
        XCTAssertNotNil(FuzzChecks.problem(scanned: ParsedResponses(statuses: [200], bodies: [Array("ab".utf8)]), reference: expected))
        XCTAssertNil(FuzzChecks.problem(scanned: ParsedResponses(statuses: [200], bodies: [Array("abc".utf8)], refused: true), reference: expected),
            "refusing where NIO accepts is allowed (stricter)")
    }

    /// The checks are not vacuous: each reports a broken property when shown one.
    func testTheChecksCanFail() {
        XCTAssertNotNil(FuzzChecks.problem(with: ConfigError(file: "f", line: 9, keyPath: "", message: "m"), in: "a: 1\n"))
        XCTAssertNotNil(FuzzChecks.problem(with: ConfigError(file: "f", line: nil, keyPath: "", message: ""), in: ""))
        XCTAssertNil(FuzzChecks.problem(with: ConfigError(file: "f", line: 1, keyPath: "", message: "m"), in: "a: 1\n"))
        // Lines as YAML counts them (the config fuzzer's first find was this check counting only LF).
        XCTAssertNil(FuzzChecks.problem(with: ConfigError(file: "f", line: 4, keyPath: "", message: "m"), in: "a\rb\r\nc\n"))
        XCTAssertNotNil(FuzzChecks.problem(with: ConfigError(file: "f", line: 6, keyPath: "", message: "m"), in: "a\rb\r\nc\n"))
        for bad in ["a/b", "/a//b", "/a/../b", "/a/./b", "/a%2Fb", "/a%2fb", "/a\\b", "/a%00", "/%2e%2e/x", "/a\u{7}"] {
            XCTAssertNotNil(FuzzChecks.problem(withNormalized: bad, of: bad), bad)
        }
        XCTAssertNil(FuzzChecks.problem(withNormalized: "/a/b/", of: "/a//b/"))
        XCTAssertNotNil(FuzzChecks.problem(withBasic: "alice", "x", from: "Basic " + Data("alice:y".utf8).base64EncodedString()))
        XCTAssertNil(FuzzChecks.problem(withBasic: "alice", "y", from: "Basic " + Data("alice:y".utf8).base64EncodedString()))
        let claims = FuzzChecks.base64URL(Array(#"{"sub":"alice"}"#.utf8))
        let kid = FuzzChecks.signedWithTheFuzzingSecret(FuzzChecks.base64URL(Array(#"{"alg":"HS256","kid":"1"}"#.utf8)) + "." + claims)
        XCTAssertNotNil(FuzzChecks.problem(withVerified: kid, subject: "alice"), "a kid header must not pass")
        let good = FuzzChecks.signedWithTheFuzzingSecret(FuzzChecks.base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + claims)
        XCTAssertNil(FuzzChecks.problem(withVerified: good, subject: "alice"))
        XCTAssertNotNil(FuzzChecks.problem(withVerified: good + "x", subject: "alice"), "a signature not by the secret")
        XCTAssertNotNil(FuzzChecks.problem(withVerified: good, subject: "al ice"))
    }

    /// The signed seed really reaches the claims checks: it verifies.
    func testASignedSeedVerifies() {
        let header = FuzzChecks.base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let claims = #"{"iss":"gatehouse","aud":["gatehouse"],"sub":"alice","iat":1899999990,"exp":1900000900,"jti":"j1","roles":[],"type":"access"}"#
        let token = FuzzChecks.signedWithTheFuzzingSecret(header + "." + FuzzChecks.base64URL(Array(claims.utf8)))
        XCTAssertEqual(FuzzChecks.verifies(token), true)
        XCTAssertEqual(FuzzChecks.verifies(token + "x"), false)
    }
}
