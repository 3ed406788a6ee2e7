import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// A real Moonraker behind Gatehouse with `preset: moonraker`, Moonraker trusting only
/// Gatehouse's address (127.0.0.1), as README tells users to set it up.
final class MoonrakerTests: XCTestCase {
    private static let aliceKey = ProxyFixture.aliceKey

    private func withMoonraker(preset: Bool = true, _ body: (IdentityFixture, PythonUpstream) async throws -> Void) async throws {
        let moonraker = try MoonrakerUpstream.start()
        do {
            try await IdentityFixture.with({ config in
                if preset { DevicePreset.moonraker.apply(to: &config) }
                config.upstream = .tcp(host: "127.0.0.1", port: moonraker.port)
            }) { fx in try await body(fx, moonraker) }
        } catch {
            moonraker.stop()
            throw error
        }
        moonraker.stop()
    }

    /// A request from 127.0.0.2: a client on the LAN, as far as Gatehouse and Moonraker can tell.
    private func lanSend(_ fx: IdentityFixture, _ target: String, headers: [String]) throws -> RawResponse {
        var text = "GET \(target) HTTP/1.1\r\nHost: printer.test\r\n"
        for line in headers { text += line + "\r\n" }
        return try RawClient(port: fx.port, source: "127.0.0.2").request(text + "Connection: close\r\n\r\n")
    }

    private func result(_ response: RawResponse) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])?["result"] as? [String: Any]
    }

    func testALANClientWithAKeyReachesMoonrakerAsATrustedClientAndNothingElseDoes() async throws {
        try await withMoonraker { fx, _ in
            XCTAssertEqual(try lanSend(fx, "/server/info", headers: []).status, 401, "no credential: Gatehouse refuses")
            let info = try lanSend(fx, "/server/info", headers: ["X-Api-Key: \(Self.aliceKey)"])
            XCTAssertEqual(info.status, 200, info.bodyText)
            XCTAssertNotNil(result(info)?["moonraker_version"])
            // Moonraker decides trust by address: it must see Gatehouse's, whatever the client claims.
            for spoof in ["X-Real-IP: 203.0.113.5", "X-Forwarded-For: 203.0.113.5", "Forwarded: for=203.0.113.5"] {
                XCTAssertEqual(try lanSend(fx, "/server/info", headers: ["X-Api-Key: \(Self.aliceKey)", spoof]).status, 200, spoof)
            }
            // A Gatehouse JWT in Authorization never reaches Moonraker (which would refuse a
            // Bearer it cannot read with 401).
            let (access, _) = try fx.login()
            XCTAssertEqual(try lanSend(fx, "/access/info", headers: ["Authorization: Bearer \(access)"]).status, 200)
        }
    }

    func testWithoutThePresetMoonrakerSeesTheLANClientsAddressAndRefusesIt() async throws {
        // Why the preset turns forward_client_address off: Moonraker reads X-Forwarded-For.
        try await withMoonraker(preset: false) { fx, _ in
            let refused = try lanSend(fx, "/server/info", headers: ["X-Api-Key: \(Self.aliceKey)"])
            XCTAssertEqual(refused.status, 401, refused.bodyText)
        }
    }

    func testMainsailsSocketOpensWithTheSessionCookieAndAnswersJSONRPC() async throws {
        try await withMoonraker { fx, _ in
            let (_, cookie) = try fx.formLogin()
            let session = "Cookie: gatehouse_session=\(try XCTUnwrap(cookie))"
            let client = try openSocket(fx, target: "/websocket", headers: [session, "Origin: http://printer.test"])
            let answer = try rpc(client, method: "server.info")
            XCTAssertNotNil((answer["result"] as? [String: Any])?["klippy_state"], "\(answer)")
            // A page on another site cannot open it with the user's cookie.
            let foreign = try RawClient(port: fx.port, source: "127.0.0.2")
            let refused = try foreign.request(upgrade("/websocket", headers: [session, "Origin: http://evil.example"]))
            XCTAssertEqual(refused.status, 403)
        }
    }

    func testOneShotTokensComeFromGatehouseAndOpenTheSocketOnce() async throws {
        try await withMoonraker { fx, _ in
            XCTAssertEqual(try lanSend(fx, "/access/oneshot_token", headers: []).status, 401)
            let issued = try lanSend(fx, "/access/oneshot_token", headers: ["X-Api-Key: \(Self.aliceKey)"])
            XCTAssertEqual(issued.status, 200, issued.bodyText)
            let json = try JSONSerialization.jsonObject(with: Data(issued.body)) as? [String: Any]
            let token = try XCTUnwrap(json?["result"] as? String, "Moonraker's shape: {\"result\": token}")
            let client = try openSocket(fx, target: "/websocket?token=\(token)", headers: [])
            XCTAssertNotNil((try rpc(client, method: "server.info")["result"] as? [String: Any])?["klippy_state"])
            let again = try RawClient(port: fx.port, source: "127.0.0.2").request(upgrade("/websocket?token=\(token)", headers: []))
            XCTAssertEqual(again.status, 401, "a one-shot token is spent")
        }
    }

    // MARK: WebSocket by hand

    private func upgrade(_ target: String, headers: [String]) -> String {
        var text = "GET \(target) HTTP/1.1\r\nHost: printer.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for line in headers { text += line + "\r\n" }
        return text + "\r\n"
    }

    private func openSocket(_ fx: IdentityFixture, target: String, headers: [String]) throws -> RawClient {
        let client = try RawClient(port: fx.port, timeoutSeconds: 15, source: "127.0.0.2")
        try client.send(upgrade(target, headers: headers))
        let head = try client.readResponse()
        XCTAssertEqual(head.status, 101, head.bodyText)
        return client
    }

    /// Sends one JSON-RPC call in a masked text frame and returns the answer with its id.
    private func rpc(_ client: RawClient, method: String) throws -> [String: Any] {
        let payload = Array(#"{"jsonrpc":"2.0","method":"\#(method)","id":7}"#.utf8)
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        var frame: [UInt8] = [0x81, 0x80 | UInt8(payload.count)] + mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try client.send(frame)
        var buffer: [UInt8] = []
        while true {
            buffer += try client.readAvailable(atLeast: 1)
            // Unmasked server frames: a text frame with a 7- or 16-bit length.
            var offset = 0
            while buffer.count >= offset + 2 {
                var length = Int(buffer[offset + 1] & 0x7F)
                var start = offset + 2
                if length == 126 {
                    guard buffer.count >= offset + 4 else { break }
                    length = Int(buffer[offset + 2]) << 8 | Int(buffer[offset + 3])
                    start = offset + 4
                }
                guard buffer.count >= start + length else { break }
                let text = Array(buffer[start..<(start + length)])
                if let object = try? JSONSerialization.jsonObject(with: Data(text)) as? [String: Any], object["id"] as? Int == 7 {
                    return object
                }
                offset = start + length
            }
        }
    }
}
