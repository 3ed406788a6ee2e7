import XCTest

@testable import GatehouseCore

final class IPAddressTests: XCTestCase {
    func testIPv4ParsesIntoMappedForm() throws {
        let address = try XCTUnwrap(IPAddress("192.168.1.5"))
        XCTAssertTrue(address.isIPv4)
        XCTAssertEqual(address.bytes, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 5])
        XCTAssertEqual(address.description, "192.168.1.5")
    }

    func testIPv6Parses() throws {
        let address = try XCTUnwrap(IPAddress("2001:db8::1"))
        XCTAssertFalse(address.isIPv4)
        XCTAssertEqual(address.bytes.count, 16)
        XCTAssertEqual(address.description, "2001:db8::1")
    }

    func testIPv4MappedIPv6EqualsPlainIPv4() {
        XCTAssertEqual(IPAddress("::ffff:192.168.1.5"), IPAddress("192.168.1.5"))
        XCTAssertEqual(IPAddress("::ffff:192.168.1.5")?.description, "192.168.1.5")
    }

    func testBracketedIPv6IsAccepted() {
        XCTAssertEqual(IPAddress("[::1]"), IPAddress("::1"))
        XCTAssertNotNil(IPAddress("::1"))
    }

    func testZoneIdIsRefused() {
        XCTAssertNil(IPAddress("fe80::1%eth0"))
        XCTAssertNil(IPAddress("[fe80::1%eth0]"))
    }

    func testMalformedTextIsRefused() {
        for text in ["", "1.2.3", "256.1.1.1", "1.2.3.4:80", "example.com", " 1.2.3.4", "1.2.3.4 ", "[::1", "::1]", "1:2:3:4:5:6:7:8:9", "[]"] {
            XCTAssertNil(IPAddress(text), "'\(text)' should not parse")
        }
    }

    func testBytesOfWrongLengthAreRefused() {
        XCTAssertNil(IPAddress(bytes: [1, 2, 3]))
        XCTAssertNil(IPAddress(bytes: [1, 2, 3, 4, 5]))
    }

    func testFourBytesBuildTheIPv4Address() {
        XCTAssertEqual(IPAddress(bytes: [10, 0, 0, 1]), IPAddress("10.0.0.1"))
    }
}

final class CIDRTests: XCTestCase {
    func testIPv4BlockContainsItsAddresses() {
        let block = Fixture.cidr("192.168.1.0/24")
        XCTAssertTrue(block.contains(Fixture.ip("192.168.1.0")))
        XCTAssertTrue(block.contains(Fixture.ip("192.168.1.255")))
        XCTAssertFalse(block.contains(Fixture.ip("192.168.2.0")))
        XCTAssertFalse(block.contains(Fixture.ip("192.168.0.255")))
    }

    func testIPv4BlockContainsIPv4MappedIPv6Peer() {
        XCTAssertTrue(Fixture.cidr("192.168.1.0/24").contains(Fixture.ip("::ffff:192.168.1.5")))
    }

    func testIPv4BlockDoesNotContainIPv6Peer() {
        XCTAssertFalse(Fixture.cidr("0.0.0.0/0").contains(Fixture.ip("2001:db8::1")))
        XCTAssertFalse(Fixture.cidr("0.0.0.0/0").contains(Fixture.ip("::1")))
    }

    func testHostBitsSetAreRefused() {
        XCTAssertThrowsError(try CIDR(parsing: "192.168.1.7/24")) { error in
            XCTAssertEqual(error as? CIDR.ParseError, .hostBitsSet("192.168.1.7/24"))
        }
    }

    func testIPv6HostBitsSetAreRefused() {
        XCTAssertThrowsError(try CIDR(parsing: "2001:db8::1/32")) { error in
            XCTAssertEqual(error as? CIDR.ParseError, .hostBitsSet("2001:db8::1/32"))
        }
    }

    func testSlashZeroMatchesEveryIPv4Address() {
        let block = Fixture.cidr("0.0.0.0/0")
        XCTAssertTrue(block.contains(Fixture.ip("8.8.8.8")))
        XCTAssertTrue(block.contains(Fixture.ip("255.255.255.255")))
        XCTAssertTrue(block.contains(Fixture.ip("0.0.0.0")))
    }

    func testSlash32MatchesOnlyThatAddress() {
        let block = Fixture.cidr("10.0.0.7/32")
        XCTAssertTrue(block.contains(Fixture.ip("10.0.0.7")))
        XCTAssertFalse(block.contains(Fixture.ip("10.0.0.6")))
        XCTAssertFalse(block.contains(Fixture.ip("10.0.0.8")))
    }

    func testBareIPv4AddressIsASlash32() {
        let block = Fixture.cidr("10.0.0.7")
        XCTAssertEqual(block.prefixLength128, 128)
        XCTAssertEqual(block.description, "10.0.0.7/32")
        XCTAssertTrue(block.contains(Fixture.ip("10.0.0.7")))
        XCTAssertFalse(block.contains(Fixture.ip("10.0.0.8")))
    }

    func testSlash128MatchesOnlyThatAddress() {
        let block = Fixture.cidr("2001:db8::1/128")
        XCTAssertTrue(block.contains(Fixture.ip("2001:db8::1")))
        XCTAssertFalse(block.contains(Fixture.ip("2001:db8::2")))
    }

    func testBareIPv6AddressIsASlash128() {
        XCTAssertEqual(Fixture.cidr("::1").description, "::1/128")
        XCTAssertEqual(Fixture.cidr("::1").prefixLength128, 128)
    }

    func testIPv6BlockContainsItsAddresses() {
        let block = Fixture.cidr("fd00::/8")
        XCTAssertTrue(block.contains(Fixture.ip("fd12:3456::1")))
        XCTAssertFalse(block.contains(Fixture.ip("fe80::1")))
    }

    func testIPv6BlockDoesNotMatchIPv4Peer() {
        XCTAssertFalse(Fixture.cidr("fd00::/8").contains(Fixture.ip("192.168.1.5")))
        XCTAssertFalse(Fixture.cidr("2001:db8::/32").contains(Fixture.ip("10.0.0.1")))
    }

    func testIPv6SlashZeroCoversIPv4MappedPeers() {
        XCTAssertTrue(Fixture.cidr("::/0").contains(Fixture.ip("10.0.0.1")))
    }

    func testPrefixBeyondFamilyIsRefused() {
        XCTAssertThrowsError(try CIDR(parsing: "10.0.0.0/33")) { XCTAssertEqual($0 as? CIDR.ParseError, .badPrefix("10.0.0.0/33")) }
        XCTAssertThrowsError(try CIDR(parsing: "::/129")) { XCTAssertEqual($0 as? CIDR.ParseError, .badPrefix("::/129")) }
    }

    func testMalformedPrefixIsRefused() {
        for text in ["10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/0008"] {
            XCTAssertThrowsError(try CIDR(parsing: text)) { XCTAssertEqual($0 as? CIDR.ParseError, .badPrefix(text)) }
        }
    }

    func testMalformedAddressIsRefused() {
        for text in ["", "10.0.0/8", "10.0.0.0/8/8", "fe80::%eth0/64", "host/24"] {
            XCTAssertThrowsError(try CIDR(parsing: text)) { XCTAssertEqual($0 as? CIDR.ParseError, .badAddress(text)) }
        }
    }

    func testDescriptionKeepsTheConfiguredText() {
        XCTAssertEqual(Fixture.cidr("192.168.1.0/24").description, "192.168.1.0/24")
    }
}
