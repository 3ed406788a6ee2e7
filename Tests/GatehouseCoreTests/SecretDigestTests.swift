import XCTest

@testable import GatehouseCore

final class SecretDigestTests: XCTestCase {
    func testDigestOfAbcMatchesTheSHA256TestVector() {
        XCTAssertEqual(SecretDigest.of("abc").description, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testDigestMatchesSha256sumOfTheKeyBytes() {
        // printf %s 'gh-test-key-1' | sha256sum
        XCTAssertEqual(SecretDigest.of("gh-test-key-1").description, "sha256:df583ac782f2ba86584313a07ec6444c07eeea4f675f3be3b26e18a7eb6afa34")
    }

    func testDigestOfEmptySecretMatchesTheSHA256TestVector() {
        XCTAssertEqual(SecretDigest.of("").description, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testDescriptionRoundTripsThroughParsing() {
        let digest = SecretDigest.of("round-trip")
        XCTAssertEqual(SecretDigest(parsing: digest.description), digest)
    }

    func testUppercaseHexIsAccepted() {
        let text = "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        XCTAssertEqual(SecretDigest(parsing: text), SecretDigest.of("abc"))
    }

    func testDescriptionIsAlwaysLowercase() {
        let text = "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        XCTAssertEqual(SecretDigest(parsing: text)?.description, text.lowercased())
    }

    func testLeadingZeroBytesArePrintedInFull() {
        let text = "sha256:" + String(repeating: "0", count: 62) + "0a"
        XCTAssertEqual(SecretDigest(parsing: text)?.description, text)
    }

    func testTextWithoutPrefixIsRefused() {
        XCTAssertNil(SecretDigest(parsing: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        XCTAssertNil(SecretDigest(parsing: "SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    func testWrongLengthIsRefused() {
        XCTAssertNil(SecretDigest(parsing: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"))
        XCTAssertNil(SecretDigest(parsing: "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad00"))
        XCTAssertNil(SecretDigest(parsing: "sha256:"))
    }

    func testNonHexDigitIsRefused() {
        XCTAssertNil(SecretDigest(parsing: "sha256:ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        XCTAssertNil(SecretDigest(parsing: "sha256: a7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    }

    func testConstantTimeEqualsAgreesWithEquality() {
        let a = SecretDigest.of("a")
        XCTAssertTrue(a.constantTimeEquals(SecretDigest.of("a")))
        XCTAssertFalse(a.constantTimeEquals(SecretDigest.of("b")))
    }

    func testDigestsDifferingOnlyInTheLastByteAreDifferent() {
        let a = SecretDigest(parsing: "sha256:" + String(repeating: "ab", count: 31) + "00")!
        let b = SecretDigest(parsing: "sha256:" + String(repeating: "ab", count: 31) + "01")!
        XCTAssertNotEqual(a, b)
        XCTAssertFalse(a.constantTimeEquals(b))
    }
}

final class APIKeyGeneratorTests: XCTestCase {
    func testKeyIs43Characters() {
        XCTAssertEqual(APIKeyGenerator.generate().count, 43)
    }

    func testKeyUsesOnlyTheURLSafeAlphabet() {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for _ in 0..<200 {
            let key = APIKeyGenerator.generate()
            XCTAssertEqual(key.count, 43)
            XCTAssertTrue(key.allSatisfy(allowed.contains), key)
        }
    }

    func testTwoKeysDiffer() {
        XCTAssertNotEqual(APIKeyGenerator.generate(), APIKeyGenerator.generate())
    }

    func testKeyDecodesTo32Bytes() throws {
        var base64 = APIKeyGenerator.generate().replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += "="
        XCTAssertEqual(try XCTUnwrap(Data(base64Encoded: base64)).count, 32)
    }

    func testHexPrefixIsTheDescriptionsStart() {
        let digest = SecretDigest.of("abc")
        XCTAssertEqual(digest.hex(digits: 12), "ba7816bf8f01")
        XCTAssertEqual(digest.hex(digits: 17), "ba7816bf8f01cfea4")
        XCTAssertEqual("sha256:" + digest.hex(digits: 64), digest.description)
        XCTAssertEqual(digest.hex(digits: 0), "")
        XCTAssertEqual(digest.hex(digits: 99).count, 64)
    }
}

final class DigestMemoTests: XCTestCase {
    func testTheMemoAlwaysAnswersTheDigestOfWhatItIsGiven() {
        let memo = DigestMemo()
        for secret in ["key-a", "key-a", "key-b", "key-a", "", "key-c-longer", "key-c-longer", "key-d-longer"] {
            XCTAssertEqual(memo.digest(of: secret), SecretDigest.of(secret), secret)
        }
    }
}
