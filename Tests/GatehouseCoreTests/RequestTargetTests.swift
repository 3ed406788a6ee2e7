import XCTest

@testable import GatehouseCore

final class RequestTargetTests: XCTestCase {
    func testTargetWithoutQueryIsAllPath() {
        let target = RequestTarget("/api/printer")
        XCTAssertEqual(target.path, "/api/printer")
        XCTAssertNil(target.query.raw)
        XCTAssertEqual(target.uri, "/api/printer")
    }

    func testTargetSplitsAtTheFirstQuestionMark() {
        let target = RequestTarget("/a/b?x=1&y=2?z")
        XCTAssertEqual(target.path, "/a/b")
        XCTAssertEqual(target.query.raw, "x=1&y=2?z")
    }

    func testEmptyQueryIsKept() {
        let target = RequestTarget("/a?")
        XCTAssertEqual(target.path, "/a")
        XCTAssertEqual(target.query.raw, "")
        XCTAssertEqual(target.uri, "/a?")
    }

    func testRebuiltTargetIsByteExact() {
        for uri in ["/", "/a?", "/a?b", "/a?b=&c", "/p%20q?x=%2B+y&&z=1;w=2", "/ü?ä=ö", "/a?apikey", "/a?=v"] {
            XCTAssertEqual(RequestTarget(uri).uri, uri)
        }
    }

    func testTargetFromPathAndQueryRebuilds() {
        XCTAssertEqual(RequestTarget(path: "/x", query: QueryString("a=1")).uri, "/x?a=1")
        XCTAssertEqual(RequestTarget(path: "/x", query: QueryString(nil)).uri, "/x")
    }
}

final class QueryStringTests: XCTestCase {
    func testValuesOfANamedParameter() {
        XCTAssertEqual(QueryString("a=1&b=2&a=3").values(named: "a"), ["1", "3"])
    }

    func testMissingParameterHasNoValues() {
        XCTAssertEqual(QueryString("a=1").values(named: "b"), [])
        XCTAssertEqual(QueryString(nil).values(named: "a"), [])
    }

    func testParameterWithoutEqualsHasEmptyValue() {
        XCTAssertEqual(QueryString("flag&a=1").values(named: "flag"), [""])
    }

    func testValueMayContainEquals() {
        XCTAssertEqual(QueryString("a=b=c").values(named: "a"), ["b=c"])
    }

    func testPlusDecodesToSpace() {
        XCTAssertEqual(QueryString("q=a+b").values(named: "q"), ["a b"])
    }

    func testPercent20DecodesToSpace() {
        XCTAssertEqual(QueryString("q=a%20b").values(named: "q"), ["a b"])
    }

    func testPercent2BDecodesToPlus() {
        XCTAssertEqual(QueryString("q=a%2Bb").values(named: "q"), ["a+b"])
    }

    func testNamesAreComparedAfterDecoding() {
        XCTAssertEqual(QueryString("%61pikey=K").values(named: "apikey"), ["K"])
        XCTAssertEqual(QueryString("api%6Bey=K").values(named: "apikey"), ["K"])
    }

    func testInvalidEscapesAreKeptAsTheyAre() {
        XCTAssertEqual(QueryString("q=%zz%4").values(named: "q"), ["%zz%4"])
        XCTAssertEqual(QueryString("q=100%").values(named: "q"), ["100%"])
    }

    func testEscapeAtTheVeryEndIsDecoded() {
        XCTAssertEqual(QueryString("q=a%41").values(named: "q"), ["aA"])
    }

    func testMultiByteUTF8EscapesDecode() {
        XCTAssertEqual(QueryString("q=%C3%BC").values(named: "q"), ["ü"])
    }

    func testRemovingAParameterKeepsOthersInOrder() {
        XCTAssertEqual(QueryString("z=1&apikey=K&a=%2B+&apikey=L&m").removing(named: "apikey").raw, "z=1&a=%2B+&m")
    }

    func testRemovingAnEncodedNameRemovesIt() {
        XCTAssertEqual(QueryString("a=1&%61pikey=K").removing(named: "apikey").raw, "a=1")
    }

    func testRemovingTheOnlyParameterLeavesNoQuery() {
        XCTAssertNil(QueryString("apikey=K").removing(named: "apikey").raw)
        XCTAssertEqual(RequestTarget(path: "/x", query: QueryString("apikey=K").removing(named: "apikey")).uri, "/x")
    }

    func testRemovingAnAbsentParameterChangesNothing() {
        XCTAssertEqual(QueryString("b=2&&a=1").removing(named: "apikey").raw, "b=2&&a=1")
        XCTAssertNil(QueryString(nil).removing(named: "apikey").raw)
    }
}
