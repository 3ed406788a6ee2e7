import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Credentials that ask Gatehouse for more credentials: what is issued never exceeds what asked
/// (roles, expiry, read-only), and one-shot tokens, read-only keys, HTTP Basic and trusted
/// networks issue nothing — at every endpoint that issues (`keys`, `oneshot_token`, Moonraker's
/// `/access/oneshot_token`, user creation). Also: refresh-token reuse under real parallel
/// connections, and a one-shot token flood.
final class CredentialGrowthAttackTests: XCTestCase {
    static func rules(_ config: inout GatehouseConfig) {
        config.accessRules = [
            AccessRule(pattern: .prefix("/admin"), decision: .deny),
            AccessRule(pattern: .prefix("/settings"), decision: .roles(["admin"])),
            AccessRule(pattern: .prefix("/pub"), decision: .open),
        ]
        config.moonrakerOneshot = true
        config.basicAuth = true
    }

    private func key(_ response: (RawResponse, [String: Any]), file: StaticString = #filePath, line: UInt = #line) throws -> String {
        XCTAssertEqual(response.0.status, 201, response.0.bodyText, file: file, line: line)
        return try XCTUnwrap(response.1["key"] as? String, file: file, line: line)
    }

    func testANarrowedKeyCannotMintAWiderOne() async throws {
        try await IdentityFixture.with(Self.rules) { fx in
            XCTAssertTrue(try fx.store.setRoles(["admin", "viewer"], forUser: "root"))
            let root = "Authorization: Bearer \(try fx.login("root").access)"
            let narrow = try key(try fx.api("POST", "keys", json: ["name": "narrow", "roles": ["viewer"]], headers: [root]))
            XCTAssertEqual(try fx.send("GET", "/settings/x", headers: ["X-Api-Key: \(narrow)"]).status, 403)

            let (child, childJSON) = try fx.api("POST", "keys", json: [:], headers: ["X-Api-Key: \(narrow)"])
            XCTAssertEqual(child.status, 201, child.bodyText)
            XCTAssertEqual(childJSON["roles"] as? [String], ["viewer"], "a child inherits the narrowed roles, not its user's")
            let childKey = try XCTUnwrap(childJSON["key"] as? String)
            XCTAssertEqual(try fx.send("GET", "/settings/x", headers: ["X-Api-Key: \(childKey)"]).status, 403)
            XCTAssertEqual(try fx.send("GET", "/files", headers: ["X-Api-Key: \(childKey)"]).status, 200)
            for roles in [["admin"], ["viewer", "admin"], ["operator"]] {
                XCTAssertEqual(try fx.api("POST", "keys", json: ["roles": roles], headers: ["X-Api-Key: \(narrow)"]).0.status, 403, "\(roles)")
            }
            XCTAssertEqual(try fx.api("POST", "keys", json: ["roles": NSNull()], headers: ["X-Api-Key: \(narrow)"]).1["roles"] as? [String], ["viewer"])
            // Even the sign-in may not hand out a role its user lacks.
            XCTAssertEqual(try fx.api("POST", "keys", json: ["roles": ["superuser"]], headers: [root]).0.status, 403)
        }
    }

    func testAKeysRolesNeverOutliveItsUsersRoles() async throws {
        try await IdentityFixture.with(Self.rules) { fx in
            let root = "Authorization: Bearer \(try fx.login("root").access)"
            let adminKey = try key(try fx.api("POST", "keys", json: ["name": "explicit", "roles": ["admin"]], headers: [root]))
            XCTAssertEqual(try fx.send("GET", "/settings/x", headers: ["X-Api-Key: \(adminKey)"]).status, 200)
            XCTAssertTrue(try fx.store.setRoles(["viewer"], forUser: "root"))
            let changed = ContinuousClock.now
            XCTAssertEqual(try fx.status("GET", "/settings/x", headers: ["X-Api-Key: \(adminKey)"], becoming: 403, afterChangeAt: changed), 403)
        }
    }

    func testAnExpiringKeyCannotMintALongerOne() async throws {
        try await IdentityFixture.with(Self.rules) { fx in
            let root = "Authorization: Bearer \(try fx.login("root").access)"
            let end = fx.clock.now().addingTimeInterval(86400)
            let expiring = try key(try fx.api("POST", "keys", json: ["name": "day", "expires": InternetDate.format(end)], headers: [root]))
            let (child, childJSON) = try fx.api("POST", "keys", json: [:], headers: ["X-Api-Key: \(expiring)"])
            XCTAssertEqual(child.status, 201)
            XCTAssertEqual(childJSON["expires"] as? Double, end.timeIntervalSince1970, "a child ends with its parent")
            let later = InternetDate.format(end.addingTimeInterval(3600))
            XCTAssertEqual(try fx.api("POST", "keys", json: ["expires": later], headers: ["X-Api-Key: \(expiring)"]).0.status, 403)
            let sooner = InternetDate.format(end.addingTimeInterval(-3600))
            XCTAssertEqual(try fx.api("POST", "keys", json: ["expires": sooner], headers: ["X-Api-Key: \(expiring)"]).0.status, 201)
            // A one-shot token of an expiring key ends with it too.
            let (_, shot) = try fx.api("GET", "oneshot_token", headers: ["X-Api-Key: \(expiring)"])
            let token = try XCTUnwrap(shot["token"] as? String)
            fx.clock.advance(86400 - 2)
            let (_, late) = try fx.api("GET", "oneshot_token", headers: ["X-Api-Key: \(expiring)"])
            let lateToken = try XCTUnwrap(late["token"] as? String)
            fx.clock.advance(3)
            XCTAssertEqual(try fx.send("GET", "/files?token=\(lateToken)").status, 401, "the key it came from has ended")
            _ = token
            // User management needs a credential without an end of its own.
            fx.clock.advance(-86400)
            let adminDay = try key(try fx.api("POST", "keys", json: ["name": "admin-day", "expires": InternetDate.format(fx.clock.now().addingTimeInterval(3600))], headers: [root]))
            XCTAssertEqual(try fx.api("POST", "user", json: ["username": "eve", "password": "a long password 1"], headers: ["X-Api-Key: \(adminDay)"]).0.status, 403)
            XCTAssertEqual(try fx.api("POST", "user", json: ["username": "eve", "password": "a long password 1"], headers: [root]).0.status, 201)
        }
    }

    func testCredentialsThatMayNotIssueGet403AtEveryIssuingEndpoint() async throws {
        try await IdentityFixture.with({ config in
            Self.rules(&config)
            config.trustedNetworks = [TrustedNetwork(cidr: try! CIDR(parsing: "127.0.0.3/32"), user: "lan", roles: ["admin"])]
        }) { fx in
            let root = "Authorization: Bearer \(try fx.login("root").access)"
            let basicPassword = "Authorization: Basic " + Data("root:\(IdentityFixture.password)".utf8).base64EncodedString()
            let writable = try key(try fx.api("POST", "keys", json: ["name": "writable"], headers: [root]))
            let basicKey = "Authorization: Basic " + Data(":\(writable)".utf8).base64EncodedString()
            func oneShot() throws -> String {
                try XCTUnwrap(try fx.api("GET", "oneshot_token", headers: [root]).1["token"] as? String)
            }
            // Each kind that may not issue, at each endpoint that issues.
            var refusals: [(String, RawResponse)] = []
            for (kind, header) in [("read-only key", "X-Api-Key: \(ProxyFixture.readerKey)"), ("Basic password", basicPassword), ("Basic key", basicKey)] {
                refusals.append(("\(kind): keys", try fx.api("POST", "keys", json: [:], headers: [header]).0))
                refusals.append(("\(kind): oneshot_token", try fx.api("GET", "oneshot_token", headers: [header]).0))
                refusals.append(("\(kind): Moonraker oneshot", try fx.send("GET", "/access/oneshot_token", headers: [header])))
            }
            refusals.append(("one-shot: keys", try fx.api("POST", "keys?token=\(try oneShot())", json: [:]).0))
            refusals.append(("one-shot: oneshot_token", try fx.api("GET", "oneshot_token?token=\(try oneShot())").0))
            refusals.append(("one-shot: Moonraker oneshot", try fx.send("GET", "/access/oneshot_token?token=\(try oneShot())")))
            refusals.append(("one-shot: user", try fx.api("POST", "user?token=\(try oneShot())", json: ["username": "eve", "password": "a long password 1"]).0))
            for (name, response) in refusals {
                XCTAssertEqual(response.status, 403, "\(name): \(response.bodyText)")
            }
            // The trusted network, from its address.
            let lan = try RawClient(port: fx.port, source: "127.0.0.3")
            XCTAssertEqual(try lan.request("GET /_gatehouse/api/oneshot_token HTTP/1.1\r\nHost: gatehouse.test\r\nConnection: close\r\n\r\n").status, 403)
            let lanKeys = try RawClient(port: fx.port, source: "127.0.0.3")
            XCTAssertEqual(try lanKeys.request("POST /_gatehouse/api/keys HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}").status, 403)
            // What may issue still does.
            XCTAssertEqual(try fx.api("GET", "oneshot_token", headers: ["X-Api-Key: \(writable)"]).0.status, 200)
            XCTAssertEqual(try fx.api("POST", "keys", json: [:], headers: ["X-Api-Key: \(writable)"]).0.status, 201)
            XCTAssertEqual(try fx.send("GET", "/access/oneshot_token", headers: [root]).status, 200)
            XCTAssertEqual(try fx.api("GET", "keys", headers: [root]).1["keys"].map { ($0 as? [Any])?.count ?? 0 }, 2, "no refused request created a key")
        }
    }

    func testAKeyCannotCreateAUserWithRolesItLacks() async throws {
        try await IdentityFixture.with(Self.rules) { fx in
            XCTAssertTrue(try fx.store.setRoles(["admin", "operator"], forUser: "root"))
            let root = "Authorization: Bearer \(try fx.login("root").access)"
            let adminOnly = try key(try fx.api("POST", "keys", json: ["name": "automation", "roles": ["admin"]], headers: [root]))
            let body: [String: Any] = ["username": "mallory", "password": "a long password 1", "roles": ["admin", "operator", "owner"]]
            XCTAssertEqual(try fx.api("POST", "user", json: body, headers: ["X-Api-Key: \(adminOnly)"]).0.status, 403)
            XCTAssertEqual(try fx.api("POST", "user", json: ["username": "mallory", "password": "a long password 1", "roles": ["admin"]],
                headers: ["X-Api-Key: \(adminOnly)"]).0.status, 201, "a role it holds it may give")
            // The admin's own sign-in chooses any roles: that is what the admin role is for.
            XCTAssertEqual(try fx.api("POST", "user", json: ["username": "olga", "password": "a long password 1", "roles": ["owner"]], headers: [root]).0.status, 201)
        }
    }

    func testAReusedRefreshTokenLeavesNothingOfItsFamilyWorkingUnderParallelConnections() async throws {
        try await IdentityFixture.with(Self.rules) { fx in
            for round in 0..<10 {
                let (_, refresh) = try fx.login()
                let body = "{\"refresh_token\":\"\(refresh)\"}"
                let request = "POST /_gatehouse/api/refresh_jwt HTTP/1.1\r\nHost: gatehouse.test\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
                // Twenty connections, each with the whole request written before any answer is read.
                let clients = try (0..<20).map { _ in try fx.client() }
                for client in clients { try client.send(request) }
                let answers = try clients.map { try $0.readResponse() }
                let winners = answers.filter { $0.status == 200 }
                XCTAssertLessThanOrEqual(winners.count, 1, "round \(round): a refresh token was exchanged twice")
                XCTAssertEqual(answers.filter { $0.status == 401 }.count, 20 - winners.count, "round \(round): \(answers.map(\.status))")
                for winner in winners {
                    let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(winner.body)) as? [String: Any])
                    let access = try XCTUnwrap(json["token"] as? String)
                    let nextRefresh = try XCTUnwrap(json["refresh_token"] as? String)
                    XCTAssertEqual(try fx.send("GET", "/api/job", headers: ["Authorization: Bearer \(access)"]).status, 401,
                        "round \(round): the winner's access token outlived the reuse")
                    XCTAssertEqual(try fx.api("POST", "refresh_jwt", json: ["refresh_token": nextRefresh]).0.status, 401,
                        "round \(round): the winner's refresh token outlived the reuse")
                }
            }
        }
    }

    func testAOneShotFloodFillsOnlyTheFloodingCredentialsShare() async throws {
        try await IdentityFixture.with(Self.rules) { fx in
            let root = "Authorization: Bearer \(try fx.login("root").access)"
            let flooder = try key(try fx.api("POST", "keys", json: ["name": "flooder"], headers: ["Authorization: Bearer \(try fx.login().access)"]))
            let client = try fx.client()
            let count = 200
            let one = "GET /_gatehouse/api/oneshot_token HTTP/1.1\r\nHost: gatehouse.test\r\nX-Api-Key: \(flooder)\r\n\r\n"
            try client.send(String(repeating: one, count: count))
            var statuses: [Int] = []
            var tooMany: RawResponse?
            for _ in 0..<count {
                let response = try client.readResponse()
                statuses.append(response.status)
                if response.status == 429 { tooMany = response }
            }
            let issued = statuses.filter { $0 == 200 }.count
            XCTAssertEqual(issued, fx.accounts.credentials.oneShotTokens.perCredential, "\(statuses)")
            XCTAssertEqual(statuses.filter { $0 == 429 }.count, count - issued)
            let refusal = try XCTUnwrap(tooMany)
            XCTAssertTrue(refusal.bodyText.contains("one-shot tokens outstanding for this credential of alice"), refusal.bodyText)
            XCTAssertFalse(refusal.bodyText.contains("sign-in"), "the 429 says what is full")
            XCTAssertNotNil(refusal.header("Retry-After"))
            // The flooder's own user, signed in, and everyone else still get theirs.
            let (own, _) = try fx.api("GET", "oneshot_token", headers: ["Authorization: Bearer \(try fx.login().access)"])
            XCTAssertEqual(own.status, 200, own.bodyText)
            let (mine, json) = try fx.api("GET", "oneshot_token", headers: [root])
            XCTAssertEqual(mine.status, 200, mine.bodyText)
            XCTAssertEqual(try fx.send("GET", "/files?token=\(try XCTUnwrap(json["token"] as? String))").status, 200)
        }
    }
}
