import XCTest

@testable import GatehouseCore

/// The `public_paths` shorthand, as the access policy the gate uses decides it.
final class PublicPathsTests: XCTestCase {
    /// Public prefixes as the gate applies them: one public prefix rule each.
    struct Prefixes {
        let policy: AccessPolicy
        init(prefixes: [String]) { policy = GatehouseConfig(publicPaths: prefixes).accessPolicy }
        func isPublic(path: String) -> Bool { policy.decision(method: "GET", host: nil, path: path) == .open }
    }

    let paths = Prefixes(prefixes: ["/static", "/assets/"])

    func testPrefixMatchesItself() {
        XCTAssertTrue(paths.isPublic(path: "/static"))
    }

    func testPrefixMatchesPathsBelowIt() {
        XCTAssertTrue(paths.isPublic(path: "/static/x"))
        XCTAssertTrue(paths.isPublic(path: "/static/js/app.js"))
        XCTAssertTrue(paths.isPublic(path: "/static/"))
    }

    func testPrefixDoesNotMatchALongerSegment() {
        XCTAssertFalse(paths.isPublic(path: "/staticsecret"))
        XCTAssertFalse(paths.isPublic(path: "/static.json"))
    }

    func testPrefixWithTrailingSlashMatchesOnlyBelowIt() {
        XCTAssertTrue(paths.isPublic(path: "/assets/logo.png"))
        XCTAssertFalse(paths.isPublic(path: "/assets"))
        XCTAssertFalse(paths.isPublic(path: "/assetsx/logo.png"))
    }

    func testOtherPathsAreNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "/api/printer"))
        XCTAssertFalse(paths.isPublic(path: "/"))
    }

    func testMatchingIsCaseSensitive() {
        XCTAssertFalse(paths.isPublic(path: "/STATIC/x"))
    }

    func testDotDotSegmentIsNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "/static/../admin"))
        XCTAssertFalse(paths.isPublic(path: "/static/.."))
    }

    func testDotSegmentIsNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "/static/./x"))
        XCTAssertFalse(paths.isPublic(path: "/static/."))
    }

    func testDoubleSlashIsNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "/static//x"))
    }

    func testEncodedDotsAreNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "/static/%2e%2e/admin"))
        XCTAssertFalse(paths.isPublic(path: "/static/%2E%2E/admin"))
        XCTAssertFalse(paths.isPublic(path: "/static/.%2e/admin"))
    }

    func testEncodedSlashIsNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "/static/%2F"))
        XCTAssertFalse(paths.isPublic(path: "/static/%2f..%2fadmin"))
    }

    func testBackslashIsNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "/static/..\\admin"))
        XCTAssertFalse(paths.isPublic(path: "/static\\x"))
        XCTAssertFalse(paths.isPublic(path: "/static/%5c..%5cadmin"))
    }

    func testControlBytesAreNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "/static/x\u{0}"))
        XCTAssertFalse(paths.isPublic(path: "/static/x\t"))
        XCTAssertFalse(paths.isPublic(path: "/static/x\u{7f}"))
    }

    func testOtherEscapesAreStillPublic() {
        XCTAssertTrue(paths.isPublic(path: "/static/my%20file.js"))
    }

    func testDotsInsideANameAreStillPublic() {
        XCTAssertTrue(paths.isPublic(path: "/static/app..js"))
        XCTAssertTrue(paths.isPublic(path: "/static/.well-known"))
    }

    func testPathWithoutLeadingSlashIsNotPublic() {
        XCTAssertFalse(paths.isPublic(path: "static/x"))
        XCTAssertFalse(paths.isPublic(path: "*"))
    }

    func testNoPrefixesMeansNothingIsPublic() {
        XCTAssertFalse(Prefixes(prefixes: []).isPublic(path: "/static"))
    }

    func testRootPrefixMakesEveryCanonicalPathPublic() {
        let all = Prefixes(prefixes: ["/"])
        XCTAssertTrue(all.isPublic(path: "/anything"))
        XCTAssertFalse(all.isPublic(path: "/a/../b"))
    }
}
