import Foundation
import XCTest

@testable import GatehouseCore

final class PasswordTests: XCTestCase {
    private let fast = ScryptParameters(n: 16, r: 1, p: 1)

    func testTheDefaultParametersVerifyTheRightPasswordOnly() throws {
        let hash = try PasswordHash.make("correct horse battery staple")
        XCTAssertEqual(hash.parameters, .interactive)
        XCTAssertTrue(hash.verify("correct horse battery staple"))
        XCTAssertFalse(hash.verify("correct horse battery stapl"))
        XCTAssertFalse(hash.verify(""))
    }

    func testTheStoredFormRoundTripsAndNamesItsParameters() throws {
        let hash = try PasswordHash.make("pässwörd mit ümläüten", parameters: fast)
        let text = hash.description
        XCTAssertTrue(text.hasPrefix("scrypt$16$1$1$"), text)
        let parsed = try XCTUnwrap(PasswordHash(stored: text))
        XCTAssertEqual(parsed, hash)
        XCTAssertTrue(parsed.verify("pässwörd mit ümläüten"))
    }

    func testTwoHashesOfOnePasswordDifferBySalt() throws {
        let a = try PasswordHash.make("same password twice", parameters: fast)
        let b = try PasswordHash.make("same password twice", parameters: fast)
        XCTAssertNotEqual(a.description, b.description)
        XCTAssertTrue(a.verify("same password twice") && b.verify("same password twice"))
    }

    func testADecoyHasTheCostOfARealHashAndMatchesNoPassword() throws {
        let decoy = try XCTUnwrap(PasswordHash.decoy(parameters: fast))
        XCTAssertEqual(decoy.parameters, fast)
        let other = try XCTUnwrap(PasswordHash.decoy(parameters: fast))
        XCTAssertNotEqual(decoy.description, other.description, "each decoy is random")
        for password in ["", "password", "correct horse battery staple", String(repeating: "a", count: 64)] {
            XCTAssertFalse(decoy.verify(password), password)
        }
        // It round-trips like any stored hash, so the check it costs is the same code path.
        XCTAssertEqual(PasswordHash(stored: decoy.description), decoy)
        XCTAssertNil(PasswordHash.decoy(parameters: ScryptParameters(n: 15, r: 1, p: 1)))
    }

    func testMalformedStoredFormsAreRejected() {
        for text in ["", "scrypt", "bcrypt$16$1$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA", "scrypt$15$1$1$AAAAAAAAAAAAAAAAAAAAAA==$" + String(repeating: "A", count: 44),
                     "scrypt$16$1$1$short$" + String(repeating: "A", count: 44), "scrypt$16$1$1$AAAAAAAAAAAAAAAAAAAAAA==$notbase64!"] {
            XCTAssertNil(PasswordHash(stored: text), text)
        }
    }

    func testWeakerParametersAskForARehash() throws {
        XCTAssertTrue(try PasswordHash.make("some password", parameters: fast).needsRehash())
        XCTAssertFalse(try PasswordHash.make("some password").needsRehash())
    }

    func testPolicyMinimumCountsCharactersAndAllowsLongPasswords() throws {
        let policy = PasswordPolicy()
        XCTAssertThrowsError(try policy.check("123456789")) { XCTAssertEqual($0 as? PasswordError, .tooShort(minimum: 10)) }
        XCTAssertNoThrow(try policy.check("1234567890"))
        XCTAssertNoThrow(try policy.check("ññññññññññ"), "ten characters are ten, whatever their bytes")
        XCTAssertNoThrow(try policy.check(String(repeating: "x", count: 255)))
        XCTAssertNoThrow(try policy.check(String(repeating: "x", count: 1024)))
        XCTAssertThrowsError(try policy.check(String(repeating: "x", count: 1025))) { XCTAssertEqual($0 as? PasswordError, .tooLong(maximum: 1024)) }
        XCTAssertThrowsError(try policy.check("tab\tinside password")) { XCTAssertEqual($0 as? PasswordError, .notText) }
    }
}
