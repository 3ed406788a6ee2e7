import Crypto
import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Tokens from the JSON API, and every way a token must be refused — each forged here.
final class JSONWebTokenTests: XCTestCase {
    // MARK: Helpers (forging lives in TokenForge)

    func secret(_ fx: IdentityFixture) throws -> [UInt8] {
        Array(try XCTUnwrap(FileManager.default.contents(atPath: fx.directory + "/jwt.secret")))
    }

    func status(_ fx: IdentityFixture, bearer token: String) throws -> Int {
        try fx.send("GET", "/api/printer", headers: ["Authorization: Bearer \(token)"]).status
    }

    /// The payload of a genuine access token, re-signed after `edit`.
    func resigned(_ fx: IdentityFixture, _ token: String, header: [String: Any] = ["alg": "HS256", "typ": "JWT"], sha512: Bool = false, edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        var payload = TokenForge.decode(token.split(separator: ".")[1])
        edit(&payload)
        return TokenForge.forge(header: header, payload: payload, secret: try secret(fx), sha512: sha512)
    }

    // MARK: Tests

    func testLoginReturnsTokensAndTheAccessTokenAuthenticates() async throws {
        try await IdentityFixture.with { fx in
            let (response, json) = try fx.api("POST", "login", json: ["username": "alice", "password": IdentityFixture.password])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(json["username"] as? String, "alice")
            XCTAssertEqual(json["action"] as? String, "user_logged_in")
            let access = try XCTUnwrap(json["token"] as? String)
            XCTAssertNotNil(json["refresh_token"] as? String)
            XCTAssertNil(IdentityFixture.sessionCookie(in: response), "no cookie unless asked")
            let claims = TokenForge.decode(access.split(separator: ".")[1])
            XCTAssertEqual(claims["iss"] as? String, "gatehouse")
            XCTAssertEqual(claims["sub"] as? String, "alice")
            XCTAssertEqual(claims["type"] as? String, "access")
            XCTAssertEqual(claims["roles"] as? [String], ["operator"])
            XCTAssertNotNil(claims["jti"] as? String)
            XCTAssertEqual((claims["exp"] as? Double).map { $0 - ((claims["iat"] as? Double) ?? 0) }, 3600)

            XCTAssertEqual(try status(fx, bearer: access), 200)
            let seen = try XCTUnwrap(fx.upstream.requests.last)
            XCTAssertEqual(seen.values("X-Remote-User"), ["alice"])
            XCTAssertEqual(seen.values("X-Remote-Auth"), ["jwt"])
            XCTAssertEqual(seen.values("Authorization"), [], "the token is not forwarded")

            let (withCookie, _) = try fx.api("POST", "login", json: ["username": "alice", "password": IdentityFixture.password, "session": true])
            XCTAssertNotNil(IdentityFixture.sessionCookie(in: withCookie), "a session cookie when asked")
        }
    }

    func testForgedAndTamperedTokensAreRefused() async throws {
        try await IdentityFixture.with { fx in
            let (access, refresh) = try fx.login()
            let payload = TokenForge.decode(access.split(separator: ".")[1])
            let parts = access.split(separator: ".").map(String.init)
            var cases: [(String, String)] = [
                ("alg none", TokenForge.forge(header: ["alg": "none", "typ": "JWT"], payload: payload, secret: nil)),
                ("alg None with the real signature", TokenForge.b64urlJSON(["alg": "None"]) + "." + parts[1] + "." + parts[2]),
                ("HS512 with the real secret", try resigned(fx, access, header: ["alg": "HS512", "typ": "JWT"], sha512: true)),
                ("RS256 header, HMAC signature", try resigned(fx, access, header: ["alg": "RS256", "typ": "JWT"])),
                ("kid trick", try resigned(fx, access, header: ["alg": "HS256", "typ": "JWT", "kid": "../../dev/null"])),
                ("jku", try resigned(fx, access, header: ["alg": "HS256", "jku": "http://127.0.0.1:1/keys"])),
                ("edited subject, old signature", parts[0] + "." + TokenForge.b64urlJSON(payload.merging(["sub": "root"]) { $1 }) + "." + parts[2]),
                ("edited roles, old signature", parts[0] + "." + TokenForge.b64urlJSON(payload.merging(["roles": ["admin"]]) { $1 }) + "." + parts[2]),
                ("signed with another secret", TokenForge.forge(header: ["alg": "HS256", "typ": "JWT"], payload: payload, secret: Array(repeating: 7, count: 32))),
                ("truncated", String(access.dropLast(5))),
                ("no signature", parts[0] + "." + parts[1] + "."),
                ("wrong issuer", try resigned(fx, access) { $0["iss"] = "someone-else" }),
                ("wrong audience", try resigned(fx, access) { $0["aud"] = "other-service" }),
                ("not yet valid", try resigned(fx, access) { $0["nbf"] = fx.clock.now().timeIntervalSince1970 + 120 }),
                ("issued in the future", try resigned(fx, access) { $0["iat"] = fx.clock.now().timeIntervalSince1970 + 3600 }),
                ("unknown jti (not issued here)", try resigned(fx, access) { $0["jti"] = "made-up" }),
                ("refresh token as access token", refresh),
                ("refresh token relabelled access", try resigned(fx, refresh) { $0["type"] = "access" }),
                ("unknown type", try resigned(fx, access) { $0["type"] = "admin" }),
                ("bad subject characters", try resigned(fx, access) { $0["sub"] = "alice\r\nX-Remote-User: root" }),
            ]
            cases.append(("garbage with two dots", "eyJ.eyJ.abc"))
            for (name, token) in cases {
                XCTAssertEqual(try status(fx, bearer: token), 401, name)
            }
            XCTAssertTrue(fx.upstream.requests.isEmpty, "no forged token reached the device")
            XCTAssertEqual(try status(fx, bearer: access), 200, "the genuine token still works")
            XCTAssertEqual(try status(fx, bearer: try resigned(fx, access)), 200, "re-signing the same claims with the real secret is the control case")
        }
    }

    func testExpiryWithThirtySecondsLeeway() async throws {
        try await IdentityFixture.with { fx in
            let (access, _) = try fx.login()
            fx.clock.advance(3600 + 20)
            XCTAssertEqual(try status(fx, bearer: access), 200, "within the leeway")
            fx.clock.advance(15)
            XCTAssertEqual(try status(fx, bearer: access), 401, "expired")
        }
    }

    func testRevokedTokensAndTheirUsersState() async throws {
        try await IdentityFixture.with { fx in
            let (access, _) = try fx.login()
            _ = try fx.store.setDisabled(true, forUser: "alice")
            XCTAssertEqual(try status(fx, bearer: access), 401, "disabled user")
            _ = try fx.store.setDisabled(false, forUser: "alice")
            XCTAssertEqual(try status(fx, bearer: access), 200)
            let (out, _) = try fx.api("POST", "logout", headers: ["Authorization: Bearer \(access)"])
            XCTAssertEqual(out.status, 200)
            XCTAssertEqual(try status(fx, bearer: access), 401, "logged out: revoked")

            let (second, _) = try fx.login()
            _ = try fx.store.deleteUser(named: "alice")
            XCTAssertEqual(try status(fx, bearer: second), 401, "deleted user")
        }
    }

    func testRefreshRotatesAndReuseRevokesTheFamily() async throws {
        try await IdentityFixture.with { fx in
            let (access1, refresh1) = try fx.login()
            let (r1, j1) = try fx.api("POST", "refresh_jwt", json: ["refresh_token": refresh1])
            XCTAssertEqual(r1.status, 200)
            XCTAssertEqual(j1["action"] as? String, "user_jwt_refresh")
            let access2 = try XCTUnwrap(j1["token"] as? String)
            let refresh2 = try XCTUnwrap(j1["refresh_token"] as? String)
            XCTAssertNotEqual(refresh2, refresh1, "each use returns a new refresh token")
            XCTAssertEqual(try status(fx, bearer: access2), 200)

            let (reuse, reuseJSON) = try fx.api("POST", "refresh_jwt", json: ["refresh_token": refresh1])
            XCTAssertEqual(reuse.status, 401, "a spent refresh token")
            XCTAssertTrue((reuseJSON["detail"] as? String)?.contains("used before") ?? false)
            XCTAssertEqual(try status(fx, bearer: access2), 401, "the whole family is revoked")
            XCTAssertEqual(try status(fx, bearer: access1), 401)
            XCTAssertEqual(try fx.api("POST", "refresh_jwt", json: ["refresh_token": refresh2]).0.status, 401, "the thief's copy is dead too")

            let (other, _) = try fx.login()
            XCTAssertEqual(try status(fx, bearer: other), 200, "another sign-in is not touched")
            XCTAssertEqual(try fx.api("POST", "refresh_jwt", json: ["refresh_token": other]).0.status, 401, "an access token is not a refresh token")
        }
    }

    func testLongLivedTokenNeverExpiresUntilRevoked() async throws {
        try await IdentityFixture.with { fx in
            let signed = try await fx.accounts.issueLongLivedToken(for: "alice", lifetime: nil, description: "camera", now: fx.clock.now())
            XCTAssertNil(TokenForge.decode(signed.token.split(separator: ".")[1])["exp"])
            fx.clock.advance(10 * 365 * 86400)
            XCTAssertEqual(try status(fx, bearer: signed.token), 200)
            XCTAssertTrue(try fx.store.revokeToken(jti: signed.record.jti))
            XCTAssertEqual(try status(fx, bearer: signed.token), 401)
        }
    }
}
