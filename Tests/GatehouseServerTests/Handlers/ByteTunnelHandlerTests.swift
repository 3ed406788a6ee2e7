import NIOCore
import NIOEmbedded
import GatehouseTestSupport
import XCTest

@testable import GatehouseServer

final class ByteTunnelHandlerTests: XCTestCase {
    private func makePair() throws -> (EmbeddedChannel, EmbeddedChannel) {
        let loop = EmbeddedEventLoop()
        let (a, b) = ByteTunnelHandler.pair()
        let client = EmbeddedChannel(handler: a, loop: loop)
        let upstream = EmbeddedChannel(handler: b, loop: loop)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        return (client, upstream)
    }

    func testBytesReadOnOneSideAreWrittenToTheOtherInOrder() throws {
        let (client, upstream) = try makePair()
        try client.writeInbound(ByteBuffer(string: "hello "))
        try client.writeInbound(ByteBuffer(string: "device"))
        XCTAssertEqual(try upstream.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }, "hello ")
        XCTAssertEqual(try upstream.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }, "device")
        try upstream.writeInbound(ByteBuffer(string: "reply"))
        XCTAssertEqual(try client.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }, "reply")
    }

    func testClosingOneSideClosesTheOther() throws {
        let (client, upstream) = try makePair()
        try client.close().wait()
        XCTAssertFalse(upstream.isActive)
    }

    func testAnErrorOnOneSideClosesBoth() throws {
        struct Broken: Error {}
        let (client, upstream) = try makePair()
        upstream.pipeline.fireErrorCaught(Broken())
        XCTAssertFalse(upstream.isActive)
        XCTAssertFalse(client.isActive)
    }
}
