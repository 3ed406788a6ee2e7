import GatehouseCore
import XCTest

final class PathNormalizerTests: XCTestCase {
    private func normal(_ path: String, file: StaticString = #filePath, line: UInt = #line) -> String? {
        guard case .success(let p) = PathNormalizer.normalize(path) else { return nil }
        return p
    }

    private func refusal(_ path: String) -> PathRefusal? {
        guard case .failure(let r) = PathNormalizer.normalize(path) else { return nil }
        return r
    }

    func testCanonicalPathsStayAsTheyAre() {
        for path in ["/", "/api/printer", "/a/b/", "/files/my%20print.gcode", "/a.b/c..d/...", "/x;y=1", "/caf%C3%A9", "/ü/ok"] {
            XCTAssertEqual(normal(path), path, path)
        }
    }

    func testUnreservedEscapesAreDecodedOthersKeptInUpperCase() {
        XCTAssertEqual(normal("/%61pi/%7Euser/%2D%5F"), "/api/~user/-_")
        XCTAssertEqual(normal("/a%2fb".replacingOccurrences(of: "%2f", with: "%20")), "/a%20b")
        XCTAssertEqual(normal("/a%3fb%3Bc%c3%a9"), "/a%3Fb%3Bc%C3%A9")
    }

    func testDotSegmentsAndRepeatedSlashes() {
        XCTAssertEqual(normal("/a/./b/../c"), "/a/c")
        XCTAssertEqual(normal("/a/%2e/b/%2E%2e/c"), "/a/c")
        XCTAssertEqual(normal("/public/..%2fadmin".replacingOccurrences(of: "%2f", with: "/")), "/admin")
        XCTAssertEqual(normal("//admin///x//"), "/admin/x/")
        XCTAssertEqual(normal("/a/b/.."), "/a/")
        XCTAssertEqual(normal("/a/."), "/a/")
        XCTAssertEqual(normal("/a/.."), "/")
        XCTAssertEqual(normal("/.%2e/x".replacingOccurrences(of: "/.%2e/x", with: "/a/.%2e/x")), "/x")
    }

    func testSegmentsThatAreDotsOrEmptyOnceTheirParametersAreCutAreRefused() {
        for path in ["/x/..;/admin", "/x/.;/a", "/x/%2e%2e;/a", "/x/.%2E;x=1/a", "/x/..%3B/a", "/x/..%3b/a", "/x/;/a", "/;", "/x/;js=1",
                     "/x/%3Bjs/a", "/..;", "/a/..;"] {
            XCTAssertEqual(refusal(path), .dotSegmentWithParameters, path)
        }
        for path in ["/x/a;b", "/x/...;/a", "/x/..a;/b", "/x/a..;/b", "/x;y/z", "/a/b%3Bc"] {
            XCTAssertNotNil(normal(path), path)
        }
        XCTAssertEqual(AccessPolicy.matchingPath("/admin%3Bx/y;z/w%3bq"), "/admin/y/w")
    }

    func testRefusals() {
        XCTAssertEqual(refusal("api"), .notAbsolute)
        XCTAssertEqual(refusal("*"), .notAbsolute)
        XCTAssertEqual(refusal("http://example/a"), .notAbsolute)
        XCTAssertEqual(refusal("/a%2fb"), .encodedSlash)
        XCTAssertEqual(refusal("/a%2Fb"), .encodedSlash)
        XCTAssertEqual(refusal("/a%5cb"), .backslash)
        XCTAssertEqual(refusal("/a\\b"), .backslash)
        XCTAssertEqual(refusal("/a%00b"), .controlCharacter)
        XCTAssertEqual(refusal("/a\u{0}b"), .controlCharacter)
        XCTAssertEqual(refusal("/a%0d%0aX: y"), .controlCharacter)
        XCTAssertEqual(refusal("/a\tb"), .controlCharacter)
        XCTAssertEqual(refusal("/a%7f"), .controlCharacter)
        XCTAssertEqual(refusal("/a%252e%252e/x"), .doubleEncoding)
        XCTAssertEqual(refusal("/a%252f"), .doubleEncoding)
        XCTAssertEqual(refusal("/a%255C"), .doubleEncoding)
        XCTAssertEqual(refusal("/a%2500"), .doubleEncoding)
        // Escapes of unreserved digits and letters are decoded first: what is left is checked.
        XCTAssertEqual(refusal("/x/%25%32%65/"), .doubleEncoding)
        XCTAssertEqual(refusal("/x/%25%32%46"), .doubleEncoding)
        XCTAssertEqual(refusal("/x/%252%65"), .doubleEncoding)
        XCTAssertEqual(try? PathNormalizer.normalize("/x/%25%34%31").get(), "/x/%2541", "a harmless second escape stays")
        XCTAssertEqual(refusal("/%c0%ae%c0%ae/x"), .invalidUTF8, "overlong dot")
        XCTAssertEqual(refusal("/%e0%80%af"), .invalidUTF8, "overlong slash")
        XCTAssertEqual(refusal("/%ff"), .invalidUTF8)
        XCTAssertEqual(refusal("/a%"), .malformedEscape)
        XCTAssertEqual(refusal("/a%4"), .malformedEscape)
        XCTAssertEqual(refusal("/a%zz"), .malformedEscape)
        XCTAssertEqual(refusal("/.."), .aboveRoot)
        XCTAssertEqual(refusal("/a/../../etc/passwd"), .aboveRoot)
        XCTAssertEqual(refusal("/%2e%2e/x"), .aboveRoot)
    }

    func testNormalizingTwiceChangesNothing() {
        for path in ["/a/./b/../c", "/%61%2e/%7e", "//x//y/", "/a%3bb", "/a/b/.", "/%C3%A9t%c3%a9"] {
            guard let once = normal(path) else { return XCTFail(path) }
            XCTAssertEqual(normal(once), once, path)
        }
    }
}
