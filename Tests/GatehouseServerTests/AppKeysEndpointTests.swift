import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// `octoprint_appkeys`: Gatehouse answers OctoPrint's pairing itself; the ways around it fail.
final class AppKeysEndpointTests: XCTestCase {
    private func withPairing(_ body: (IdentityFixture) async throws -> Void) async throws {
        try await IdentityFixture.with({ config in
            config.octoPrintAppKeys = true
            config.trustedNetworks = [TrustedNetwork(cidr: AuthTest.cidr("127.0.0.0/8"), user: "lan", roles: ["admin"])]
        }, body)
    }

    private func ask(_ fx: IdentityFixture, _ json: String) throws -> (RawResponse, [String: Any]) {
        let response = try fx.send("POST", "/plugin/appkeys/request", headers: ["Content-Type: application/json"], body: json)
        return (response, (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]) ?? [:])
    }

    private func session(_ fx: IdentityFixture, _ user: String = "alice") throws -> String {
        "Cookie: gatehouse_session=\(try XCTUnwrap(fx.formLogin(user).1))"
    }

    func testOffByDefaultThePathsBelongToTheDevice() async throws {
        try await IdentityFixture.with { fx in
            let response = try fx.send("GET", "/plugin/appkeys/probe", headers: ["X-Api-Key: \(ProxyFixture.aliceKey)"])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(fx.upstream.requests.last?.uri, "/plugin/appkeys/probe")
        }
    }

    func testOnlyASameSiteBrowserSessionDecidesAndTheDeviceSeesNothing() async throws {
        try await withPairing { fx in
            let (asked, json) = try ask(fx, #"{"app": "<script>alert(1)</script>"}"#)
            XCTAssertEqual(asked.status, 201, asked.bodyText)
            let appToken = try XCTUnwrap(json["app_token"] as? String)
            let dialog = try XCTUnwrap(URL(string: try XCTUnwrap(json["auth_dialog"] as? String))?.path)
            let decision = dialog.replacingOccurrences(of: "/auth/", with: "/decision/")
            let form = ["Content-Type: application/x-www-form-urlencoded", "Origin: http://gatehouse.test"]

            // A trusted network (no credential at all) and an API key may not mint keys.
            XCTAssertEqual(try fx.send("POST", decision, headers: form, body: "decision=allow").status, 403)
            XCTAssertEqual(try fx.send("POST", decision, headers: form + ["X-Api-Key: \(ProxyFixture.aliceKey)"], body: "decision=allow").status, 403)
            let cookie = try session(fx)
            // Another site cannot make the signed-in browser allow it.
            let foreign = try fx.send("POST", decision, headers: [cookie, "Origin: http://evil.example", "Content-Type: application/x-www-form-urlencoded"], body: "decision=allow")
            XCTAssertEqual(foreign.status, 403)
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/request/\(appToken)").status, 202, "still undecided")

            // The page escapes what the app calls itself, and lists it for apps that open no page.
            let page = try fx.send("GET", dialog, headers: [cookie])
            XCTAssertTrue(page.bodyText.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            XCTAssertFalse(page.bodyText.contains("<script>"))
            XCTAssertNotNil(page.header("Content-Security-Policy"))
            let list = try fx.send("GET", "/_gatehouse/appkeys", headers: [cookie])
            XCTAssertTrue(list.bodyText.contains(dialog), list.bodyText)
            XCTAssertFalse(list.bodyText.contains(appToken), "the list never shows the collecting token")

            // OctoPrint's own UI shape (JSON) works too.
            let denied = try fx.send("POST", decision, headers: [cookie, "Origin: http://gatehouse.test", "Content-Type: application/json"], body: #"{"decision": false}"#)
            XCTAssertEqual(denied.status, 204)
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/request/\(appToken)").status, 404)
            XCTAssertTrue(fx.upstream.requests.isEmpty, "no pairing request reached the device: \(fx.upstream.requests.map(\.uri))")
        }
    }

    func testPairingTokensNeverReachTheAccessLog() async throws {
        let log = CapturedLog()
        let fx = try await IdentityFixture(log: log) { $0.octoPrintAppKeys = true; $0.accessLog = true }
        do {
            let (_, json) = try ask(fx, #"{"app": "Cura"}"#)
            let appToken = try XCTUnwrap(json["app_token"] as? String)
            let dialog = try XCTUnwrap(URL(string: try XCTUnwrap(json["auth_dialog"] as? String))?.path)
            _ = try fx.send("GET", "/plugin/appkeys/request/\(appToken)")
            _ = try fx.send("GET", dialog)
            let decisionToken = try XCTUnwrap(dialog.split(separator: "/").last.map(String.init))
            XCTAssertTrue(ProxyFixture.eventually { log.all.contains { $0.contains("/plugin/appkeys/request/… 202") } }, log.all.joined(separator: "\n"))
            for line in log.all {
                XCTAssertFalse(line.contains(appToken), line)
                XCTAssertFalse(line.contains(decisionToken), line)
            }
        } catch {
            await fx.stop(removeFiles: true)
            throw error
        }
        await fx.stop(removeFiles: true)
    }

    func testAnUpgradeToAClaimedPathIsRefusedNotForwarded() async throws {
        try await IdentityFixture.with({ config in
            config.octoPrintAppKeys = true
            config.moonrakerOneshot = true
        }) { fx in
            for path in ["/plugin/appkeys/request", "/access/oneshot_token"] {
                let response = try fx.send("GET", path, headers: ["X-Api-Key: \(ProxyFixture.aliceKey)", "Connection: Upgrade", "Upgrade: websocket"])
                XCTAssertEqual(response.status, 400, path)
                let smuggled = try fx.send("POST", path, headers: ["X-Api-Key: \(ProxyFixture.aliceKey)", "Upgrade: x", "Content-Type: application/json"], body: #"{"app": "A"}"#)
                XCTAssertEqual(smuggled.status, 400, "an Upgrade header of any kind: \(path)")
            }
            XCTAssertTrue(fx.upstream.requests.isEmpty, "\(fx.upstream.requests.map(\.uri))")
        }
    }

    func testARolesRuleOnThePairingBindsWhoMayAllow() async throws {
        try await IdentityFixture.with({ config in
            config.octoPrintAppKeys = true
            config.accessRules = [AccessRule(pattern: .prefix("/plugin/appkeys"), decision: .roles(["admin"]))]
        }) { fx in
            let (asked, json) = try ask(fx, #"{"app": "A"}"#)
            XCTAssertEqual(asked.status, 201, "an app has no credential to ask with")
            let dialog = try XCTUnwrap(URL(string: try XCTUnwrap(json["auth_dialog"] as? String))?.path)
            XCTAssertEqual(try fx.send("GET", dialog, headers: [try session(fx, "alice")]).status, 403, "alice is no admin")
            XCTAssertEqual(try fx.send("GET", dialog, headers: [try session(fx, "root")]).status, 200)
        }
    }

    func testADenyRuleStillClosesThePairing() async throws {
        try await IdentityFixture.with({ config in
            config.octoPrintAppKeys = true
            config.accessRules = [AccessRule(pattern: .prefix("/plugin/appkeys"), decision: .deny)]
        }) { fx in
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/probe").status, 403)
            XCTAssertEqual(try ask(fx, #"{"app": "A"}"#).0.status, 403)
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }

    func testARequestNamingAUserCannotBeTakenByAnother() async throws {
        try await withPairing { fx in
            let (_, json) = try ask(fx, #"{"app": "Home Assistant", "user": "root"}"#)
            let dialog = try XCTUnwrap(URL(string: try XCTUnwrap(json["auth_dialog"] as? String))?.path)
            let alice = try session(fx)
            XCTAssertEqual(try fx.send("GET", dialog, headers: [alice]).status, 404)
            let taken = try fx.send(
                "POST", dialog.replacingOccurrences(of: "/auth/", with: "/decision/"),
                headers: [alice, "Origin: http://gatehouse.test", "Content-Type: application/x-www-form-urlencoded"], body: "decision=allow")
            XCTAssertEqual(taken.status, 404)
            XCTAssertEqual(try fx.send("GET", dialog, headers: [try session(fx, "root")]).status, 200)
        }
    }

    func testMalformedAndTooManyRequestsAreRefused() async throws {
        try await withPairing { fx in
            XCTAssertEqual(try ask(fx, "not json").0.status, 400)
            XCTAssertEqual(try ask(fx, #"{"user": "alice"}"#).0.status, 400)
            XCTAssertEqual(try ask(fx, #"{"app": "A", "user": "no spaces allowed"}"#).0.status, 400)
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/request").status, 405)
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/request/unknown").status, 404)
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/elsewhere").status, 404)
            for _ in 0..<AppKeyPairing.perClientPerMinute { XCTAssertEqual(try ask(fx, #"{"app": "A"}"#).0.status, 201) }
            XCTAssertEqual(try ask(fx, #"{"app": "A"}"#).0.status, 429)
            XCTAssertTrue(fx.upstream.requests.isEmpty)
        }
    }
}
