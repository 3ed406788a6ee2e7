import Foundation
import XCTest

@testable import GatehouseCore

final class APIKeyAuthenticatorTests: XCTestCase {
    let now = Fixture.date("2026-06-01T12:00:00Z")
    let validKey = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd"

    func authenticator(_ records: APIKeyRecord...) -> APIKeyAuthenticator {
        APIKeyAuthenticator(keys: records)
    }

    func record(
        name: String = "slicer", user: String = "alice", roles: [String] = ["admin", "ops"], key: String? = nil,
        readOnly: Bool = false, expires: Date? = nil, disabled: Bool = false
    ) -> APIKeyRecord {
        APIKeyRecord(
            name: name, user: user, roles: roles, digest: SecretDigest.of(key ?? validKey), readOnly: readOnly, expires: expires,
            disabled: disabled)
    }

    func testValidKeyYieldsItsIdentity() {
        let result = authenticator(record()).authenticate(key: validKey, now: now)
        XCTAssertEqual(result, .success(Identity(user: "alice", roles: ["admin", "ops"], method: .apiKey, readOnly: false, source: "slicer")))
    }

    func testIdentityCarriesUserRolesMethodAndKeyName() throws {
        let identity = try authenticator(record(name: "printer", user: "bob", roles: ["viewer"])).authenticate(key: validKey, now: now).get()
        XCTAssertEqual(identity.user, "bob")
        XCTAssertEqual(identity.roles, ["viewer"])
        XCTAssertEqual(identity.method, .apiKey)
        XCTAssertEqual(identity.method.rawValue, "api_key")
        XCTAssertEqual(identity.source, "printer")
    }

    func testReadOnlyKeyYieldsReadOnlyIdentity() throws {
        XCTAssertTrue(try authenticator(record(readOnly: true)).authenticate(key: validKey, now: now).get().readOnly)
        XCTAssertFalse(try authenticator(record(readOnly: false)).authenticate(key: validKey, now: now).get().readOnly)
    }

    func testUnknownKeyIsRefused() {
        XCTAssertEqual(authenticator(record()).authenticate(key: "something-else", now: now), .failure(.unknownAPIKey))
    }

    func testNearMissKeyIsRefusedAsUnknown() {
        let nearMiss = String(validKey.dropLast()) + (validKey.last == "d" ? "e" : "d")
        XCTAssertNotEqual(nearMiss, validKey)
        XCTAssertEqual(authenticator(record()).authenticate(key: nearMiss, now: now), .failure(.unknownAPIKey))
    }

    func testKeyWithExtraWhitespaceIsRefusedAsUnknown() {
        XCTAssertEqual(authenticator(record()).authenticate(key: validKey + " ", now: now), .failure(.unknownAPIKey))
    }

    func testEmptyKeyIsRefusedAsUnknown() {
        XCTAssertEqual(authenticator(record()).authenticate(key: "", now: now), .failure(.unknownAPIKey))
    }

    func testNoConfiguredKeysRefusesEverything() {
        XCTAssertEqual(APIKeyAuthenticator(keys: []).authenticate(key: validKey, now: now), .failure(.unknownAPIKey))
    }

    func testExpiredKeyIsRefused() {
        let result = authenticator(record(expires: now.addingTimeInterval(-1))).authenticate(key: validKey, now: now)
        XCTAssertEqual(result, .failure(.expiredAPIKey))
    }

    func testKeyExpiringExactlyNowIsRefused() {
        XCTAssertEqual(authenticator(record(expires: now)).authenticate(key: validKey, now: now), .failure(.expiredAPIKey))
    }

    func testKeyExpiringInTheFutureIsAccepted() {
        XCTAssertNoThrow(try authenticator(record(expires: now.addingTimeInterval(1))).authenticate(key: validKey, now: now).get())
    }

    func testDisabledKeyIsRefused() {
        XCTAssertEqual(authenticator(record(disabled: true)).authenticate(key: validKey, now: now), .failure(.disabledAPIKey))
    }

    func testDisabledAndExpiredKeyIsReportedAsDisabled() {
        let result = authenticator(record(expires: now.addingTimeInterval(-60), disabled: true)).authenticate(key: validKey, now: now)
        XCTAssertEqual(result, .failure(.disabledAPIKey))
    }

    func testEachOfSeveralKeysFindsItsOwnRecord() throws {
        let keys = APIKeyAuthenticator(keys: [
            record(name: "one", user: "u1", key: "key-one"),
            record(name: "two", user: "u2", key: "key-two"),
            record(name: "three", user: "u3", key: "key-three"),
        ])
        XCTAssertEqual(try keys.authenticate(key: "key-two", now: now).get().source, "two")
        XCTAssertEqual(try keys.authenticate(key: "key-three", now: now).get().user, "u3")
        XCTAssertEqual(try keys.authenticate(key: "key-one", now: now).get().source, "one")
    }

    func testFirstRecordWinsWhenTwoShareADigest() throws {
        let keys = APIKeyAuthenticator(keys: [record(name: "first", user: "u1"), record(name: "second", user: "u2")])
        XCTAssertEqual(try keys.authenticate(key: validKey, now: now).get().source, "first")
    }

    func testFailuresAre401() {
        for failure: AuthenticationFailure in [.unknownAPIKey, .expiredAPIKey, .disabledAPIKey] {
            XCTAssertEqual(failure.status, 401, "\(failure)")
        }
    }

    func testFailureDetailNeverContainsTheKey() {
        for failure: AuthenticationFailure in [.unknownAPIKey, .expiredAPIKey, .disabledAPIKey] {
            XCTAssertFalse(failure.detail.contains(validKey))
        }
    }
}

final class IdentityNameTests: XCTestCase {
    func testLettersDigitsAndDotUnderscoreAtDashAreValid() {
        XCTAssertTrue(Identity.isValidName("alice.smith_2@example-lan"))
    }

    func testSixtyFourCharactersIsTheLimit() {
        XCTAssertTrue(Identity.isValidName(String(repeating: "a", count: 64)))
        XCTAssertFalse(Identity.isValidName(String(repeating: "a", count: 65)))
    }

    func testEmptySpaceCommaAndNonASCIIAreInvalid() {
        for name in ["", "alice smith", "alice,bob", "ali\u{e7}e", "a:b", "a\tb", "a/b"] {
            XCTAssertFalse(Identity.isValidName(name), name)
        }
    }
}
