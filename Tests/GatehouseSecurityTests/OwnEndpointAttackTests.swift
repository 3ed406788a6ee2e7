import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Gatehouse's own endpoints under attack from other sites' pages (login CSRF through the JSON
/// API, cross-site logout, contradicting headers), the lockout from a client whose address
/// cannot be told, and what a trusted proxy says about the client.
final class OwnEndpointAttackTests: XCTestCase {
    private static let credentials = "{\"username\":\"alice\",\"password\":\"\(IdentityFixture.password)\",\"session\":true,\"x\":\"=\"}"

    /// `POST /_gatehouse/api/login` with the given header lines and body.
    private static func login(_ name: String, _ headers: [String], body: String = credentials, _ expectation: Expectation) -> Attack {
        .request(name, "/_gatehouse/api/login", method: "POST", headers: headers, body: body, expectation)
    }

    private static let noCookie: @Sendable (RawResponse) -> String? = { response in
        response.headers.contains { $0.name.lowercased() == "set-cookie" } ? "a cookie was set" : nil
    }

    func testLoginCSRFThroughTheJSONAPIIsRefused() async throws {
        let evil = "Origin: https://evil.example"
        let attacks: [Attack] = [
            // What an HTML form with enctype=text/plain on another site sends.
            Self.login("text/plain from another site", ["Content-Type: text/plain", evil], .answered(403, check: Self.noCookie)),
            Self.login("text/plain, cross-site fetch", ["Content-Type: text/plain", "Sec-Fetch-Site: cross-site"], .answered(403, check: Self.noCookie)),
            Self.login("form encoding from another site", ["Content-Type: application/x-www-form-urlencoded", evil], .answered(403, check: Self.noCookie)),
            Self.login("multipart from another site", ["Content-Type: multipart/form-data; boundary=x", evil], .answered(403, check: Self.noCookie)),
            Self.login("JSON from another site", ["Content-Type: application/json", evil], .answered(403, check: Self.noCookie)),
            Self.login("JSON, same-site Sec-Fetch-Site but a foreign Origin", ["Content-Type: application/json", "Sec-Fetch-Site: same-origin", evil],
                .answered(403, check: Self.noCookie)),
            Self.login("JSON, Sec-Fetch-Site none but a foreign Origin", ["Content-Type: application/json", "Sec-Fetch-Site: none", evil],
                .answered(403, check: Self.noCookie)),
            Self.login("JSON, Origin null", ["Content-Type: application/json", "Origin: null"], .answered(403, check: Self.noCookie)),
            Self.login("two Origins", ["Content-Type: application/json", "Origin: http://gatehouse.test", evil], .answered(403, check: Self.noCookie)),
            // Not JSON at all, even without any browser header: never read.
            Self.login("text/plain without browser headers", ["Content-Type: text/plain"], .answered(415, check: Self.noCookie)),
            Self.login("no Content-Type", [], .answered(415, check: Self.noCookie)),
            Self.login("form encoding without browser headers", ["Content-Type: application/x-www-form-urlencoded"], .answered(415, check: Self.noCookie)),
            Self.login("application/jsonx", ["Content-Type: application/jsonx"], .answered(415, check: Self.noCookie)),
            .request("refresh as text/plain", "/_gatehouse/api/refresh_jwt", method: "POST", headers: ["Content-Type: text/plain"],
                body: "{\"refresh_token\":\"x\"}", .refused(415)),
            .request("provision as text/plain from another site", "/_gatehouse/api/tokens/provision", method: "POST",
                headers: ["Content-Type: text/plain", evil], body: "{\"username\":\"alice\",\"password\":\"\(IdentityFixture.password)\"}", .refused(403)),
            .request("provision as a form", "/_gatehouse/api/tokens/provision", method: "POST",
                headers: ["Content-Type: application/x-www-form-urlencoded"], body: "{\"username\":\"alice\",\"password\":\"x\"}", .refused(415)),
            // Still fine: the page's own fetch and a script without browser headers.
            Self.login("JSON from this site", ["Content-Type: application/json", "Origin: http://gatehouse.test"],
                .answered(200, check: { $0.headers.contains { $0.name.lowercased() == "set-cookie" } ? nil : "no cookie" })),
            Self.login("JSON from curl", ["Content-Type: application/json; charset=utf-8"], .answered(200, check: { _ in nil })),
        ]
        try await IdentityFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testAnOriginNamedInCORSMayCallTheAPIButNeverGetsACookie() async throws {
        let app = "Origin: https://app.example.com"
        let noSession = "{\"username\":\"alice\",\"password\":\"\(IdentityFixture.password)\"}"
        let attacks: [Attack] = [
            Self.login("a CORS app signs in for a token", ["Content-Type: application/json", app], body: noSession, .answered(200, check: Self.noCookie)),
            Self.login("a CORS app asks for a cookie", ["Content-Type: application/json", app], .answered(403, check: Self.noCookie)),
            Self.login("a CORS app's text/plain", ["Content-Type: text/plain", app], body: noSession, .refused(415)),
            Self.login("another origin", ["Content-Type: application/json", "Origin: https://other.example"], body: noSession, .refused(403)),
        ]
        try await IdentityFixture.with({ $0.cors = CORSPolicy(allowedOrigins: ["https://app.example.com"]) }) { fx in
            try await launch(attacks, on: fx)
        }
    }

    func testLogoutFromAnotherSiteEndsNothing() async throws {
        try await IdentityFixture.with { fx in
            let (_, cookie) = try fx.formLogin()
            let session = "Cookie: gatehouse_session=\(try XCTUnwrap(cookie))"
            for headers in [["Origin: https://evil.example"], ["Sec-Fetch-Site: cross-site"], [], ["Sec-Fetch-Site: none", "Origin: https://evil.example"]] {
                XCTAssertEqual(try fx.send("POST", "/_gatehouse/logout", headers: [session] + headers, body: "").status, 403, "\(headers)")
                XCTAssertEqual(try fx.api("POST", "logout", headers: [session] + headers).0.status, 403, "\(headers)")
                XCTAssertEqual(try fx.send("GET", "/api/job", headers: [session]).status, 200, "\(headers) ended the session")
            }
            XCTAssertEqual(try fx.send("POST", "/_gatehouse/logout", headers: [session, "Sec-Fetch-Site: same-origin"], body: "").status, 303)
            XCTAssertEqual(try fx.send("GET", "/api/job", headers: [session]).status, 401)
        }
    }

    func testAClientWhoseAddressCannotBeToldStillCountsTowardTheLockout() async throws {
        try await IdentityFixture.with({ $0.trustedProxies = [try! CIDR(parsing: "127.0.0.1/32")] }) { fx in
            var statuses: [Int] = []
            for (i, forwarded) in ["garbage", "not-an-ip", "", "1.2.3", "unknown", "::zz", "999.1.1.1", "x"].enumerated() {
                let response = try fx.api("POST", "login", json: ["username": "guess\(i)", "password": "wrong password \(i)"],
                    headers: ["X-Forwarded-For: \(forwarded)"]).0
                statuses.append(response.status)
            }
            XCTAssertEqual(Array(statuses.prefix(5)), [401, 401, 401, 401, 401])
            XCTAssertEqual(Array(statuses.dropFirst(5)), [429, 429, 429], "guesses from unknown addresses were not counted: \(statuses)")
        }
    }

    func testATrustedProxysClientAddressHeadersSayWhatGatehouseDerived() async throws {
        let key = "X-Api-Key: \(ProxyFixture.aliceKey)"
        let derived: @Sendable (RecordedRequest) -> String? = { r in
            if r.values("X-Real-IP") != ["203.0.113.9"] { return "X-Real-IP was \(r.values("X-Real-IP"))" }
            if r.values("Forwarded") != ["for=203.0.113.9;proto=http"] { return "Forwarded was \(r.values("Forwarded"))" }
            return nil
        }
        let attacks: [Attack] = [
            .request("X-Real-IP and Forwarded that disagree", "/api/job",
                headers: [key, "X-Forwarded-For: 203.0.113.9", "X-Real-IP: 10.0.0.1", "Forwarded: for=10.0.0.1;by=evil"],
                .forwarded(status: 200, check: derived)),
            .request("two X-Real-IP", "/api/job",
                headers: [key, "X-Forwarded-For: 203.0.113.9", "X-Real-IP: 10.0.0.1", "X-Real-IP: 10.0.0.2", "Forwarded: for=1.1.1.1"],
                .forwarded(status: 200, check: derived)),
            .request("an unknown client is never named", "/api/job", headers: [key, "X-Forwarded-For: garbage", "X-Real-IP: 10.0.0.1", "Forwarded: for=10.0.0.1"],
                .forwarded(status: 200, check: { r in (r.values("X-Real-IP") + r.values("Forwarded")).isEmpty ? nil : "the device was told \(r.values("X-Real-IP") + r.values("Forwarded"))" })),
        ]
        try await ProxyFixture.with({ $0.trustedProxies = [try! CIDR(parsing: "127.0.0.1/32")] }) { fx in try await launch(attacks, on: fx) }
    }

    func testTheSessionCookieNeverReachesTheDeviceInAnySpelling() async throws {
        let key = "X-Api-Key: \(ProxyFixture.aliceKey)"
        let spellings = [
            "a=1, gatehouse_session=SECRETSID", "a=1,gatehouse_session=SECRETSID", "GATEHOUSE_SESSION=SECRETSID", "Gatehouse_Session=SECRETSID",
            "gatehouse%5Fsession=SECRETSID", "gatehouse.session=SECRETSID", "gatehouse-session=SECRETSID", "\"gatehouse_session\"=SECRETSID",
            " gatehouse_session = SECRETSID", "gatehouse_session=SECRETSID, b=2", "gatehouse+session=SECRETSID",
        ]
        let attacks = spellings.map { spelling in
            Attack.request("Cookie: \(spelling)", "/api/job", headers: [key, "Cookie: keep=1; \(spelling)"],
                .forwarded(status: 200, check: { r in
                    if r.values("Cookie").joined().contains("SECRETSID") { return "the device saw \(r.values("Cookie"))" }
                    return r.values("Cookie").joined().contains("keep=1") ? nil : "the device's own cookie was dropped"
                }))
        }
        try await ProxyFixture.with { fx in try await launch(attacks, on: fx) }
    }
}
