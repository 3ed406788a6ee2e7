import NIOCore
import NIOEmbedded
import NIOHTTP1
import GatehouseTestSupport
import XCTest

@testable import GatehouseServer

final class ProtocolErrorResponderTests: XCTestCase {
    private func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ProtocolErrorResponder())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private func readHead(_ channel: EmbeddedChannel) throws -> HTTPResponseHead? {
        guard case .head(let head)? = try channel.readOutbound(as: HTTPServerResponsePart.self) else { return nil }
        return head
    }

    func testHeaderOverflowIsAnswered431AndTheConnectionClosed() throws {
        let channel = try makeChannel()
        channel.pipeline.fireErrorCaught(HTTPParserError.headerOverflow)
        let head = try XCTUnwrap(try readHead(channel))
        XCTAssertEqual(head.status, .requestHeaderFieldsTooLarge)
        XCTAssertEqual(head.headers["connection"], ["close"])
        guard case .body(.byteBuffer(let body))? = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            return XCTFail("expected a body")
        }
        XCTAssertEqual(head.headers["content-length"], [String(body.readableBytes)])
        XCTAssertTrue(String(buffer: body).contains("\"detail\""))
        guard case .end? = try channel.readOutbound(as: HTTPServerResponsePart.self) else { return XCTFail("expected end") }
        XCTAssertFalse(channel.isActive)
    }

    func testOtherParserErrorsAreAnswered400() throws {
        let channel = try makeChannel()
        channel.pipeline.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        XCTAssertEqual(try readHead(channel)?.status, .badRequest)
        XCTAssertFalse(channel.isActive)
    }

    func testAResponseAlreadyUnderWayIsNotFollowedByASecondHead() throws {
        let channel = try makeChannel()
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)))
        XCTAssertEqual(try readHead(channel)?.status, .ok)
        channel.pipeline.fireErrorCaught(HTTPParserError.invalidChunkSize)
        XCTAssertNil(try channel.readOutbound(as: HTTPServerResponsePart.self))
        XCTAssertFalse(channel.isActive)
    }

    func testErrorsThatAreNotParserErrorsPassThroughUntouched() throws {
        struct Other: Error {}
        let channel = try makeChannel()
        channel.pipeline.fireErrorCaught(Other())
        XCTAssertNil(try channel.readOutbound(as: HTTPServerResponsePart.self))
        XCTAssertThrowsError(try channel.throwIfErrorCaught())
        XCTAssertTrue(channel.isActive)
    }
}
