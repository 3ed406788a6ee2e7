import NIOCore
import NIOEmbedded
import GatehouseTestSupport
import XCTest

@testable import GatehouseServer

final class ClientTimeoutHandlerTests: XCTestCase {
    private func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ClientTimeoutHandler(idle: .seconds(75), clientHeader: .seconds(10)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func testAnIdleConnectionIsClosedAfterTheIdleTimeout() throws {
        let channel = try makeChannel()
        channel.embeddedEventLoop.advanceTime(by: .seconds(74))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive)
    }

    func testAHeadStartedButNotFinishedIsCutOffAfterTheHeaderTimeout() throws {
        let channel = try makeChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HT"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(9))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive)
    }

    func testNoClientTimeoutRunsWhileAnExchangeIsInProgress() throws {
        let channel = try makeChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        channel.pipeline.triggerUserOutboundEvent(ClientConnectionPhase.requestHeadReceived, promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(3600))
        XCTAssertTrue(channel.isActive)
    }

    func testTheIdleTimeoutStartsAgainAfterAnExchange() throws {
        let channel = try makeChannel()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        channel.pipeline.triggerUserOutboundEvent(ClientConnectionPhase.requestHeadReceived, promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(100))
        channel.pipeline.triggerUserOutboundEvent(ClientConnectionPhase.exchangeFinished, promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(74))
        XCTAssertTrue(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive)
    }

    func testATunnelHasNoClientTimeout() throws {
        let channel = try makeChannel()
        channel.pipeline.triggerUserOutboundEvent(ClientConnectionPhase.tunnelling, promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .hours(10))
        XCTAssertTrue(channel.isActive)
    }
}
