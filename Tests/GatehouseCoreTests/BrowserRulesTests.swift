import GatehouseCore
import XCTest

final class BrowserRulesTests: XCTestCase {
    func testSafeReturnPathKeepsOnlyLocalPaths() {
        for good in ["/", "/printer", "/files?sort=name&x=1", "/a/b/c#frag", "/webcam/?action=stream"] {
            XCTAssertEqual(LoginRedirect.safeReturnPath(good), good)
        }
        for bad in [nil, "", "//evil.example", "/\\evil", "https://evil.example", "http:evil", "evil", "javascript:alert(1)",
                    "/%2f%2fevil", "/%5Cevil", "/a\\b", "/a b", "/\u{0}", "/é", "/_gatehouse/login", "/_gatehouse/login?next=/x",
                    "/_gatehouse/logout", String(repeating: "/a", count: 2000)] {
            XCTAssertEqual(LoginRedirect.safeReturnPath(bad), "/", String(describing: bad))
        }
    }

    func testLoginLocationCarriesTheEncodedPath() {
        XCTAssertEqual(LoginRedirect.location(returningTo: "/"), "/_gatehouse/login")
        XCTAssertEqual(LoginRedirect.location(returningTo: "/a?b=c&d"), "/_gatehouse/login?next=/a%3Fb%3Dc%26d")
        XCTAssertEqual(LoginRedirect.location(returningTo: "//evil"), "/_gatehouse/login")
    }

    func testBrowserNavigationNeedsGETAndHTMLPreferred() {
        let browser = [("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")]
        XCTAssertTrue(LoginRedirect.isBrowserNavigation(method: "GET", Fixture.head(browser)))
        XCTAssertTrue(LoginRedirect.isBrowserNavigation(method: "HEAD", Fixture.head(browser)))
        XCTAssertFalse(LoginRedirect.isBrowserNavigation(method: "POST", Fixture.head(browser)))
        XCTAssertFalse(LoginRedirect.isBrowserNavigation(method: "GET", Fixture.head([("Accept", "*/*")])))
        XCTAssertFalse(LoginRedirect.isBrowserNavigation(method: "GET", Fixture.head([])))
        XCTAssertFalse(LoginRedirect.isBrowserNavigation(method: "GET", Fixture.head([("Accept", "application/json, text/html;q=0.1")])))
        XCTAssertFalse(LoginRedirect.isBrowserNavigation(method: "GET", Fixture.head([("Accept", "text/html;q=0")])))
    }

    func testSameSiteNeedsTheBrowsersWord() {
        func same(_ headers: [(String, String)], proxy: Bool = false) -> Bool {
            CrossSiteCheck.isSameSite(Fixture.head([("Host", "printer.local:8080")] + headers), peerIsTrustedProxy: proxy)
        }
        XCTAssertTrue(same([("Sec-Fetch-Site", "same-origin")]))
        XCTAssertTrue(same([("Sec-Fetch-Site", "none")]))
        XCTAssertFalse(same([("Sec-Fetch-Site", "same-site")]))
        XCTAssertFalse(same([("Sec-Fetch-Site", "cross-site"), ("Origin", "http://printer.local:8080")]))
        XCTAssertTrue(same([("Origin", "http://printer.local:8080")]))
        XCTAssertTrue(same([("Origin", "https://PRINTER.local:8080")]))
        XCTAssertFalse(same([("Origin", "http://printer.local")]), "another port is another origin")
        XCTAssertFalse(same([("Origin", "null")]))
        XCTAssertFalse(same([]))
        XCTAssertFalse(same([("Origin", "http://printer.local:8080"), ("Origin", "http://evil")]))
        XCTAssertFalse(same([("Origin", "https://printer.example"), ("X-Forwarded-Host", "printer.example")]), "XFH only from a trusted proxy")
        XCTAssertTrue(same([("Origin", "https://printer.example"), ("X-Forwarded-Host", "printer.example")], proxy: true))
    }

    func testJWTShape() {
        XCTAssertTrue(JSONWebTokenShape.matches("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"))
        XCTAssertFalse(JSONWebTokenShape.matches("abcDEF123-_"))
        XCTAssertFalse(JSONWebTokenShape.matches("a.b.c.d"))
        XCTAssertFalse(JSONWebTokenShape.matches("a.b+c.d"))
    }

    func testSessionCookieParsingAndRemoval() {
        let headers = [(name: "Cookie", value: "a=1; gatehouse_session=abc; b=2"), (name: "cookie", value: "gatehouse_session=abc")]
        XCTAssertEqual(SessionCookie.values(in: Fixture.head(headers)), ["abc", "abc"])
        XCTAssertEqual(SessionCookie.removing(from: "a=1; gatehouse_session=abc; b=2"), "a=1; b=2")
        XCTAssertNil(SessionCookie.removing(from: "gatehouse_session=abc"))
        XCTAssertEqual(SessionCookie.removing(from: "xgatehouse_session=1"), "xgatehouse_session=1")
    }

    func testOneShotTokensAreSingleUseAndShortLived() throws {
        let tokens = OneShotTokens(lifetime: 5, capacity: 2)
        let t0 = Date(timeIntervalSince1970: 1_000)
        let who = Identity(user: "a", roles: [], method: .session, source: "s")
        let t = try tokens.issue(for: who, now: t0).get()
        XCTAssertEqual(tokens.redeem(t, now: t0.addingTimeInterval(4)), who)
        XCTAssertNil(tokens.redeem(t, now: t0.addingTimeInterval(4)))
        let late = try tokens.issue(for: who, now: t0).get()
        XCTAssertNil(tokens.redeem(late, now: t0.addingTimeInterval(5)))
        let other = Identity(user: "b", roles: [], method: .session, source: "s")
        XCTAssertNotNil(try? tokens.issue(for: who, now: t0).get())
        XCTAssertNotNil(try? tokens.issue(for: other, now: t0).get())
        XCTAssertEqual(tokens.issue(for: Identity(user: "c", roles: [], method: .session, source: "s"), now: t0), .failure(.capacity), "capacity reached: refused, memory bounded")
        XCTAssertNotNil(try? tokens.issue(for: who, now: t0.addingTimeInterval(6)).get(), "expired ones make room")
    }

    func testOneShotTokensAreCappedPerCredentialAndPerUser() throws {
        let tokens = OneShotTokens(lifetime: 5, capacity: 100, perCredential: 3, perUser: 5)
        let t0 = Date(timeIntervalSince1970: 1_000)
        let flooder = Identity(user: "root", roles: ["viewer"], method: .apiKey, source: "viewer-key")
        for _ in 0..<3 { _ = try tokens.issue(for: flooder, now: t0).get() }
        XCTAssertEqual(tokens.issue(for: flooder, now: t0), .failure(.credentialLimit))
        let session = Identity(user: "root", roles: ["admin"], method: .session, source: "session:abc")
        XCTAssertNotNil(try? tokens.issue(for: session, now: t0).get(), "the same user's other credential still gets one")
        let other = Identity(user: "root", roles: ["admin"], method: .apiKey, source: "other-key")
        XCTAssertNotNil(try? tokens.issue(for: other, now: t0).get())
        XCTAssertEqual(tokens.issue(for: Identity(user: "root", roles: [], method: .apiKey, source: "third"), now: t0), .failure(.userLimit),
            "many credentials of one user cannot fill the table either")
        let alice = Identity(user: "alice", roles: [], method: .session, source: "session:x")
        XCTAssertNotNil(try? tokens.issue(for: alice, now: t0).get(), "another user still gets one")
        let spent = try tokens.issue(for: alice, now: t0).get()
        XCTAssertNotNil(tokens.redeem(spent, now: t0))
        XCTAssertNotNil(try? tokens.issue(for: flooder, now: t0.addingTimeInterval(6)).get(), "expired ones make room again")
    }

    func testAOneShotTokenEndsWithTheCredentialItWasIssuedFor() throws {
        let tokens = OneShotTokens(lifetime: 5)
        let t0 = Date(timeIntervalSince1970: 1_000)
        let expiring = Identity(user: "a", roles: [], method: .apiKey, source: "k", expires: t0.addingTimeInterval(2))
        let token = try tokens.issue(for: expiring, now: t0).get()
        XCTAssertNil(tokens.redeem(token, now: t0.addingTimeInterval(3)), "the key it came from ended at t0+2")
    }

    func testAttemptsUnderWayCountAgainstTheLimitAndSuccessWipesNothing() throws {
        var policy = LoginThrottlePolicy()
        policy.maxFailures = 3
        let throttle = LoginThrottle(policy: policy)
        let ip = try XCTUnwrap(IPAddress("192.0.2.7"))
        let t0 = Date(timeIntervalSince1970: 0)
        // Three guesses sent at once: all reserved; a fourth must wait for them.
        for _ in 0..<3 { XCTAssertNil(throttle.reserve(username: "a", client: ip, now: t0)) }
        XCTAssertEqual(throttle.reserve(username: "a", client: ip, now: t0), 1)
        XCTAssertEqual(throttle.reserve(username: "b", client: ip, now: t0), 1, "the address is at its limit too")
        throttle.recordFailure(username: "a", client: ip, now: t0)
        throttle.recordFailure(username: "a", client: ip, now: t0)
        // The right password arrives third: it does not wipe the two failures.
        throttle.recordSuccess(username: "a", client: ip)
        XCTAssertNil(throttle.reserve(username: "a", client: ip, now: t0))
        XCTAssertEqual(throttle.recordFailure(username: "a", client: ip, now: t0), 300, "the third failure locks, success or not in between")
        XCTAssertEqual(throttle.reserve(username: "a", client: nil, now: t0), 300)
        // A reservation given back (the store failed) counts for nothing.
        let other = try XCTUnwrap(IPAddress("192.0.2.8"))
        for _ in 0..<3 { XCTAssertNil(throttle.reserve(username: "c", client: other, now: t0)) }
        for _ in 0..<3 { throttle.release(username: "c", client: other) }
        XCTAssertNil(throttle.reserve(username: "c", client: other, now: t0))
    }

    func testLoginThrottleLocksNameAndAddressAndEnds() throws {
        var policy = LoginThrottlePolicy()
        policy.maxFailures = 3
        let throttle = LoginThrottle(policy: policy)
        let ip = try XCTUnwrap(IPAddress("192.0.2.7"))
        let t0 = Date(timeIntervalSince1970: 0)
        XCTAssertNil(throttle.recordFailure(username: "a", client: ip, now: t0))
        XCTAssertNil(throttle.recordFailure(username: "a", client: ip, now: t0))
        XCTAssertEqual(throttle.recordFailure(username: "a", client: ip, now: t0), 300)
        XCTAssertEqual(throttle.retryAfter(username: "a", client: nil, now: t0.addingTimeInterval(100)), 200)
        XCTAssertEqual(throttle.retryAfter(username: "other", client: ip, now: t0), 300)
        XCTAssertNil(throttle.retryAfter(username: "a", client: ip, now: t0.addingTimeInterval(300)))
        XCTAssertNil(throttle.recordFailure(username: "b", client: nil, now: t0))
        XCTAssertNil(throttle.recordFailure(username: "b", client: nil, now: t0.addingTimeInterval(301)), "old failures leave the window")
    }
}
