import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Forged, tampered, spent and misplaced credentials: each is refused and the device sees nothing.
final class CredentialAttackTests: XCTestCase {
    private static let upgrade = [
        "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
    ]

    private func bearer(_ name: String, _ token: String) -> Attack {
        .request(name, "/api/printer", headers: ["Authorization: Bearer \(token)"], .refused(401))
    }

    func testForgedAndTamperedTokens() async throws {
        try await IdentityFixture.with { fx in
            let secret = Array(try XCTUnwrap(FileManager.default.contents(atPath: fx.directory + "/jwt.secret")))
            let (access, refresh) = try fx.login()
            let parts = access.split(separator: ".").map(String.init)
            let claims = TokenForge.decode(Substring(parts[1]))
            func signed(_ header: [String: Any] = ["alg": "HS256", "typ": "JWT"], key: [UInt8]? = nil, sha512: Bool = false,
                        edit: (inout [String: Any]) -> Void = { _ in }) -> String {
                var payload = claims
                edit(&payload)
                return TokenForge.forge(header: header, payload: payload, secret: key ?? secret, sha512: sha512)
            }
            let now = fx.clock.now().timeIntervalSince1970
            let attacks = [
                bearer("alg none", TokenForge.forge(header: ["alg": "none", "typ": "JWT"], payload: claims, secret: nil)),
                bearer("alg None", TokenForge.forge(header: ["alg": "None"], payload: claims, secret: nil)),
                bearer("alg none with the real signature", TokenForge.b64urlJSON(["alg": "none"]) + "." + parts[1] + "." + parts[2]),
                bearer("HS512 with the real secret", signed(["alg": "HS512", "typ": "JWT"], sha512: true)),
                bearer("RS256 header, HMAC with the secret as public key", signed(["alg": "RS256", "typ": "JWT"])),
                bearer("kid pointing at /dev/null, empty key", signed(["alg": "HS256", "kid": "../../../../dev/null"], key: [])),
                bearer("kid with the real secret", signed(["alg": "HS256", "typ": "JWT", "kid": "1"])),
                bearer("jku header", signed(["alg": "HS256", "jku": "https://evil.example/keys.json"])),
                bearer("payload edited to root, old signature", parts[0] + "." + TokenForge.b64urlJSON(claims.merging(["sub": "root"]) { $1 }) + "." + parts[2]),
                bearer("roles edited, old signature", parts[0] + "." + TokenForge.b64urlJSON(claims.merging(["roles": ["admin"]]) { $1 }) + "." + parts[2]),
                bearer("signed with another secret", signed(key: Array(repeating: 1, count: 32))),
                bearer("truncated signature", String(access.dropLast(5))),
                bearer("signature removed", parts[0] + "." + parts[1] + "."),
                bearer("two parts", parts[0] + "." + parts[1]),
                bearer("expired, re-signed", signed { $0["exp"] = now - 3600 }),
                bearer("issued in the future, re-signed", signed { $0["iat"] = now + 3600 }),
                bearer("not valid before a future time, re-signed", signed { $0["nbf"] = now + 3600 }),
                bearer("unknown token id, re-signed", signed { $0["jti"] = "not-issued" }),
                bearer("another subject, re-signed", signed { $0["sub"] = "root" }),
                bearer("wrong audience, re-signed", signed { $0["aud"] = "octoprint" }),
                bearer("refresh token as access token", refresh),
            ]
            try await launch(attacks, on: fx)
        }
    }

    func testSpentAndMisplacedCredentials() async throws {
        try await IdentityFixture.with { fx in
            let (access, _) = try fx.login()
            let (_, json) = try fx.api("GET", "oneshot_token", headers: ["Authorization: Bearer \(access)"])
            let oneShot = try XCTUnwrap(json["token"] as? String)
            XCTAssertEqual(try fx.send("GET", "/webcam/?token=\(oneShot)").status, 200)
            let (_, loggedOut) = try fx.formLogin()
            let deadCookie = try XCTUnwrap(loggedOut)
            XCTAssertEqual(try fx.send("POST", "/_gatehouse/logout", headers: ["Cookie: gatehouse_session=\(deadCookie)", "Sec-Fetch-Site: same-origin"], body: "").status, 303)
            let planted = "planted-by-attacker-0123456789abcdefghijklmn"
            let (_, fresh) = try fx.formLogin(extraHeaders: ["Cookie: gatehouse_session=\(planted)"])
            let cookie = try XCTUnwrap(fresh)
            XCTAssertNotEqual(cookie, planted)
            let key = ProxyFixture.aliceKey

            let attacks: [Attack] = [
                .request("one-shot token used again", "/webcam/?token=\(oneShot)", .refused(401)),
                .request("session cookie after logout", "/api/printer", headers: ["Cookie: gatehouse_session=\(deadCookie)"], .refused(401)),
                .request("fixation: the planted cookie", "/api/printer", headers: ["Cookie: gatehouse_session=\(planted)"], .refused(401)),
                .request("alice's cookie claiming to be root", "/api/printer", headers: ["Cookie: gatehouse_session=\(cookie)", "X-Remote-User: root"],
                    .forwarded(status: 200, check: Saw.identity("alice"))),
                .request("two different session cookies", "/api/printer", headers: ["Cookie: gatehouse_session=\(cookie); gatehouse_session=\(planted)"], .refused(401)),
                .request("API key in another case", "/api/printer", headers: ["X-Api-Key: \(key.uppercased())"], .refused(401)),
                .request("API key with a character added", "/api/printer", headers: ["X-Api-Key: \(key)x"], .refused(401)),
                .request("API key with a space inside the bearer value", "/api/printer", headers: ["Authorization: Bearer \(key) x"], .refused(401)),
                .request("API key with an encoded trailing space", "/api/printer?apikey=\(key)%20", .refused(401)),
                .request("API key followed by optional whitespace", "/api/printer", headers: ["X-Api-Key: \(key) \t"],
                    .forwarded(status: 200, check: Saw.identity("alice"))),
                .request("two different keys", "/api/printer", headers: ["X-Api-Key: \(key)", "Authorization: Bearer \(ProxyFixture.readerKey)"], .refused(401)),
                .request("empty Authorization", "/api/printer", headers: ["Authorization: "], .refused(401)),
                .request("Bearer without a token", "/api/printer", headers: ["Authorization: Bearer"], .refused(401)),
                .request("Basic while basic_auth is off", "/api/printer", headers: ["Authorization: Basic " + Data("alice:\(IdentityFixture.password)".utf8).base64EncodedString()], .refused(401)),
                .request("Digest scheme", "/api/printer", headers: ["Authorization: Digest username=\"alice\""], .refused(401)),
                .request("empty X-Api-Key", "/api/printer", headers: ["X-Api-Key:"], .refused(401)),
                .request("cross-site WebSocket hijacking with the session cookie", "/websocket",
                    headers: ["Cookie: gatehouse_session=\(cookie)", "Origin: https://evil.example"] + Self.upgrade, .refused(403)),
                .request("WebSocket with the session cookie and no Origin", "/websocket",
                    headers: ["Cookie: gatehouse_session=\(cookie)"] + Self.upgrade, .refused(403)),
                .request("WebSocket with the session cookie, Sec-Fetch-Site cross-site", "/websocket",
                    headers: ["Cookie: gatehouse_session=\(cookie)", "Origin: http://gatehouse.test", "Sec-Fetch-Site: cross-site"] + Self.upgrade,
                    .refused(403)),
                .request("cross-site POST with the session cookie", "/api/job", method: "POST",
                    headers: ["Cookie: gatehouse_session=\(cookie)", "Origin: https://evil.example"], body: "{}", .refused(403)),
            ]
            try await launch(attacks, on: fx)
        }
    }
}

/// HTTP Basic with `basic_auth: true`: guesses, malformed values and lockout dodges.
final class BasicAuthAttackTests: XCTestCase {
    private static func basic(_ pair: String) -> [String] { ["Authorization: Basic " + Data(pair.utf8).base64EncodedString()] }

    func testBasicGuessesAndTricks() async throws {
        try await IdentityFixture.with({ $0.basicAuth = true }) { fx in
            let password = IdentityFixture.password
            let attacks: [Attack] = [
                .request("wrong password", "/api/printer", headers: Self.basic("alice:guess"), .refused(401)),
                .request("unknown user", "/api/printer", headers: Self.basic("mallory:\(password)"), .refused(401)),
                .request("user name in another case", "/api/printer", headers: Self.basic("ALICE:\(password)"), .refused(401)),
                .request("password with a trailing space", "/api/printer", headers: Self.basic("alice:\(password) "), .refused(401)),
                .request("empty password", "/api/printer", headers: Self.basic("alice:"), .refused(401)),
                .request("CRLF in the user name", "/api/printer", headers: Self.basic("alice\r\nX-Remote-User: root:\(password)"), .refused(401)),
                .request("NUL after the user name", "/api/printer", headers: Self.basic("alice\u{0}:\(password)"), .refused(401)),
                .request("not base64", "/api/printer", headers: ["Authorization: Basic alice:\(password)"], .refused(401)),
                .request("Basic without a value", "/api/printer", headers: ["Authorization: Basic"], .refused(401)),
                .request("Basic and a different API key", "/api/printer", headers: Self.basic("alice:\(password)") + ["X-Api-Key: \(ProxyFixture.readerKey)"],
                    .refused(401)),
                .request("two Basic headers for different users", "/api/printer", headers: Self.basic("alice:\(password)") + Self.basic("root:\(password)"),
                    .refused(401)),
                .request("cross-site POST with a right password", "/api/job", method: "POST",
                    headers: Self.basic("alice:\(password)") + ["Origin: https://evil.example"], body: "{}", .refused(403)),
                .request("cross-site WebSocket with a right password", "/ws",
                    headers: Self.basic("alice:\(password)") + ["Origin: https://evil.example", "Connection: Upgrade", "Upgrade: websocket",
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"], .refused(403)),
            ]
            try await launch(attacks, on: fx)
        }
    }

    func testTheLockoutCannotBeDodged() async throws {
        try await IdentityFixture.with({ $0.basicAuth = true }) { fx in
            let password = IdentityFixture.password
            // Five guesses from one address, each under another spelling of the name and another
            // claimed client address: the address is locked all the same.
            let guesses: [Attack] = ["alice", "ALICE", "Alice", "alicE", "aLiCe"].enumerated().map { i, name in
                .request("guess as \(name)", "/api/printer", headers: Self.basic("\(name):guess\(i)") + ["X-Forwarded-For: 203.0.113.\(i)"], .refused(401))
            }
            try await launch(guesses, on: fx)
            let dodges: [Attack] = [
                .request("right password from the locked address, X-Forwarded-For from an untrusted peer", "/api/printer",
                    headers: Self.basic("alice:\(password)") + ["X-Forwarded-For: 198.51.100.7"], .refused(429)),
                .request("right password as root from the locked address", "/api/printer", headers: Self.basic("root:\(password)"), .refused(429)),
            ]
            try await launch(dodges, on: fx)
        }
    }
}

/// Credentials in the query string are removed from the access log as from the forwarded URL.
final class AccessLogSecrecyTests: XCTestCase {
    func testQueryCredentialsNeverReachTheLog() async throws {
        let log = CapturedLog()
        let fx = try await ProxyFixture(log: log) { config in
            config.accessLog = true
            config.queryAPIKey = true
        }
        do {
            try check(fx, log)
        } catch {
            await fx.stop()
            throw error
        }
        await fx.stop()
    }

    private func check(_ fx: ProxyFixture, _ log: CapturedLog) throws {
        let key = ProxyFixture.aliceKey
        XCTAssertEqual(try AuthTest.send(fx, "GET", "/webcam/?action=stream&apikey=\(key)").status, 200)
        XCTAssertEqual(try AuthTest.send(fx, "GET", "/webcam/?apikey=wrong-key-0123456789&token=made-up-token-0123").status, 401)
        XCTAssertEqual(try AuthTest.send(fx, "GET", "/api/job", ["X-Api-Key: \(key)", "Authorization: Bearer \(key)"]).status, 200)
        let lines = log.all
        XCTAssertTrue(lines.contains { $0.contains("GET /webcam/ 200 user=alice") }, "\(lines)")
        XCTAssertTrue(lines.contains { $0.contains("GET /webcam/ 401") }, "\(lines)")
        for secret in [key, "wrong-key-0123456789", "made-up-token-0123"] {
            XCTAssertFalse(lines.contains { $0.contains(secret) }, "the log holds \(secret)")
        }
    }
}
