import XCTest

@testable import GatehouseCore

final class CredentialExtractorTests: XCTestCase {
    let disabled = CredentialExtractor(queryAPIKeyEnabled: false)
    let enabled = CredentialExtractor(queryAPIKeyEnabled: true)
    let noQuery = QueryString(nil)

    func extract(
        _ headers: [(name: String, value: String)], query: String? = nil, queryEnabled: Bool = false
    ) -> Result<[PresentedCredential], AuthenticationFailure> {
        (queryEnabled ? enabled : disabled).extract(headers: headers, query: QueryString(query))
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
