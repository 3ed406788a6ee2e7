import Foundation
import GatehouseCore
import GatehouseTestSupport
import NIOCore
import NIOPosix
import XCTest

/// A WebSocket upgrade becomes a raw byte tunnel between client and device, only for an
/// authenticated client, and ends on both sides together.
final class WebSocketTests: XCTestCase {
    private static func upgradeRequest(key: Bool) -> String {
        "GET /ws HTTP/1.1\r\nHost: gatehouse.test\r\n" + (key ? "\(StreamTest.keyHeader)\r\n" : "")
            + "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    }

    /// Opens a tunnel and returns the client, after checking the 101.
    private func openTunnel(_ fx: ProxyFixture) throws -> RawClient {
        let c = try fx.client()
        try c.send(Self.upgradeRequest(key: true))
        let response = try c.readResponse()
        XCTAssertEqual(response.status, 101)
        XCTAssertEqual(response.header("Upgrade")?.lowercased(), "websocket")
        XCTAssertEqual(response.header("Connection")?.lowercased(), "upgrade")
        return c
    }

    private func echo(_ c: RawClient, _ bytes: [UInt8]) throws -> [UInt8] {
        try c.send(bytes)
        return try StreamTest.read(c) { $0.count >= bytes.count }
    }

    func testAuthenticatedUpgradeGets101AndTunnelEchoesBytesBothWays() async throws {
        try await ProxyFixture.with { fx in
            let c = try openTunnel(fx)
            let recorded = fx.upstream.requests
            XCTAssertEqual(recorded.count, 1)
            XCTAssertEqual(recorded.first?.values("Upgrade").map { $0.lowercased() }, ["websocket"])
            XCTAssertEqual(recorded.first?.values("X-Remote-User"), ["alice"])

            // Raw bytes, including ones that would mean something to an HTTP parser.
            let messages: [[UInt8]] = [
                Array("hello".utf8),
                [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
                Array("GET /not-http HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
                [0x00, 0x0d, 0x0a, 0xff],
            ]
            for message in messages {
                XCTAssertEqual(try echo(c, message), message)
            }
        }
    }

    func testBytesTheDeviceSendsRightBehindItsUpgradeAnswerReachTheClient() async throws {
        // OctoPrint and Moonraker greet the moment the socket opens, so the greeting often rides
        // in the same TCP segment as the 101: it must not be lost with the HTTP decoder.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let greeting: [UInt8] = [0x81, 0x09] + Array("connected".utf8)  // a WebSocket text frame
        let device = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(GreetingDevice(greeting: greeting)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            let port = try XCTUnwrap(device.localAddress?.port)
            try await ProxyFixture.with({ $0.upstream = .tcp(host: "127.0.0.1", port: port) }) { fx in
                for _ in 0..<20 {
                    let c = try fx.client()
                    try c.send(Self.upgradeRequest(key: true))
                    XCTAssertEqual(try c.readResponse().status, 101)
                    XCTAssertEqual(try StreamTest.read(c) { $0.count >= greeting.count }, greeting)
                }
            }
        } catch {
            try? await device.close()
            try? await group.shutdownGracefully()
            throw error
        }
        try? await device.close()
        try? await group.shutdownGracefully()
    }

    func testBytesTheClientSendsRightBehindItsUpgradeRequestReachTheDevice() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client()
            // A client may send its first frame without waiting for the 101.
            try c.send(Self.upgradeRequest(key: true) + "first frame")
            XCTAssertEqual(try c.readResponse().status, 101)
            let echoed = try StreamTest.read(c) { $0.count >= "first frame".utf8.count }
            XCTAssertEqual(String(decoding: echoed, as: UTF8.self), "first frame", "the device got it and echoed it, with nothing more sent")
        }
    }

    func testTunnelCarriesOneMiBMessageIntactBothWays() async throws {
        try await ProxyFixture.with { fx in
            let c = try openTunnel(fx)
            let big = StreamTest.payload(1 << 20, seed: 42)
            // Sent from another thread while this one reads the echo, so neither side waits on
            // the other's socket buffers.
            let sender = StreamTest.BackgroundSend(fd: c.fd, bytes: big)
            let echoed = try StreamTest.read(c) { $0.count >= big.count }
            XCTAssertTrue(sender.finished())
            XCTAssertEqual(echoed.count, big.count)
            XCTAssertTrue(echoed == big, "the echoed MiB differs from what was sent")
            // The tunnel is still usable afterwards.
            XCTAssertEqual(try echo(c, Array("after".utf8)), Array("after".utf8))
        }
    }

    func testUnauthenticatedUpgradeGets401AndReachesNothing() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client(timeout: 3)
            try c.send(Self.upgradeRequest(key: false))
            let response = try c.readResponse()
            XCTAssertEqual(response.status, 401)
            XCTAssertNil(response.header("Upgrade"))
            // No tunnel: the connection is closed after the refusal rather than left as a pipe.
            XCTAssertTrue(c.isClosedByPeer())
            XCTAssertTrue(fx.upstream.requests.isEmpty)
            XCTAssertEqual(fx.upstream.connectionsAccepted, 0)
        }
    }

    func testClosingClientClosesUpstreamTunnel() async throws {
        try await ProxyFixture.with { fx in
            let c = try openTunnel(fx)
            XCTAssertEqual(try echo(c, Array("ping".utf8)), Array("ping".utf8))
            XCTAssertEqual(fx.upstream.tunnelsClosed, 0)
            StreamTest.hangUp(c)
            XCTAssertTrue(
                ProxyFixture.eventually { fx.upstream.tunnelsClosed == 1 },
                "the upstream side of the tunnel stayed open after the client left")
        }
    }
}

/// A device that answers any request head with a 101 and a first message in one write.
private final class GreetingDevice: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let greeting: [UInt8]
    private var received: [UInt8] = []
    private var answered = false

    init(greeting: [UInt8]) { self.greeting = greeting }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readBytes(length: buffer.readableBytes) ?? []
        guard !answered, StreamTest.occurrences(of: "\r\n\r\n", in: received) > 0 else { return }
        answered = true
        let answer = Array(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").utf8) + greeting
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: answer)), promise: nil)
    }
}
