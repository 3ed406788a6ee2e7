import XCTest

@testable import GatehouseCore

final class ConfigDurationTests: XCTestCase {
    func testSecondsParse() {
        XCTAssertEqual(ConfigDuration(parsing: "30s")?.seconds, 30)
    }

    func testMinutesParse() {
        XCTAssertEqual(ConfigDuration(parsing: "5m")?.seconds, 300)
    }

    func testHoursParse() {
        XCTAssertEqual(ConfigDuration(parsing: "1h")?.seconds, 3600)
    }

    func testDaysParse() {
        XCTAssertEqual(ConfigDuration(parsing: "7d")?.seconds, 7 * 86400)
    }

    func testBareZeroParsesAsZero() {
        XCTAssertEqual(ConfigDuration(parsing: "0"), .zero)
    }

    func testZeroWithUnitParsesAsZero() {
        XCTAssertEqual(ConfigDuration(parsing: "0s")?.seconds, 0)
    }

    func testCombinedUnitsAreRefused() {
        XCTAssertNil(ConfigDuration(parsing: "1h30m"))
    }

    func testNegativeDurationIsRefused() {
        XCTAssertNil(ConfigDuration(parsing: "-5s"))
    }

    func testNumberWithoutUnitIsRefused() {
        XCTAssertNil(ConfigDuration(parsing: "5"))
    }

    func testFractionIsRefused() {
        XCTAssertNil(ConfigDuration(parsing: "1.5h"))
    }

    func testEmptyTextIsRefused() {
        XCTAssertNil(ConfigDuration(parsing: ""))
    }

    func testUnitWithoutNumberIsRefused() {
        XCTAssertNil(ConfigDuration(parsing: "s"))
    }

    func testUnknownUnitIsRefused() {
        XCTAssertNil(ConfigDuration(parsing: "2w"))
        XCTAssertNil(ConfigDuration(parsing: "5ms"))
    }

    func testUppercaseUnitIsRefused() {
        XCTAssertNil(ConfigDuration(parsing: "5S"))
    }

    func testPlusSignIsRefused() {
        XCTAssertNil(ConfigDuration(parsing: "+5s"))
    }

    func testNonASCIIDigitsAreRefused() {
        XCTAssertNil(ConfigDuration(parsing: "\u{0663}s"))  // ARABIC-INDIC DIGIT THREE
    }

    func testAmountTooLongToBeSafeIsRefusedRatherThanOverflowing() {
        XCTAssertNil(ConfigDuration(parsing: "9999999999999d"))
        XCTAssertEqual(ConfigDuration(parsing: "999999999999d")?.seconds, 999_999_999_999 * 86400)
    }

    func testSurroundingSpacesAreIgnored() {
        XCTAssertEqual(ConfigDuration(parsing: " 30s\t")?.seconds, 30)
    }

    func testDescriptionUsesLargestWholeUnit() {
        XCTAssertEqual(ConfigDuration(seconds: 90).description, "90s")
        XCTAssertEqual(ConfigDuration(seconds: 120).description, "2m")
        XCTAssertEqual(ConfigDuration(seconds: 7200).description, "2h")
        XCTAssertEqual(ConfigDuration(seconds: 172_800).description, "2d")
        XCTAssertEqual(ConfigDuration.zero.description, "0")
    }

    func testDescriptionRoundTripsThroughParsing() {
        for seconds: Int64 in [0, 1, 59, 60, 61, 3599, 3600, 86399, 86400, 90000, 604_800] {
            let duration = ConfigDuration(seconds: seconds)
            XCTAssertEqual(ConfigDuration(parsing: duration.description), duration, "\(seconds)s")
        }
    }

    func testOrderingFollowsLength() {
        XCTAssertLessThan(ConfigDuration.seconds(59), .minutes(1))
        XCTAssertEqual(ConfigDuration.seconds(60), .minutes(1))
    }
}
