import GatehouseCore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import GatehouseTestSupport
import XCTest

@testable import GatehouseServer

/// The refusal paths of ``ClientConnectionHandler`` as exact byte sequences on an
/// `EmbeddedChannel`: nothing here ever needs the upstream, and the test proves it by giving the
/// handler a pool that has no way to connect.
final class ClientConnectionHandlerTests: XCTestCase {
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
        let settings = ProxySettings(config: config, logger: Logger(label: "test"), upstream: connector)
        let loop = LoopContext(
            eventLoop: channel.eventLoop, pool: UpstreamPool(eventLoop: channel.eventLoop, connector: connector), settings: settings,
            metrics: LoopMetrics(), accessLog: LoopAccessLog(sink: .logger(Logger(label: "test")), eventLoop: channel.eventLoop))
        let handler = ClientConnectionHandler(
            loop: loop, settingsSource: SettingsSource(settings), peer: IPAddress("203.0.113.9"),
            headLimits: RequestHeadScanner.Limits(maxHeadBytes: config.limits.maxHeadBytes, maxHeaders: config.limits.maxHeaders),
            idle: .seconds(75), clientHeader: .seconds(10), clientBody: .seconds(30))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "203.0.113.9", port: 40000)).wait()
        return channel
    }

    /// A request head as bytes on the wire (a body announced by the headers is not sent).
    private func send(_ channel: EmbeddedChannel, method: HTTPMethod = .GET, _ uri: String, _ headers: [(String, String)]) throws {
        var text = "\(method.rawValue) \(uri) HTTP/1.1\r\nHost: device.test\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        try sendRaw(channel, text + "\r\n")
    }

    private func sendRaw(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(channel.allocator.buffer(string: text))
    }

    /// Everything the handler wrote, read back with SwiftNIO's response decoder.
    private func readResponse(_ channel: EmbeddedChannel, method: HTTPMethod = .GET) throws -> (HTTPResponseHead, String) {
        var bytes = channel.allocator.buffer(capacity: 0)
        while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&part) }
        let decoder = EmbeddedChannel(handler: ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)))
        try decoder.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/")))
        try decoder.writeInbound(bytes)
        var head: HTTPResponseHead?
        var body = ""
        while let part = try decoder.readInbound(as: HTTPClientResponsePart.self) {
            switch part {
            case .head(let h): head = h
            case .body(let b): body += String(buffer: b)
            case .end:
                guard let head else { break }
                return (head, body)
            }
        }
        struct NoResponse: Error {}
        throw NoResponse()
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
        try send(channel, method: .POST, "/api/files", [("Content-Length", "1000000")])
        let (head, _) = try readResponse(channel)
        XCTAssertEqual(head.status, .unauthorized)
        XCTAssertEqual(head.headers["connection"], ["close"])
        XCTAssertFalse(channel.isActive)
    }

    func testAmbiguousFramingIsAnswered400AndClosed() throws {
        let channel = try makeChannel()
        try send(channel, method: .POST, "/api/files", [("X-Api-Key", Self.key), ("Content-Length", "5"), ("Transfer-Encoding", "chunked")])
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
        try send(channel, method: .PUT, "/api/files", [("Content-Length", "1001")])
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
        let (head, body) = try readResponse(channel, method: .HEAD)
        XCTAssertEqual(head.status, .unauthorized)
        XCTAssertNotEqual(head.headers["content-length"], ["0"])
        XCTAssertEqual(body, "", "a HEAD response must have no body")
    }

    func testAParserErrorIsAnswered400AndClosed() throws {
        let channel = try makeChannel()
        try sendRaw(channel, "GET /api/printer HTTP/1.1\r\nHost: device.test\r\nX A: b\r\n\r\n")
        XCTAssertEqual(try readResponse(channel).0.status, .badRequest)
        XCTAssertFalse(channel.isActive)
    }

    func testAHeadOverTheLimitsIsAnswered431() throws {
        let channel = try makeChannel { $0.limits.maxHeadBytes = 1024 }
        try sendRaw(channel, "GET /api/printer HTTP/1.1\r\nHost: device.test\r\nX-Big: \(String(repeating: "b", count: 1100))")
        XCTAssertEqual(try readResponse(channel).0.status, .requestHeaderFieldsTooLarge)
        XCTAssertFalse(channel.isActive)
    }

    func testABareLineFeedIsAnswered400AtOnce() throws {
        let channel = try makeChannel()
        try sendRaw(channel, "GET /api/printer HTTP/1.1\nHost: dev")
        XCTAssertEqual(try readResponse(channel).0.status, .badRequest, "answered before the head could end")
        XCTAssertFalse(channel.isActive)
    }

    func testRequestsSplitAtEveryByteAreReadAlike() throws {
        let request = "GET /_gatehouse/healthz HTTP/1.1\r\nHost: device.test\r\n\r\nGET /api/printer HTTP/1.1\r\nHost: device.test\r\n\r\n"
        let channel = try makeChannel()
        for byte in request.utf8 { try channel.writeInbound(channel.allocator.buffer(bytes: [byte])) }
        var bytes = channel.allocator.buffer(capacity: 0)
        while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&part) }
        let statuses = String(buffer: bytes).components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        XCTAssertEqual(statuses, ["200", "401"])
    }

    func testPipelinedRequestsAreAnsweredInOrder() throws {
        let channel = try makeChannel()
        try send(channel, "/_gatehouse/healthz", [])
        try send(channel, "/api/printer", [])
        try send(channel, "/_gatehouse/healthz", [])
        var bytes = channel.allocator.buffer(capacity: 0)
        while var part = try channel.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&part) }
        let text = String(buffer: bytes)
        let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        XCTAssertEqual(statuses, ["200", "401", "200"])
    }
}
