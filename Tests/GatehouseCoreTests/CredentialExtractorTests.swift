import Foundation
import XCTest

@testable import GatehouseCore

final class CredentialExtractorTests: XCTestCase {
    let disabled = CredentialExtractor(queryAPIKeyEnabled: false)
    let enabled = CredentialExtractor(queryAPIKeyEnabled: true)
    let noQuery = QueryString(nil)

    func extract(
        _ headers: [(name: String, value: String)], query: String? = nil, queryEnabled: Bool = false
    ) -> Result<[PresentedCredential], AuthenticationFailure> {
        (queryEnabled ? enabled : disabled).extract(Fixture.head(headers), query: QueryString(query))
    }

    func testNoCredentialYieldsEmptyList() {
        XCTAssertEqual(extract([("Host", "device"), ("Accept", "*/*")]), .success([]))
    }

    func testXApiKeyHeaderIsRead() {
        XCTAssertEqual(extract([("X-Api-Key", "K1")]), .success([PresentedCredential(secret: "K1", source: .apiKeyHeader)]))
    }

    func testXApiKeyHeaderNameIsCaseInsensitive() {
        for name in ["x-api-key", "X-API-KEY", "x-Api-kEy"] {
            XCTAssertEqual(extract([(name, "K1")]), .success([PresentedCredential(secret: "K1", source: .apiKeyHeader)]), name)
        }
    }

    func testXApiKeyValueIsTrimmedOfSpacesAndTabs() {
        XCTAssertEqual(extract([("X-Api-Key", " \tK1 ")]), .success([PresentedCredential(secret: "K1", source: .apiKeyHeader)]))
    }

    func testEmptyXApiKeyIsMalformed() {
        guard case .failure(.malformedAuthorization) = extract([("X-Api-Key", "  ")]) else {
            return XCTFail("an empty X-Api-Key should be malformed")
        }
    }

    func testBearerTokenIsRead() {
        XCTAssertEqual(extract([("Authorization", "Bearer K1")]), .success([PresentedCredential(secret: "K1", source: .authorizationBearer)]))
    }

    func testTokenSchemeIsRead() {
        XCTAssertEqual(extract([("Authorization", "Token K1")]), .success([PresentedCredential(secret: "K1", source: .authorizationToken)]))
    }

    func testSchemeIsCaseInsensitive() {
        XCTAssertEqual(extract([("authorization", "bEARER K1")]), .success([PresentedCredential(secret: "K1", source: .authorizationBearer)]))
        XCTAssertEqual(extract([("AUTHORIZATION", "TOKEN K1")]), .success([PresentedCredential(secret: "K1", source: .authorizationToken)]))
    }

    func testExtraSpacesAroundTheTokenAreIgnored() {
        XCTAssertEqual(extract([("Authorization", "  Bearer   K1  ")]), .success([PresentedCredential(secret: "K1", source: .authorizationBearer)]))
    }

    private func basic(_ encoded: String) -> Result<[PresentedCredential], AuthenticationFailure> {
        CredentialExtractor(queryAPIKeyEnabled: false, basicAuthEnabled: true).extract(Fixture.head([("Authorization", "Basic " + encoded)]), query: noQuery)
    }

    private func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    func testBasicIsReadWhenEnabled() {
        XCTAssertEqual(basic(b64("alice:s3cret")), .success([PresentedCredential(secret: "s3cret", source: .authorizationBasic, basicUser: "alice")]))
        // The password may hold colons; the user name ends at the first.
        XCTAssertEqual(basic(b64("alice:a:b:c")), .success([PresentedCredential(secret: "a:b:c", source: .authorizationBasic, basicUser: "alice")]))
        // An API key as the password, no user name.
        XCTAssertEqual(basic(b64(":KEY")), .success([PresentedCredential(secret: "KEY", source: .authorizationBasic, basicUser: "")]))
        XCTAssertEqual(basic(b64("zoë:pässwörd")), .success([PresentedCredential(secret: "pässwörd", source: .authorizationBasic, basicUser: "zoë")]))
        // Without padding, as some clients send it.
        XCTAssertEqual(basic("YWxpY2U6eA"), .success([PresentedCredential(secret: "x", source: .authorizationBasic, basicUser: "alice")]))
    }

    func testMalformedBasicIsRefusedNotIgnored() {
        let cases: [(String, String)] = [
            ("no colon", b64("alice")),
            ("empty password", b64("alice:")),
            ("not base64", "alice:secret"),
            ("base64url alphabet", "YWxpY2U6-_8"),
            ("padding in the middle", "YW==xpY2U6eA"),
            ("too much padding", "YWxpY2U6eA===="),
            ("a lone sixth-bit group", "YWxpY2U6e"),
            ("bits left over", "YWxpY2U6eB=="),
            ("CR LF in the user name", b64("alice\r\nX-Remote-User: root:x")),
            ("NUL in the password", b64("alice:a\u{0}b")),
            ("DEL", b64("alice:a\u{7F}")),
            ("C1 control", b64("alice:a\u{85}")),
            ("not UTF-8", Data([0x61, 0x3A, 0xC0, 0xAF]).base64EncodedString()),
            ("over 4 KiB", b64("alice:" + String(repeating: "x", count: 4096))),
        ]
        for (name, encoded) in cases {
            guard case .failure(.malformedAuthorization) = basic(encoded) else { return XCTFail("\(name): \(basic(encoded))") }
        }
    }

    func testBasicPasswordDifferentFromAnotherCredentialConflicts() {
        let extractor = CredentialExtractor(queryAPIKeyEnabled: false, basicAuthEnabled: true)
        let headers = [("X-Api-Key", "K1"), ("Authorization", "Basic " + b64("alice:K2"))]
        XCTAssertEqual(extractor.extract(Fixture.head(headers), query: noQuery), .failure(.conflictingCredentials))
        let same = [("X-Api-Key", "K1"), ("Authorization", "Basic " + b64("x:K1"))]
        XCTAssertEqual(extractor.extract(Fixture.head(same), query: noQuery).map(\.count), .success(2))
    }

    func testBasicSchemeIsUnsupported() {
        XCTAssertEqual(extract([("Authorization", "Basic YWxpY2U6c2VjcmV0")]), .failure(.unsupportedAuthorizationScheme("Basic")))
    }

    func testUnprintableSchemeIsNotEchoed() {
        XCTAssertEqual(extract([("Authorization", "B\u{e9}arer K1")]), .failure(.unsupportedAuthorizationScheme("?")))
    }

    func testEmptyAuthorizationIsMalformed() {
        guard case .failure(.malformedAuthorization) = extract([("Authorization", "")]) else {
            return XCTFail("an empty Authorization should be malformed")
        }
    }

    func testBearerWithoutTokenIsMalformed() {
        guard case .failure(.malformedAuthorization) = extract([("Authorization", "Bearer")]) else {
            return XCTFail("'Bearer' alone should be malformed")
        }
        guard case .failure(.malformedAuthorization) = extract([("Authorization", "Bearer   ")]) else {
            return XCTFail("'Bearer' and spaces should be malformed")
        }
    }

    func testTokenWithInnerSpaceIsMalformed() {
        guard case .failure(.malformedAuthorization) = extract([("Authorization", "Bearer K1 K2")]) else {
            return XCTFail("a token with a space should be malformed")
        }
    }

    func testMalformedAuthorizationBeatsAValidXApiKey() {
        guard case .failure(.malformedAuthorization) = extract([("X-Api-Key", "K1"), ("Authorization", "Bearer")]) else {
            return XCTFail("a malformed Authorization is never ignored")
        }
    }

    func testQueryAPIKeyIsIgnoredWhenDisabled() {
        XCTAssertEqual(extract([], query: "apikey=K1", queryEnabled: false), .success([]))
    }

    func testQueryAPIKeyIsReadWhenEnabled() {
        XCTAssertEqual(
            extract([], query: "a=1&apikey=K1&b=2", queryEnabled: true),
            .success([PresentedCredential(secret: "K1", source: .apiKeyQueryParameter)]))
    }

    func testPercentEncodedQueryParameterNameIsRecognised() {
        XCTAssertEqual(
            extract([], query: "%61pikey=K1", queryEnabled: true),
            .success([PresentedCredential(secret: "K1", source: .apiKeyQueryParameter)]))
    }

    func testPercentEncodedQueryValueIsDecoded() {
        XCTAssertEqual(
            extract([], query: "apikey=K%2D1", queryEnabled: true),
            .success([PresentedCredential(secret: "K-1", source: .apiKeyQueryParameter)]))
    }

    func testEmptyQueryAPIKeyIsMalformedWhenEnabled() {
        guard case .failure(.malformedAuthorization) = extract([], query: "apikey=", queryEnabled: true) else {
            return XCTFail("an empty apikey should be malformed")
        }
    }

    func testTwoDifferentKeysConflict() {
        XCTAssertEqual(extract([("X-Api-Key", "K1"), ("Authorization", "Bearer K2")]), .failure(.conflictingCredentials))
    }

    func testTwoDifferentXApiKeyHeadersConflict() {
        XCTAssertEqual(extract([("X-Api-Key", "K1"), ("x-api-key", "K2")]), .failure(.conflictingCredentials))
    }

    func testHeaderAndQueryKeysThatDifferConflict() {
        XCTAssertEqual(extract([("X-Api-Key", "K1")], query: "apikey=K2", queryEnabled: true), .failure(.conflictingCredentials))
    }

    func testDifferentQueryKeyIsNoConflictWhenQueryIsDisabled() {
        XCTAssertEqual(
            extract([("X-Api-Key", "K1")], query: "apikey=K2", queryEnabled: false),
            .success([PresentedCredential(secret: "K1", source: .apiKeyHeader)]))
    }

    func testSameKeyTwiceIsAccepted() {
        XCTAssertEqual(
            extract([("X-Api-Key", "K1"), ("Authorization", "Token K1")], query: "apikey=K1", queryEnabled: true),
            .success([
                PresentedCredential(secret: "K1", source: .apiKeyHeader),
                PresentedCredential(secret: "K1", source: .authorizationToken),
                PresentedCredential(secret: "K1", source: .apiKeyQueryParameter),
            ]))
    }

    func testCredentialsAreListedInFixedOrder() {
        let result = extract([("Authorization", "Bearer K1"), ("X-Api-Key", "K1")])
        XCTAssertEqual(try result.get().map(\.source), [.apiKeyHeader, .authorizationBearer])
    }

    func testFailureStatusesAre401() {
        for failure: AuthenticationFailure in [
            .missingCredential, .malformedAuthorization(reason: "x"), .unsupportedAuthorizationScheme("Basic"), .conflictingCredentials,
        ] {
            XCTAssertEqual(failure.status, 401, "\(failure)")
        }
    }
}
