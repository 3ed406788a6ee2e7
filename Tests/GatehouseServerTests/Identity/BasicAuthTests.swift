import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// HTTP Basic (`basic_auth: true`) against a real store and a recording upstream: what slicers and
/// phone apps send — a user name and password, or an API key as the password.
final class BasicAuthTests: XCTestCase {
    private static func basic(_ user: String, _ password: String) -> String {
        "Authorization: Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    private static func enabled(_ config: inout GatehouseConfig) { config.basicAuth = true }

    func testUserAndPasswordReachTheDeviceAsThatUserWithoutTheHeader() async throws {
        try await IdentityFixture.with(Self.enabled) { fx in
            let response = try fx.send("GET", "/api/printer", headers: [Self.basic("alice", IdentityFixture.password)])
            XCTAssertEqual(response.status, 200, response.bodyText)
            let seen = try XCTUnwrap(fx.upstream.requests.last)
            XCTAssertEqual(seen.values("X-Remote-User"), ["alice"])
            XCTAssertEqual(seen.values("X-Remote-Roles"), ["operator"])
            XCTAssertEqual(seen.values("X-Remote-Auth"), ["basic"])
            XCTAssertEqual(seen.values("Authorization"), [], "the password must not reach the device")
        }
    }

    func testAPIKeyAsThePasswordWithAnyUserName() async throws {
        try await IdentityFixture.with(Self.enabled) { fx in
            let (access, _) = try fx.login("root")
            let (_, made) = try fx.api("POST", "keys", json: ["name": "slicer"], headers: ["Authorization: Bearer \(access)"])
            let stored = try XCTUnwrap(made["key"] as? String)
            for (user, key, expected) in [("", ProxyFixture.aliceKey, "alice"), ("octoprint", ProxyFixture.aliceKey, "alice"), ("", stored, "root"), ("alice", stored, "root")] {
                let response = try fx.send("GET", "/api/printer", headers: [Self.basic(user, key)])
                XCTAssertEqual(response.status, 200, "\(user): \(response.bodyText)")
                XCTAssertEqual(fx.upstream.requests.last?.values("X-Remote-User"), [expected], "the key decides who it is, not the user name")
                XCTAssertEqual(fx.upstream.requests.last?.values("X-Remote-Auth"), ["api_key"])
            }
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [Self.basic("", ProxyFixture.expiredKey)]).status, 401)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [Self.basic("", ProxyFixture.readerKey)]).status, 200)
            XCTAssertEqual(try fx.send("POST", "/api/job", headers: [Self.basic("", ProxyFixture.readerKey)], body: "{}").status, 403, "a read-only key stays read-only")
        }
    }

    func testOffByDefault() async throws {
        try await IdentityFixture.with { fx in
            let before = fx.upstream.requests.count
            let response = try fx.send("GET", "/api/printer", headers: [Self.basic("alice", IdentityFixture.password)])
            XCTAssertEqual(response.status, 401)
            XCTAssertTrue(response.bodyText.contains("Basic"), response.bodyText)
            XCTAssertEqual(fx.upstream.requests.count, before)
        }
    }

    func testWrongPasswordsCountTowardTheLockoutThatAlsoStopsTheRightOne() async throws {
        try await IdentityFixture.with(Self.enabled) { fx in
            let before = fx.upstream.requests.count
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [Self.basic("nobody", "whatever-it-is")]).status, 401)
            for attempt in 1...4 {
                let response = try fx.send("GET", "/api/printer", headers: [Self.basic("alice", "wrong password \(attempt)")])
                XCTAssertEqual(response.status, 401, "attempt \(attempt)")
                XCTAssertTrue(response.bodyText.contains("Wrong user name or password"), response.bodyText)
            }
            // The address has five failures now (four for alice): locked, right password or not.
            let locked = try fx.send("GET", "/api/printer", headers: [Self.basic("alice", IdentityFixture.password)])
            XCTAssertEqual(locked.status, 429)
            XCTAssertNotNil(locked.header("Retry-After"))
            XCTAssertEqual(fx.upstream.requests.count, before, "the device saw none of it")
            // The JSON login shares the lockout.
            XCTAssertEqual(try fx.api("POST", "login", json: ["username": "alice", "password": IdentityFixture.password]).0.status, 429)
            fx.clock.advance(301)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [Self.basic("alice", IdentityFixture.password)]).status, 200)
        }
    }

    func testALockoutStopsARememberedPasswordToo() async throws {
        try await IdentityFixture.with(Self.enabled) { fx in
            let right = Self.basic("alice", IdentityFixture.password)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [right]).status, 200)
            XCTAssertEqual(fx.accounts.credentials.cache.count, 1, "remembered")
            for attempt in 1...5 {
                XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [Self.basic("alice", "guess \(attempt)")]).status, 401, "guess \(attempt)")
            }
            // Were memory asked first, the right password would pass while guesses got 429.
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [right]).status, 429)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [Self.basic("alice", "guess 6")]).status, 429)
        }
    }

    func testAVerifiedPasswordIsRememberedUntilItChangesOrTheUserIsDisabled() async throws {
        try await IdentityFixture.with(Self.enabled) { fx in
            let header = Self.basic("alice", IdentityFixture.password)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [header]).status, 200)
            let cache = fx.accounts.credentials.cache
            XCTAssertEqual(cache.count, 1, "the verified pair is remembered")
            // Remembered: answered without a store read or scrypt run, which is what lets a
            // client send Basic on every request.
            let pending = try XCTUnwrap(Self.pending(fx, header))
            guard case .success(let identity)? = fx.accounts.identifyFromMemory(pending, now: fx.clock.now()) else {
                return XCTFail("a verified pair should be answered from memory")
            }
            XCTAssertEqual(identity.user, "alice")
            // Not past its minute.
            fx.clock.advance(StoredCredentialAuthenticator.passwordMemory + 1)
            XCTAssertNil(fx.accounts.identifyFromMemory(pending, now: fx.clock.now()), "past its memory the password is checked again")
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [header]).status, 200)

            // A password change withdraws the old one at once.
            let (access, _) = try fx.login()
            let (changed, _) = try fx.api(
                "POST", "user/password", json: ["password": IdentityFixture.password, "new_password": "a brand new passphrase"],
                headers: ["Authorization: Bearer \(access)"])
            XCTAssertEqual(changed.status, 200)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [header]).status, 401)
            let newHeader = Self.basic("alice", "a brand new passphrase")
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [newHeader]).status, 200)

            // So does disabling the user.
            XCTAssertTrue(try fx.store.setDisabled(true, forUser: "alice"))
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [newHeader]).status, 401)
        }
    }

    func testBrowsersCrossSiteStateChangesAreRefusedButClientsWithoutOriginPass() async throws {
        try await IdentityFixture.with(Self.enabled) { fx in
            let header = Self.basic("alice", IdentityFixture.password)
            XCTAssertEqual(try fx.send("POST", "/api/job", headers: [header], body: "{}").status, 200, "a slicer sends no Origin")
            XCTAssertEqual(try fx.send("POST", "/api/job", headers: [header, "Origin: http://gatehouse.test"], body: "{}").status, 200)
            let before = fx.upstream.requests.count
            for extra in [["Origin: https://evil.example"], ["Sec-Fetch-Site: cross-site"], ["Origin: null"],
                          ["Sec-Fetch-Site: same-origin", "Sec-Fetch-Site: cross-site"]] {
                XCTAssertEqual(try fx.send("POST", "/api/job", headers: [header] + extra, body: "{}").status, 403, "\(extra)")
                XCTAssertEqual(try fx.send("POST", "/api/job", headers: [Self.basic("", ProxyFixture.aliceKey)] + extra, body: "{}").status, 403,
                               "an API key as a Basic password is replayed by browsers too: \(extra)")
            }
            XCTAssertEqual(fx.upstream.requests.count, before)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: [header, "Origin: https://evil.example"]).status, 200, "reading is not a state change")
        }
    }

    func testATunnelOpenedWithBasicClosesWhenThePasswordChanges() async throws {
        try await IdentityFixture.with({ $0.basicAuth = true; $0.timeouts.tunnelRecheck = .seconds(1) }) { fx in
            // The read timeout bounds how long `isClosedByPeer` waits: the recheck runs every second.
            let tunnel = try RawClient(port: fx.port, timeoutSeconds: 5)
            try tunnel.send(
                "GET /ws HTTP/1.1\r\nHost: gatehouse.test\r\n\(Self.basic("alice", IdentityFixture.password))\r\n"
                    + "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            XCTAssertEqual(try tunnel.readResponse().status, 101)
            try tunnel.send("ping")
            XCTAssertEqual(try StreamTest.read(tunnel) { $0.count >= 4 }, Array("ping".utf8))
            let hash = try PasswordHash.make("another long passphrase", parameters: IdentityFixture.scrypt)
            XCTAssertTrue(try fx.store.changePassword(hash, forUser: "alice"))
            XCTAssertTrue(tunnel.isClosedByPeer())
        }
    }

    /// The pending lookup the gate makes for this request.
    private static func pending(_ fx: IdentityFixture, _ header: String) -> PendingAuthentication? {
        let gate = RequestGate(config: { var c = GatehouseConfig(); c.basicAuth = true; return c }(), storeBacked: true)
        let parts = header.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let head = try? RequestHead(method: "GET", uri: "/api/printer", versionMinor: 0, headers: [(name: parts[0], value: parts[1])]) else {
            return nil
        }
        let facts = RequestFacts(head: head, target: RequestTarget(path: "/api/printer", query: QueryString(nil)), peer: IPAddress("127.0.0.1"))
        guard case .lookUp(let pending) = gate.decide(facts, now: fx.clock.now()) else { return nil }
        return pending
    }
}
