import GatehouseCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import GatehouseTestSupport
import XCTest

@testable import GatehouseServer

/// The refusal paths of ``ProxyHandler`` as exact part sequences: nothing here ever needs the
/// upstream, and the test proves it by giving the handler a pool that has no way to connect.
final class ProxyHandlerRefusalTests: XCTestCase {
    static let key = "embedded-key-0123456789abcdef0123456789abcdef"

    private func makeChannel(_ customize: (inout GatehouseConfig) -> Void = { _ in }) throws -> EmbeddedChannel {
        var config = GatehouseConfig()
        config.accessLog = false
        config.apiKeys = [APIKeyRecord(name: "k", user: "alice", roles: ["admin"], digest: .of(Self.key), readOnly: true)]
        customize(&config)
        let channel = EmbeddedChannel()
        // The unix socket path does not exist: if the handler ever tried to forward, the connect
        // would fail and the answer would be a 502, which every test below would notice.
        let connector = UpstreamConnector(address: .unixSocket(path: "/nonexistent/gh.sock"), connectTimeout: .seconds(1))
        let pool = UpstreamPool(eventLoop: channel.eventLoop, connector: connector)
        let handler = ProxyHandler(
            settings: SettingsSource(ProxySettings(config: config, logger: Logger(label: "test"), upstream: connector)), pool: pool,
            peer: IPAddress("203.0.113.9"), httpHandlers: [])
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "203.0.113.9", port: 40000)).wait()
        return channel
    }

    private func send(_ channel: EmbeddedChannel, method: HTTPMethod = .GET, _ uri: String, _ headers: [(String, String)], end: Bool = true) throws {
        var all = HTTPHeaders([("Host", "device.test")])
        all.add(contentsOf: headers)
        try channel.writeInbound(HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: all)))
        if end { try channel.writeInbound(HTTPServerRequestPart.end(nil)) }
    }

    private func readResponse(_ channel: EmbeddedChannel) throws -> (HTTPResponseHead, String) {
        guard case .head(let head)? = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            struct NoHead: Error {}
            throw NoHead()
        }
        var body = ""
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            switch part {
            case .body(.byteBuffer(let b)): body += String(buffer: b)
            case .end: return (head, body)
            default: break
            }
        }
        XCTFail("response had no end")
        return (head, body)
    }

    func testMissingCredentialIsAnswered401WithChallengeAndJSONDetail() throws {
        let channel = try makeChannel()
        try send(channel, "/api/printer", [])
        let (head, body) = try readResponse(channel)
        XCTAssertEqual(head.status, .unauthorized)
        XCTAssertEqual(head.headers["www-authenticate"], ["Bearer realm=\"gatehouse\""])
        XCTAssertEqual(head.headers["content-length"], [String(body.utf8.count)])
        XCTAssertTrue(body.hasPrefix("{\"detail\": "))
        XCTAssertTrue(channel.isActive, "a refused request without a body keeps the connection")
    }

    func testUnknownKeyDetailNeverEchoesTheKey() throws {
        let channel = try makeChannel()
        try send(channel, "/api/printer", [("X-Api-Key", "secret-guess-123")])
        let (head, body) = try readResponse(channel)
        XCTAssertEqual(head.status, .unauthorized)
        XCTAssertFalse(body.contains("secret-guess-123"))
    }

    func testReadOnlyKeyPostIsAnswered403() throws {
        let channel = try makeChannel()
        try send(channel, method: .POST, "/api/job", [("X-Api-Key", Self.key), ("Content-Length", "0")])
        XCTAssertEqual(try readResponse(channel).0.status, .forbidden)
    }

    func testARefusedRequestWithABodyStillComingClosesTheConnection() throws {
        let channel = try makeChannel()
        try send(channel, method: .POST, "/api/files", [("Content-Length", "1000000")], end: false)
        let (head, _) = try readResponse(channel)
        XCTAssertEqual(head.status, .unauthorized)
        XCTAssertEqual(head.headers["connection"], ["close"])
        XCTAssertFalse(channel.isActive)
    }

    func testAmbiguousFramingIsAnswered400AndClosed() throws {
        let channel = try makeChannel()
        try send(channel, method: .POST, "/api/files", [("X-Api-Key", Self.key), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")], end: false)
        XCTAssertEqual(try readResponse(channel).0.status, .badRequest)
        XCTAssertFalse(channel.isActive)
    }

    func testOverlongURIIsAnswered414() throws {
        let channel = try makeChannel { $0.limits.maxURIBytes = 300 }
        try send(channel, "/" + String(repeating: "a", count: 400), [])
        XCTAssertEqual(try readResponse(channel).0.status, .uriTooLong)
    }

    func testDeclaredBodyOverTheLimitIsAnswered413() throws {
        let channel = try makeChannel { $0.limits.maxBodyBytes = 1000 }
        try send(channel, method: .PUT, "/api/files", [("Content-Length", "1001")], end: false)
        XCTAssertEqual(try readResponse(channel).0.status, .payloadTooLarge)
        XCTAssertFalse(channel.isActive)
    }

    func testHealthzIsAnsweredByGatehouseItself() throws {
        let channel = try makeChannel()
        try send(channel, "/_gatehouse/healthz", [])
        let (head, body) = try readResponse(channel)
        XCTAssertEqual(head.status, .ok)
        XCTAssertEqual(body, "ok\n")
    }

    func testHeadResponseHasLengthButNoBody() throws {
        let channel = try makeChannel()
        try send(channel, method: .HEAD, "/api/printer", [])
        guard case .head(let head)? = try channel.readOutbound(as: HTTPServerResponsePart.self) else { return XCTFail("no head") }
        XCTAssertEqual(head.status, .unauthorized)
        XCTAssertNotEqual(head.headers["content-length"], ["0"])
        guard case .end? = try channel.readOutbound(as: HTTPServerResponsePart.self) else { return XCTFail("a HEAD response must have no body") }
    }
}
