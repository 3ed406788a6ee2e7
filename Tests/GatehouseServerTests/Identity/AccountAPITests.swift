import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// The JSON API: one-shot tokens, keys, provisioning, users, lockouts, and a restart.
final class AccountAPITests: XCTestCase {
    func testOneShotTokenWorksOnceWithinFiveSecondsAndLeavesTheURL() async throws {
        try await IdentityFixture.with { fx in
            let (access, _) = try fx.login()
            let auth = "Authorization: Bearer \(access)"
            let (r, json) = try fx.api("GET", "oneshot_token", headers: [auth])
            XCTAssertEqual(r.status, 200)
            let token = try XCTUnwrap(json["token"] as? String)
            XCTAssertEqual(json["expires_in"] as? Int, 5)

            XCTAssertEqual(try fx.send("GET", "/webcam/?action=stream&token=\(token)&fps=5").status, 200)
            let seen = try XCTUnwrap(fx.upstream.requests.last)
            XCTAssertEqual(seen.uri, "/webcam/?action=stream&fps=5", "the token is removed before forwarding")
            XCTAssertEqual(seen.values("X-Remote-User"), ["alice"])
            XCTAssertEqual(seen.values("X-Remote-Auth"), ["oneshot_token"])
            XCTAssertEqual(try fx.send("GET", "/webcam/?action=stream&token=\(token)").status, 401, "single use")

            let (_, late) = try fx.api("GET", "oneshot_token", headers: [auth])
            fx.clock.advance(6)
            XCTAssertEqual(try fx.send("GET", "/webcam/?token=\(try XCTUnwrap(late["token"] as? String))").status, 401, "expired")
            XCTAssertEqual(try fx.send("GET", "/webcam/?token=made-up").status, 401)
            XCTAssertEqual(try fx.api("GET", "oneshot_token").0.status, 401, "only for an authenticated caller")
        }
    }

    func testAReadOnlyKeyGetsNoOneShotToken() async throws {
        try await IdentityFixture.with { fx in
            let (response, _) = try fx.api("GET", "oneshot_token", headers: ["X-Api-Key: \(ProxyFixture.readerKey)"])
            XCTAssertEqual(response.status, 403, "a read-only key issues nothing")
            XCTAssertEqual((fx.accounts.credentials.oneShotTokens as? OneShotTokens)?.outstanding, 0)
        }
    }

    func testProvisioningAndKeyManagement() async throws {
        try await IdentityFixture.with { fx in
            let (p, key) = try fx.api("POST", "tokens/provision", json: [
                "username": "alice", "password": IdentityFixture.password, "write_enabled": false, "description": "PrusaSlicer",
            ])
            XCTAssertEqual(p.status, 201)
            let secret = try XCTUnwrap(key["key"] as? String)
            XCTAssertEqual(key["write_enabled"] as? Bool, false)
            XCTAssertEqual(key["user"] as? String, "alice")
            XCTAssertEqual(try fx.send("GET", "/api/files", headers: ["X-Api-Key: \(secret)"]).status, 200)
            XCTAssertEqual(try fx.send("POST", "/api/files", headers: ["X-Api-Key: \(secret)"], body: "x").status, 403, "read-only key")
            XCTAssertEqual(fx.upstream.requests.last?.values("X-Remote-User"), ["alice"])
            XCTAssertEqual(try fx.api("POST", "tokens/provision", json: ["username": "alice", "password": "wrong password!"]).0.status, 401)

            let auth = "Authorization: Bearer \(try fx.login().access)"
            let (created, made) = try fx.api("POST", "keys", json: ["name": "octoapp", "expires": "2031-01-01T00:00:00Z"], headers: [auth])
            XCTAssertEqual(created.status, 201)
            let octo = try XCTUnwrap(made["key"] as? String)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["Authorization: Token \(octo)"]).status, 200)
            await fx.accounts.credentials.uses.flush()
            XCTAssertEqual(try fx.api("POST", "keys", json: ["name": "octoapp"], headers: [auth]).0.status, 409, "names are unique")
            XCTAssertEqual(try fx.api("POST", "keys", json: ["roles": ["admin"]], headers: [auth]).0.status, 403, "no roles beyond the owner's")

            let (listed, list) = try fx.api("GET", "keys", headers: [auth])
            XCTAssertEqual(listed.status, 200)
            let keys = try XCTUnwrap(list["keys"] as? [[String: Any]])
            XCTAssertEqual(Set(keys.compactMap { $0["name"] as? String }).count, 2)
            XCTAssertTrue(keys.allSatisfy { $0["key"] == nil }, "a key is shown once, never listed")
            XCTAssertTrue(keys.contains { $0["name"] as? String == "octoapp" && $0["last_used"] is Double })

            XCTAssertEqual(try fx.api("DELETE", "keys?name=octoapp", headers: [auth]).0.status, 200)
            XCTAssertEqual(try fx.send("GET", "/api/printer", headers: ["Authorization: Token \(octo)"]).status, 401, "revoked")
            XCTAssertEqual(try fx.api("DELETE", "keys?name=octoapp", headers: [auth]).0.status, 404)
            fx.clock.advance(6 * 365 * 86400)
            XCTAssertEqual(try fx.send("GET", "/api/files", headers: ["X-Api-Key: \(secret)"]).status, 200, "no expiry given: never expires")
        }
    }

    func testOnlyTheOwnerOrAnAdminRevokesAKey() async throws {
        try await IdentityFixture.with { fx in
            let alice = "Authorization: Bearer \(try fx.login().access)"
            let root = "Authorization: Bearer \(try fx.login("root").access)"
            XCTAssertEqual(try fx.api("POST", "keys", json: ["name": "roots"], headers: [root]).0.status, 201)
            XCTAssertEqual(try fx.api("POST", "keys", json: ["name": "alices"], headers: [alice]).0.status, 201)
            XCTAssertEqual(try fx.api("DELETE", "keys?name=roots", headers: [alice]).0.status, 404, "not hers")
            XCTAssertNotNil(try fx.store.apiKey(named: "roots"))
            XCTAssertEqual(try fx.api("DELETE", "keys?name=alices", headers: [root]).0.status, 200, "an admin may")
            XCTAssertNil(try fx.store.apiKey(named: "alices"))
        }
    }

    func testLastUsedIsWrittenAtMostOnceAMinute() async throws {
        try await IdentityFixture.with { fx in
            let created = try await fx.accounts.createKey(
                owner: "alice", name: "cam", roles: nil, readOnly: false, expires: nil, description: "", now: fx.clock.now())
            let use = { _ = try fx.send("GET", "/api/printer", headers: ["X-Api-Key: \(created.key)"]) }
            let lastUsed = { try fx.store.apiKeys(ofUser: "alice").first?.lastUsed }
            let uses = fx.accounts.credentials.uses
            try use()
            await uses.flush()
            let first = try XCTUnwrap(try lastUsed())
            fx.clock.advance(30)
            try use()
            XCTAssertEqual(uses.waiting, 0, "not noted again within the minute")
            fx.clock.advance(31)
            try use()
            XCTAssertTrue(ProxyFixture.eventually(seconds: 5) { (try? lastUsed()) == first.addingTimeInterval(61) }, "written within about a second")
        }
    }

    func testUserManagementNeedsAdminAndAnswersWithDetails() async throws {
        try await IdentityFixture.with { fx in
            let alice = "Authorization: Bearer \(try fx.login().access)"
            let root = "Authorization: Bearer \(try fx.login("root").access)"
            let (me, meJSON) = try fx.api("GET", "user", headers: [alice])
            XCTAssertEqual(me.status, 200)
            XCTAssertEqual(meJSON["username"] as? String, "alice")
            XCTAssertEqual(meJSON["source"] as? String, "jwt")
            XCTAssertEqual(try fx.api("GET", "user").0.status, 401)

            let newUser: [String: Any] = ["username": "carol", "password": "a fine long password", "roles": ["viewer"]]
            XCTAssertEqual(try fx.api("POST", "user", json: newUser, headers: [alice]).0.status, 403)
            XCTAssertEqual(try fx.api("POST", "user", json: newUser, headers: [root]).0.status, 201)
            XCTAssertEqual(try fx.api("POST", "user", json: newUser, headers: [root]).0.status, 409)
            let (short, shortJSON) = try fx.api("POST", "user", json: ["username": "dave", "password": "short"], headers: [root])
            XCTAssertEqual(short.status, 400)
            XCTAssertTrue((shortJSON["detail"] as? String)?.hasPrefix("password:") ?? false)
            let (bad, badJSON) = try fx.api("POST", "user", json: ["username": 7], headers: [root])
            XCTAssertEqual(bad.status, 400)
            XCTAssertEqual(badJSON["detail"] as? String, "username: expected a string")
            let notJSON = try fx.send("POST", "/_gatehouse/api/user", headers: [root, "Content-Type: application/json"], body: "{nope")
            XCTAssertEqual(notJSON.status, 400)

            let (listed, list) = try fx.api("GET", "users/list", headers: [root])
            XCTAssertEqual(listed.status, 200)
            XCTAssertEqual((list["users"] as? [[String: Any]])?.compactMap { $0["username"] as? String }, ["alice", "carol", "root"])
            XCTAssertEqual(try fx.api("GET", "users/list", headers: [alice]).0.status, 403)

            let carol = try fx.login("carol", password: "a fine long password")
            let change: [String: Any] = ["password": "a fine long password", "new_password": "another long password"]
            XCTAssertEqual(try fx.api("POST", "user/password", json: change, headers: ["Authorization: Bearer \(carol.access)"]).0.status, 200)
            XCTAssertNoThrow(try fx.login("carol", password: "another long password"))

            XCTAssertEqual(try fx.api("DELETE", "user", json: ["username": "carol"], headers: [root]).0.status, 200)
            XCTAssertEqual(try fx.api("DELETE", "user", json: ["username": "carol"], headers: [root]).0.status, 404)
            XCTAssertEqual(try fx.api("DELETE", "user", json: ["username": "root"], headers: [root]).0.status, 409)
            XCTAssertEqual(try fx.api("GET", "nothing-here").0.status, 404)
            XCTAssertEqual(try fx.api("PUT", "login").0.status, 405)
            XCTAssertTrue(fx.upstream.requests.isEmpty, "nothing under /_gatehouse/ reaches the device")
        }
    }

    func testInfoSaysHowToSignIn() async throws {
        try await IdentityFixture.with({ $0.trustedNetworks = [TrustedNetwork(cidr: try! CIDR(parsing: "127.0.0.0/8"), user: "lan", roles: [])] }) { fx in
            let (r, json) = try fx.api("GET", "info")
            XCTAssertEqual(r.status, 200)
            XCTAssertEqual(json["trusted"] as? Bool, true)
            XCTAssertEqual(json["login_required"] as? Bool, false)
            XCTAssertTrue((json["auth_methods"] as? [String])?.contains("jwt") ?? false)
        }
    }

    func testLockoutAfterFiveFailuresAndItsEnd() async throws {
        try await IdentityFixture.with { fx in
            for _ in 0..<5 {
                XCTAssertEqual(try fx.api("POST", "login", json: ["username": "alice", "password": "wrong password!!"]).0.status, 401)
            }
            let (locked, json) = try fx.api("POST", "login", json: ["username": "alice", "password": IdentityFixture.password])
            XCTAssertEqual(locked.status, 429, "even the right password, while locked out")
            XCTAssertEqual(locked.header("Retry-After"), "300")
            XCTAssertNotNil(json["detail"] as? String)
            let (form, _) = try fx.formLogin()
            XCTAssertEqual(form.status, 429, "the login page shares the lockout")
            XCTAssertEqual(try fx.api("POST", "tokens/provision", json: ["username": "root", "password": IdentityFixture.password]).0.status, 429, "this address is locked out too")
            fx.clock.advance(301)
            XCTAssertNoThrow(try fx.login(), "the lockout ends")
        }
    }

    func testFailuresForManyNamesFromOneAddressLockTheAddress() async throws {
        try await IdentityFixture.with { fx in
            for name in ["a1", "a2", "a3", "a4", "a5"] {
                XCTAssertEqual(try fx.api("POST", "login", json: ["username": name, "password": "whatever password"]).0.status, 401)
            }
            XCTAssertEqual(try fx.api("POST", "login", json: ["username": "root", "password": IdentityFixture.password]).0.status, 429)
        }
    }

    func testRestartKeepsUsersSessionsKeysAndTokens() async throws {
        let fx = try await IdentityFixture()
        let (_, cookie) = try fx.formLogin(remember: true)
        let session = try XCTUnwrap(cookie)
        let tokens = try fx.login()
        let key = try await fx.accounts.createKey(owner: "alice", name: "kept", roles: nil, readOnly: false, expires: nil, description: "", now: Date())
        await fx.stop(removeFiles: false)

        let again = try await IdentityFixture(directory: fx.directory, addUsers: false)
        // (XCTAssert records a thrown error as a failure, so the teardown below always runs.)
        XCTAssertEqual(try again.send("GET", "/a", headers: ["Cookie: gatehouse_session=\(session)"]).status, 200)
        XCTAssertEqual(try again.send("GET", "/a", headers: ["Authorization: Bearer \(tokens.access)"]).status, 200)
        XCTAssertEqual(try again.send("GET", "/a", headers: ["X-Api-Key: \(key.key)"]).status, 200)
        XCTAssertEqual(try again.api("POST", "refresh_jwt", json: ["refresh_token": tokens.refresh]).0.status, 200)
        await again.stop(removeFiles: true)
    }
}
