import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// The sign-in form under attack: where it sends the browser afterwards, what it does with
/// hostile input, and whether its lockout can be walked around.
final class LoginAttackTests: XCTestCase {
    private static func form(_ fields: String, headers: [String] = []) -> String {
        var raw = "POST /_gatehouse/login HTTP/1.1\r\nHost: gatehouse.test\r\nOrigin: http://gatehouse.test\r\n"
        raw += "Content-Type: application/x-www-form-urlencoded\r\n"
        for line in headers { raw += line + "\r\n" }
        return raw + "Content-Length: \(fields.utf8.count)\r\nConnection: close\r\n\r\n" + fields
    }

    private static func form(bytes body: [UInt8]) -> [UInt8] {
        let head = "POST /_gatehouse/login HTTP/1.1\r\nHost: gatehouse.test\r\nOrigin: http://gatehouse.test\r\n"
            + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + body
    }

    private static func encoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
    }

    /// After a successful sign-in the browser goes to a path on this site, never elsewhere.
    private static let staysOnSite: @Sendable (RawResponse) -> String? = { response in
        guard let location = response.header("Location") else { return "no Location" }
        let bytes = Array(location.utf8)
        guard bytes.first == UInt8(ascii: "/"), bytes.count == 1 || (bytes[1] != UInt8(ascii: "/") && bytes[1] != UInt8(ascii: "\\")) else {
            return "Location \(location) leaves the site"
        }
        if location.lowercased().contains("evil") { return "Location \(location) names the attacker's host" }
        return nil
    }

    func testOpenRedirectsInEveryForm() async throws {
        let targets = [
            "//evil.example", "///evil.example", "/\\evil.example", "\\/evil.example", "https://evil.example", "http:evil.example",
            "HTTPS://evil.example/x", "javascript:alert(1)", " //evil.example", "/%2fevil.example", "%2F%2Fevil.example",
            "/%5cevil.example", "//evil.example@gatehouse.test", "/\t/evil.example", "data:text/html,evil",
        ]
        let credentials = "username=alice&password=\(Self.encoded(IdentityFixture.password))"
        let attacks = targets.map { target in
            Attack("next=\(target)", Self.form(credentials + "&next=" + Self.encoded(target)), .answered(303, check: Self.staysOnSite))
        }
        try await IdentityFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testHostileFormInput() async throws {
        let password = Self.encoded(IdentityFixture.password)
        let noInjectedHeader: @Sendable (RawResponse) -> String? = { response in
            response.headers.contains { $0.name.lowercased() == "x-injected" } ? "a header was injected" : nil
        }
        // Three times the 64 KiB an own endpoint takes; small enough to sit in the socket buffers.
        let big = "username=alice&password=" + String(repeating: "a", count: 200_000)
        let attacks = [
            Attack("CRLF in the user name", Self.form("username=alice%0d%0aX-Injected:%20yes&password=\(password)"), .answered(401, check: noInjectedHeader)),
            Attack("NUL in the user name", Self.form("username=alice%00&password=\(password)"), .answered(401, check: noInjectedHeader)),
            Attack("oversized form body", Self.form(big), .refused(413)),
            Attack("non-UTF-8 form body", bytes: Self.form(bytes: Array("username=al".utf8) + [0xC3, 0x28] + Array("&password=x".utf8)),
                .answered(400, check: { _ in nil })),
            Attack("non-UTF-8 percent escapes", Self.form("username=%C3%28&password=\(password)"), .answered(400, check: { _ in nil })),
            Attack("form without Origin or Sec-Fetch-Site (login CSRF)",
                "POST /_gatehouse/login HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\nConnection: close\r\n\r\nusername=alice",
                .refused(403)),
            Attack("form from another site", Self.form("username=alice&password=\(password)", headers: []).replacingOccurrences(of: "Origin: http://gatehouse.test", with: "Origin: https://evil.example"),
                .refused(403)),
        ]
        try await IdentityFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testLockoutCannotBeWalkedAround() async throws {
        try await IdentityFixture.with { fx in
            for i in 0..<5 {
                let r = try fx.api("POST", "login", json: ["username": "alice", "password": "wrong password \(i)"], headers: ["X-Forwarded-For: 10.0.0.\(i)"])
                XCTAssertEqual(r.0.status, 401)
            }
            let right = Self.encoded(IdentityFixture.password)
            let attacks = [
                Attack("the right password during the lockout", Self.form("username=alice&password=\(right)"), .refused(429)),
                Attack("user name in another case", Self.form("username=ALICE&password=\(right)"), .refused(429)),
                Attack("user name with spaces", Self.form("username=%20alice%20&password=\(right)"), .refused(429)),
                Attack("a new X-Forwarded-For from an untrusted peer", Self.form("username=alice&password=\(right)", headers: ["X-Forwarded-For: 10.9.9.9"]), .refused(429)),
                Attack("another user from the locked-out address", Self.form("username=root&password=\(right)"), .refused(429)),
                .request("the JSON API shares the lockout", "/_gatehouse/api/login", method: "POST",
                    headers: ["Content-Type: application/json"], body: "{\"username\":\"alice\",\"password\":\"\(IdentityFixture.password)\"}", .refused(429)),
            ]
            try await launch(attacks, on: fx)
        }
    }
}
