import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// A live WebSocket tunnel ends within seconds once the credential that opened it stops
/// authenticating; one whose credential stays good stays open.
final class TunnelRevocationTests: XCTestCase {
    private static let upgrade = [
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
    ]

    /// Opens a tunnel to the recording upstream's echo with `headers`; checks the 101 and one echo.
    private func openTunnel(_ fx: IdentityFixture, _ target: String = "/ws", headers: [String]) throws -> RawClient {
        // The read timeout bounds how long `isClosedByPeer` waits: the recheck runs every second.
        let client = try RawClient(port: fx.port, timeoutSeconds: 5)
        var raw = "GET \(target) HTTP/1.1\r\nHost: gatehouse.test\r\n"
        for line in headers + Self.upgrade { raw += line + "\r\n" }
        try client.send(raw + "\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 101, response.bodyText)
        try client.send("ping")
        XCTAssertEqual(try StreamTest.read(client) { $0.count >= 4 }, Array("ping".utf8))
        return client
    }

    private static func quickRecheck(_ config: inout GatehouseConfig) { config.timeouts.tunnelRecheck = .seconds(1) }

    func testLogoutEndsATunnelOpenedWithTheSessionCookie() async throws {
        try await IdentityFixture.with(Self.quickRecheck) { fx in
            let cookie = try XCTUnwrap(try fx.formLogin().1)
            let tunnel = try openTunnel(fx, headers: ["Cookie: gatehouse_session=\(cookie)", "Origin: http://gatehouse.test"])
            let out = try fx.send("POST", "/_gatehouse/logout", headers: ["Cookie: gatehouse_session=\(cookie)", "Sec-Fetch-Site: same-origin"], body: "")
            XCTAssertEqual(out.status, 303)
            XCTAssertTrue(tunnel.isClosedByPeer(), "the printer console stayed open after logout")
        }
    }

    func testRevokingAStoredKeyEndsItsTunnel() async throws {
        try await IdentityFixture.with(Self.quickRecheck) { fx in
            let (access, _) = try fx.login()
            let auth = "Authorization: Bearer \(access)"
            let (_, made) = try fx.api("POST", "keys", json: ["name": "console"], headers: [auth])
            let key = try XCTUnwrap(made["key"] as? String)
            let tunnel = try openTunnel(fx, headers: ["X-Api-Key: \(key)"])
            XCTAssertEqual(try fx.api("DELETE", "keys?name=console", headers: [auth]).0.status, 200)
            XCTAssertTrue(tunnel.isClosedByPeer())
        }
    }

    func testAnExpiredTokenEndsItsTunnelAndAValidOneKeepsItOpen() async throws {
        try await IdentityFixture.with(Self.quickRecheck) { fx in
            let (access, _) = try fx.login()
            let tunnel = try openTunnel(fx, headers: ["Authorization: Bearer \(access)"])
            try await Task.sleep(for: .milliseconds(2500))
            try tunnel.send("still")
            XCTAssertEqual(try StreamTest.read(tunnel) { $0.count >= 5 }, Array("still".utf8), "a valid token keeps the tunnel")
            fx.clock.advance(3600 + 31)
            XCTAssertTrue(tunnel.isClosedByPeer())
        }
    }

    func testDisablingTheUserEndsATunnelOpenedWithAOneShotToken() async throws {
        try await IdentityFixture.with(Self.quickRecheck) { fx in
            let (access, _) = try fx.login()
            let (_, json) = try fx.api("GET", "oneshot_token", headers: ["Authorization: Bearer \(access)"])
            let token = try XCTUnwrap(json["token"] as? String)
            let tunnel = try openTunnel(fx, "/ws?token=\(token)", headers: [])
            try await Task.sleep(for: .milliseconds(1500))
            try tunnel.send("alive")
            XCTAssertEqual(try StreamTest.read(tunnel) { $0.count >= 5 }, Array("alive".utf8), "a spent one-shot token does not close its own tunnel")
            XCTAssertTrue(try fx.store.setDisabled(true, forUser: "alice"))
            XCTAssertTrue(tunnel.isClosedByPeer())
        }
    }

    func testAConfigKeyTunnelStaysOpen() async throws {
        try await IdentityFixture.with(Self.quickRecheck) { fx in
            let tunnel = try openTunnel(fx, headers: ["X-Api-Key: \(ProxyFixture.aliceKey)"])
            try await Task.sleep(for: .milliseconds(2500))
            try tunnel.send("config")
            XCTAssertEqual(try StreamTest.read(tunnel) { $0.count >= 6 }, Array("config".utf8))
        }
    }
}
