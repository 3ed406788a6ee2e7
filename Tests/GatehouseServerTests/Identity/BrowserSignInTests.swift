import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// The login page, its redirects, the session cookie and its life, logout and the same-site rule,
/// against a real SQLite store and a recording upstream.
final class BrowserSignInTests: XCTestCase {
    static let browserAccept = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

    func testLoginPageIsAPlainFormWithProtectiveHeaders() async throws {
        try await IdentityFixture.with { fx in
            let page = try fx.send("GET", "/_gatehouse/login?next=%2Fwebcam%2F%22%3E%3Cscript%3E")
            XCTAssertEqual(page.status, 200)
            XCTAssertEqual(page.header("Content-Type"), "text/html; charset=utf-8")
            XCTAssertTrue(page.bodyText.contains("<form method=\"post\" action=\"/_gatehouse/login\">"))
            XCTAssertTrue(page.bodyText.contains("name=\"remember\""))
            XCTAssertFalse(page.bodyText.lowercased().contains("<script"), "no script, and the next parameter is not reflected raw")
            XCTAssertTrue(page.header("Content-Security-Policy")?.contains("default-src 'none'") ?? false)
            XCTAssertEqual(page.header("X-Frame-Options"), "DENY")
            XCTAssertEqual(page.header("Referrer-Policy"), "no-referrer")
            XCTAssertEqual(page.header("Cache-Control"), "no-store")
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }

    func testBrowserNavigationIsSentToLoginAndReturnsThereWithACookieJar() async throws {
        try await IdentityFixture.with { fx in
            let first = try fx.send("GET", "/webcam/?action=stream", headers: [Self.browserAccept])
            XCTAssertEqual(first.status, 302)
            XCTAssertEqual(first.header("Location"), "/_gatehouse/login?next=/webcam/%3Faction%3Dstream")
            XCTAssertTrue(fx.upstream.requests.isEmpty, "an unauthenticated navigation never reaches the device")

            let form = "username=alice&password=correct+horse+battery+staple&next=%2Fwebcam%2F%3Faction%3Dstream"
            let login = try fx.send(
                "POST", "/_gatehouse/login",
                headers: ["Content-Type: application/x-www-form-urlencoded", "Origin: http://gatehouse.test"], body: form)
            XCTAssertEqual(login.status, 303)
            XCTAssertEqual(login.header("Location"), "/webcam/?action=stream")
            let setCookie = try XCTUnwrap(login.header("Set-Cookie"))
            XCTAssertTrue(setCookie.contains("HttpOnly"))
            XCTAssertTrue(setCookie.contains("SameSite=Lax"))
            XCTAssertTrue(setCookie.contains("Path=/"))
            XCTAssertFalse(setCookie.contains("Secure"), "plain HTTP from an untrusted peer: no Secure flag")
            XCTAssertFalse(setCookie.contains("Max-Age"), "without remember-me the cookie ends with the browser")
            let cookie = try XCTUnwrap(IdentityFixture.sessionCookie(in: login))
            XCTAssertEqual(cookie.count, 43, "256 random bits, base64url")

            let page = try fx.send("GET", "/webcam/?action=stream", headers: [Self.browserAccept, "Cookie: theme=dark; gatehouse_session=\(cookie); lang=en"])
            XCTAssertEqual(page.status, 200)
            let seen = try XCTUnwrap(fx.upstream.requests.last)
            XCTAssertEqual(seen.uri, "/webcam/?action=stream")
            XCTAssertEqual(seen.values("X-Remote-User"), ["alice"])
            XCTAssertEqual(seen.values("X-Remote-Roles"), ["operator"])
            XCTAssertEqual(seen.values("X-Remote-Auth"), ["session"])
            XCTAssertEqual(seen.values("Cookie"), ["theme=dark; lang=en"], "the device never sees Gatehouse's cookie")

            let stored = try fx.store.sessions(ofUser: "alice")
            XCTAssertEqual(stored.count, 1)
            XCTAssertNotEqual(stored[0].digest.description, cookie, "only a digest is stored")
            XCTAssertEqual(stored[0].digest, SecretDigest.of(cookie))
        }
    }

    func testNonBrowserClientsGet401NotARedirect() async throws {
        try await IdentityFixture.with { fx in
            for accept in ["Accept: */*", "Accept: application/json", "Accept: application/json, text/html;q=0.5"] {
                let r = try fx.send("GET", "/api/printer", headers: [accept])
                XCTAssertEqual(r.status, 401, accept)
            }
            XCTAssertEqual(try fx.send("POST", "/api/job", headers: [Self.browserAccept], body: "{}").status, 401, "only GET/HEAD navigations redirect")
        }
    }

    func testWrongPasswordAndUnknownUserGetTheSameMessage() async throws {
        try await IdentityFixture.with { fx in
            let (wrong, wrongCookie) = try fx.formLogin(password: "not the password at all")
            let (unknown, unknownCookie) = try fx.formLogin("mallory")
            XCTAssertEqual(wrong.status, 401)
            XCTAssertEqual(unknown.status, 401)
            XCTAssertNil(wrongCookie)
            XCTAssertNil(unknownCookie)
            XCTAssertTrue(wrong.bodyText.contains("Wrong user name or password."))
            XCTAssertEqual(wrong.bodyText, unknown.bodyText, "the page does not say which of the two was wrong")
            XCTAssertTrue(wrong.bodyText.contains("<form"), "the form is shown again")
        }
    }

    func testOpenRedirectAttemptsFallBackToRoot() async throws {
        try await IdentityFixture.with { fx in
            let attempts = [
                "//evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)", "/%2fevil.example",
                "/%5Cevil.example", "\\\\evil.example", "evil.example", "/\tevil", "http:/evil.example", "/_gatehouse/login?next=//evil",
            ]
            for next in attempts {
                let encoded = next.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                let form = "username=alice&password=correct+horse+battery+staple&next=\(encoded)"
                let r = try fx.send(
                    "POST", "/_gatehouse/login",
                    headers: ["Content-Type: application/x-www-form-urlencoded", "Origin: http://gatehouse.test"], body: form)
                XCTAssertEqual(r.status, 303, next)
                XCTAssertEqual(r.header("Location"), "/", "next=\(next) must not be followed")
            }
            let kept = "/printer/files?sort=name"
            let form = "username=alice&password=correct+horse+battery+staple&next=\(kept.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
            let r = try fx.send("POST", "/_gatehouse/login", headers: ["Content-Type: application/x-www-form-urlencoded", "Sec-Fetch-Site: same-origin"], body: form)
            XCTAssertEqual(r.header("Location"), kept)
        }
    }

    func testSecureFlagWhenATrustedProxySaysHTTPS() async throws {
        try await IdentityFixture.with({ $0.trustedProxies = [try! CIDR(parsing: "127.0.0.1/32")] }) { fx in
            let (r, _) = try fx.formLogin(extraHeaders: ["X-Forwarded-Proto: https"])
            XCTAssertTrue(r.header("Set-Cookie")?.contains("; Secure") ?? false)
            XCTAssertEqual(r.header("Strict-Transport-Security"), "max-age=31536000")
            let page = try fx.send("GET", "/_gatehouse/login", headers: ["X-Forwarded-Proto: https"])
            XCTAssertEqual(page.header("Strict-Transport-Security"), "max-age=31536000")
            XCTAssertNil(try fx.send("GET", "/_gatehouse/login").header("Strict-Transport-Security"), "not over plain HTTP")
        }
        try await IdentityFixture.with { fx in
            let (r, _) = try fx.formLogin(extraHeaders: ["X-Forwarded-Proto: https"])
            XCTAssertFalse(r.header("Set-Cookie")?.contains("Secure") ?? true, "an untrusted peer cannot claim HTTPS")
            XCTAssertNil(r.header("Strict-Transport-Security"))
        }
    }

    func testRememberMeChoosesTheLongLifetime() async throws {
        try await IdentityFixture.with { fx in
            let (r, cookie) = try fx.formLogin(remember: true)
            XCTAssertTrue(r.header("Set-Cookie")?.contains("Max-Age=604800") ?? false)
            let session = try XCTUnwrap(try fx.store.sessions(ofUser: "alice").first)
            XCTAssertEqual(session.expires.timeIntervalSince(session.created), 7 * 86400)
            XCTAssertTrue(session.remember)
            XCTAssertNotNil(cookie)
        }
    }

    func testEveryLoginGetsANewIdAndAPreLoginCookieIsNotKept() async throws {
        try await IdentityFixture.with { fx in
            let planted = "attacker-chosen-value-0123456789abcdefghijkl"
            let (r, cookie) = try fx.formLogin(extraHeaders: ["Cookie: gatehouse_session=\(planted)"])
            XCTAssertEqual(r.status, 303)
            let fresh = try XCTUnwrap(cookie)
            XCTAssertNotEqual(fresh, planted)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["Cookie: gatehouse_session=\(planted)"]).status, 401)
            let (_, second) = try fx.formLogin(extraHeaders: ["Cookie: gatehouse_session=\(fresh)"])
            XCTAssertNotEqual(second, fresh, "a new id at every login")
            XCTAssertEqual(try fx.store.sessions(ofUser: "alice").count, 2, "several sessions per user")
        }
    }

    func testLogoutEndsTheSessionAtOnce() async throws {
        try await IdentityFixture.with { fx in
            let (_, c) = try fx.formLogin()
            let cookie = try XCTUnwrap(c)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["Cookie: gatehouse_session=\(cookie)"]).status, 200)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["Cookie: gatehouse_session=\(cookie)"]).status, 200)
            XCTAssertEqual(fx.accounts.credentials.cache.count, 1, "the session is answered from memory now")
            let out = try fx.send("POST", "/_gatehouse/logout", headers: ["Cookie: gatehouse_session=\(cookie)", "Sec-Fetch-Site: same-origin"], body: "")
            XCTAssertEqual(out.status, 303)
            XCTAssertTrue(out.header("Set-Cookie")?.contains("Max-Age=0") ?? false)
            fx.upstream.reset()
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["Cookie: gatehouse_session=\(cookie)"]).status, 401)
            let nav = try fx.send("GET", "/", headers: [Self.browserAccept, "Cookie: gatehouse_session=\(cookie)"])
            XCTAssertEqual(nav.status, 302)
            XCTAssertTrue(nav.header("Set-Cookie")?.contains("Max-Age=0") ?? false, "a dead cookie is cleared")
            XCTAssertTrue(fx.upstream.requests.isEmpty)
            XCTAssertTrue(try fx.store.sessions(ofUser: "alice").isEmpty)
        }
    }

    func testIdleTimeoutEndsAnUnusedSession() async throws {
        try await IdentityFixture.with { fx in
            let (_, c) = try fx.formLogin(remember: true)
            let cookie = try XCTUnwrap(c)
            let use = { try fx.send("GET", "/api/printer", headers: ["Cookie: gatehouse_session=\(cookie)"]).status }
            fx.clock.advance(23 * 3600)
            XCTAssertEqual(try use(), 200, "used within the idle timeout")
            fx.clock.advance(23 * 3600)
            XCTAssertEqual(try use(), 200, "the last use counts, not the sign-in")
            fx.clock.advance(24 * 3600 + 1)
            XCTAssertEqual(try use(), 401, "a day without use ends it")
        }
    }

    func testAbsoluteLifetimeEndsEvenAnActiveSession() async throws {
        try await IdentityFixture.with { fx in
            let (_, c) = try fx.formLogin()
            let cookie = try XCTUnwrap(c)
            for _ in 0..<11 {
                fx.clock.advance(3600)
                XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["Cookie: gatehouse_session=\(cookie)"]).status, 200)
            }
            fx.clock.advance(3600)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["Cookie: gatehouse_session=\(cookie)"]).status, 401, "12h without remember-me")
        }
    }

    func testCrossSiteStateChangesWithTheCookieAreRefused() async throws {
        try await IdentityFixture.with { fx in
            let (_, c) = try fx.formLogin()
            let cookie = "Cookie: gatehouse_session=\(try XCTUnwrap(c))"
            let refused: [[String]] = [
                ["Origin: https://evil.example"], ["Sec-Fetch-Site: cross-site"], ["Sec-Fetch-Site: same-site"], [],
                ["Origin: null"], ["Origin: http://gatehouse.test.evil.example"], ["Sec-Fetch-Site: cross-site", "Origin: http://gatehouse.test"],
            ]
            for headers in refused {
                let r = try fx.send("POST", "/api/job", headers: [cookie] + headers, body: "{\"command\":\"start\"}")
                XCTAssertEqual(r.status, 403, "\(headers)")
            }
            XCTAssertTrue(fx.upstream.requests.isEmpty, "no cross-site request reached the device")
            XCTAssertEqual(try fx.send("POST", "/api/job", headers: [cookie, "Sec-Fetch-Site: same-origin"], body: "{}").status, 200)
            XCTAssertEqual(try fx.send("POST", "/api/job", headers: [cookie, "Origin: http://gatehouse.test"], body: "{}").status, 200)
            XCTAssertEqual(try fx.send("GET", "/api/job", headers: [cookie, "Sec-Fetch-Site: cross-site"]).status, 200, "reads are not state changes")
            XCTAssertEqual(
                try fx.send("POST", "/api/job", headers: ["X-Api-Key: \(ProxyFixture.aliceKey)", "Origin: https://evil.example"], body: "{}").status,
                200, "a header credential is exempt: a browser cannot attach it cross-site")
            let login = try fx.send(
                "POST", "/_gatehouse/login", headers: ["Content-Type: application/x-www-form-urlencoded", "Origin: https://evil.example"],
                body: "username=alice&password=correct+horse+battery+staple")
            XCTAssertEqual(login.status, 403, "no sign-in from another site (login CSRF)")
            XCTAssertNil(IdentityFixture.sessionCookie(in: login))
        }
    }

    func testDisabledOrDeletedUserLosesTheirSession() async throws {
        try await IdentityFixture.with { fx in
            let (_, c) = try fx.formLogin()
            let cookie = "Cookie: gatehouse_session=\(try XCTUnwrap(c))"
            for _ in 0..<2 { XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [cookie]).status, 200) }
            _ = try fx.store.setDisabled(true, forUser: "alice")
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [cookie]).status, 401)
            _ = try fx.store.setDisabled(false, forUser: "alice")
            let again = try fx.send("GET", "/api/printer", headers: [cookie]); XCTAssertEqual(again.status, 200, again.bodyText)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [cookie]).status, 200)
            _ = try fx.store.deleteUser(named: "alice")
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [cookie]).status, 401)
        }
    }
}
