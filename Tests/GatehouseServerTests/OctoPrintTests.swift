import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// A real OctoPrint behind Gatehouse, on loopback, with `trustRemoteUser`: who OctoPrint believes
/// is calling is exactly who Gatehouse said, and nothing unauthenticated reaches it.
final class OctoPrintTests: XCTestCase {
    private static let aliceKey = ProxyFixture.aliceKey

    private func withOctoPrint(_ body: (IdentityFixture, PythonUpstream) async throws -> Void) async throws {
        let octoprint = try OctoPrintUpstream.start()
        do {
            try await IdentityFixture.with({ config in
                DevicePreset.octoprint.apply(to: &config)
                config.upstream = .tcp(host: "127.0.0.1", port: octoprint.port)
                config.limits.maxBodyBytes = 0
                config.basicAuth = true
            }) { fx in try await body(fx, octoprint) }
        } catch {
            octoprint.stop()
            throw error
        }
        octoprint.stop()
    }

    private func currentUser(_ response: RawResponse, file: StaticString = #filePath, line: UInt = #line) -> String? {
        XCTAssertEqual(response.status, 200, response.bodyText, file: file, line: line)
        let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return json?["name"] as? String
    }

    func testOctoPrintSeesOnlyWhomGatehouseNames() async throws {
        try await withOctoPrint { fx, _ in
            // No credential: Gatehouse's own 401, not OctoPrint's.
            let anonymous = try fx.send("GET", "/api/currentuser")
            XCTAssertEqual(anonymous.status, 401)
            XCTAssertEqual(anonymous.header("WWW-Authenticate"), #"Bearer realm="gatehouse""#)
            XCTAssertNotNil(StreamTest.errorDetail(anonymous), anonymous.bodyText)
            let spoofOnly = try fx.send("GET", "/api/currentuser", headers: ["X-Remote-User: alice"])
            XCTAssertEqual(spoofOnly.status, 401, "a client's own identity header is no credential")

            // A key names alice; OctoPrint agrees.
            XCTAssertEqual(currentUser(try fx.send("GET", "/api/currentuser", headers: ["X-Api-Key: \(Self.aliceKey)"])), "alice")
            // Spoofed identity headers, in every spelling OctoPrint's WSGI layer merges, change nothing.
            for spoof in ["X-Remote-User: bob", "X_Remote_User: bob", "x-remote-user: bob", "X-REMOTE-USER: bob"] {
                let response = try fx.send("GET", "/api/currentuser", headers: ["X-Api-Key: \(Self.aliceKey)", spoof])
                XCTAssertEqual(currentUser(response), "alice", spoof)
            }
            // A stored key of bob's names bob.
            let (access, _) = try fx.login("root")
            XCTAssertEqual(try fx.api("POST", "user", json: ["username": "bob", "password": "bob's long passphrase"], headers: ["Authorization: Bearer \(access)"]).0.status, 201)
            let (bobAccess, _) = try fx.login("bob", password: "bob's long passphrase")
            XCTAssertEqual(currentUser(try fx.send("GET", "/api/currentuser", headers: ["Authorization: Bearer \(bobAccess)"])), "bob")
        }
    }

    func testABrowserSignedInAtGatehouseReachesOctoPrintsUI() async throws {
        try await withOctoPrint { fx, _ in
            let page = try fx.send("GET", "/", headers: ["Accept: text/html"])
            XCTAssertEqual(page.status, 302, "a browser without a session goes to the sign-in page")
            XCTAssertEqual(page.header("Location"), "/_gatehouse/login")
            let (signedIn, cookie) = try fx.formLogin()
            XCTAssertEqual(signedIn.status, 303, signedIn.bodyText)
            let session = "Cookie: gatehouse_session=\(try XCTUnwrap(cookie))"
            let ui = try fx.send("GET", "/", headers: ["Accept: text/html", session])
            XCTAssertEqual(ui.status, 200)
            XCTAssertTrue(ui.bodyText.contains("OctoPrint"), String(ui.bodyText.prefix(500)))
            XCTAssertEqual(currentUser(try fx.send("GET", "/api/currentuser", headers: [session])), "alice")
        }
    }

    func testPushSocketWorksThroughTheTunnel() async throws {
        try await withOctoPrint { fx, _ in
            // OctoPrint sends "connected" the moment the socket opens, often in the same TCP
            // segment as its 101 (such bytes once waited unflushed in Gatehouse: this test then
            // failed whenever the two arrived together); the wait is generous for a loaded machine.
            let client = try RawClient(port: fx.port, timeoutSeconds: 40)
            try client.send(
                "GET /sockjs/websocket HTTP/1.1\r\nHost: gatehouse.test\r\nX-Api-Key: \(Self.aliceKey)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            let head = try client.readResponse()
            XCTAssertEqual(head.status, 101, head.bodyText)
            XCTAssertEqual(head.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            // SockJS opens with an "o" frame, then OctoPrint's "connected" message.
            var seen: [UInt8] = []
            let bytes: [UInt8]
            do {
                bytes = try StreamTest.read(client) { seen = $0; return StreamTest.occurrences(of: "connected", in: $0) > 0 }
            } catch {
                return XCTFail("\(error) after \(seen.count) bytes through the tunnel: \(String(decoding: seen.prefix(300), as: UTF8.self))")
            }
            XCTAssertEqual(bytes.first.map { $0 & 0x0F }, 1, "a text frame")
            XCTAssertTrue(StreamTest.occurrences(of: "connected", in: bytes) > 0)
        }
    }

    func testAnUploadStreamsIntoOctoPrintsStorage() async throws {
        try await withOctoPrint { fx, _ in
            let gcode = (0..<200_000).map { "G1 X\($0 % 200) Y\($0 % 150) E0.05\n" }.joined()
            let boundary = "gatehouse-boundary-7f3a"
            let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"part.gcode\"\r\n"
                + "Content-Type: application/octet-stream\r\n\r\n\(gcode)\r\n--\(boundary)--\r\n"
            let uploaded = try fx.send(
                "POST", "/api/files/local", headers: ["X-Api-Key: \(Self.aliceKey)", "Content-Type: multipart/form-data; boundary=\(boundary)"], body: body)
            XCTAssertEqual(uploaded.status, 201, String(uploaded.bodyText.prefix(500)))
            let info = try fx.send("GET", "/api/files/local/part.gcode", headers: ["X-Api-Key: \(Self.aliceKey)"])
            XCTAssertEqual(info.status, 200, info.bodyText)
            let json = try JSONSerialization.jsonObject(with: Data(info.body)) as? [String: Any]
            XCTAssertEqual(json?["size"] as? Int, gcode.utf8.count, "OctoPrint stored every byte")
            // (A small body: Gatehouse answers 401 before a large one has arrived and closes the
            // connection, which a client still sending sees as a reset.)
            let small = "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.gcode\"\r\n\r\nG28\r\n--\(boundary)--\r\n"
            let anonymous = try fx.send("POST", "/api/files/local", headers: ["Content-Type: multipart/form-data; boundary=\(boundary)"], body: small)
            XCTAssertEqual(anonymous.status, 401)
            // A browser's session gets no CSRF pair from Gatehouse: OctoPrint's own check stands
            // (its page sends the pair it was given; a request without one is refused by OctoPrint).
            let (_, cookie) = try fx.formLogin()
            let session = "Cookie: gatehouse_session=\(try XCTUnwrap(cookie))"
            let browser = try fx.send(
                "POST", "/api/files/local",
                headers: [session, "Origin: http://gatehouse.test", "Content-Type: multipart/form-data; boundary=\(boundary)"], body: body)
            XCTAssertEqual(browser.status, 400, browser.bodyText)
            XCTAssertTrue(browser.bodyText.contains("CSRF"), browser.bodyText)
            // Nor does HTTP Basic, which a browser replays by itself: OctoPrint's check stands.
            let basic = "Authorization: Basic " + Data("alice:\(IdentityFixture.password)".utf8).base64EncodedString()
            let replayed = try fx.send("POST", "/api/files/local", headers: [basic, "Content-Type: multipart/form-data; boundary=\(boundary)"], body: body)
            XCTAssertEqual(replayed.status, 400, replayed.bodyText)
        }
    }

    /// The pairing Cura, OctoApp and Home Assistant use, through Gatehouse: the app asks, a user
    /// signed in to Gatehouse allows it, the app collects a key — a Gatehouse key, which OctoPrint
    /// then sees as that user.
    func testApplicationKeyPairingCompletesThroughGatehouse() async throws {
        try await withOctoPrint { fx, _ in
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/probe").status, 204)
            let asked = try fx.send("POST", "/plugin/appkeys/request", headers: ["Content-Type: application/json"], body: #"{"app": "Cura"}"#)
            XCTAssertEqual(asked.status, 201, asked.bodyText)
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(asked.body)) as? [String: Any])
            let appToken = try XCTUnwrap(json["app_token"] as? String)
            let dialog = try XCTUnwrap(URL(string: try XCTUnwrap(json["auth_dialog"] as? String)))
            XCTAssertEqual(asked.header("Location"), "http://gatehouse.test/plugin/appkeys/request/\(appToken)")
            XCTAssertFalse(dialog.path.contains(appToken), "the page's address (browser history) never holds the collecting token")
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/request/\(appToken)").status, 202)

            // Cura opens the dialog in the browser: sign in first, then allow.
            let page = try fx.send("GET", dialog.path, headers: ["Accept: text/html"])
            XCTAssertEqual(page.status, 303)
            XCTAssertTrue(page.header("Location")?.hasPrefix("/_gatehouse/login?next=") ?? false, page.header("Location") ?? "")
            let (_, cookie) = try fx.formLogin()
            let session = "Cookie: gatehouse_session=\(try XCTUnwrap(cookie))"
            let approval = try fx.send("GET", dialog.path, headers: [session])
            XCTAssertEqual(approval.status, 200)
            XCTAssertTrue(approval.bodyText.contains("<strong>Cura</strong>"), approval.bodyText)
            let decisionPath = dialog.path.replacingOccurrences(of: "/auth/", with: "/decision/")
            let decided = try fx.send(
                "POST", decisionPath, headers: [session, "Origin: http://gatehouse.test", "Content-Type: application/x-www-form-urlencoded"],
                body: "decision=allow")
            XCTAssertEqual(decided.status, 200, decided.bodyText)

            let collected = try fx.send("GET", "/plugin/appkeys/request/\(appToken)")
            XCTAssertEqual(collected.status, 200, collected.bodyText)
            let key = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(collected.body)) as? [String: Any])?["api_key"] as? String)
            XCTAssertEqual(try fx.send("GET", "/plugin/appkeys/request/\(appToken)").status, 404, "collected once")
            // OctoPrint knows nothing of this key; Gatehouse does, and names alice.
            XCTAssertEqual(currentUser(try fx.send("GET", "/api/currentuser", headers: ["X-Api-Key: \(key)"])), "alice")
            XCTAssertEqual(currentUser(try fx.send("GET", "/api/currentuser?apikey=\(key)")), "alice", "the preset takes ?apikey= on the API")
        }
    }
}
