import NIOCore
import NIOHTTP1

/// Turns an error from NIO's HTTP parser into a response and closes the connection.
///
/// Modelled on NIO's `HTTPServerProtocolErrorHandler`, with two differences: a header section or
/// field over the configured limits is answered 431 rather than 400, and misuse is never a
/// precondition failure (a bad request must never crash the proxy). A response already under
/// way cannot be replaced, and a closing connection cannot be answered: then the connection is
/// only closed.
final class ProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var responseInProgress = false

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // A connection already closing (its last bytes failed to parse as it went, e.g. a head
        // cut off by a shutdown) gets no answer: nothing can be sent, and NIO's pipeline handler
        // treats a write after it quiesced the connection as a fatal error.
        if !responseInProgress && context.channel.isActive {
            let response: GatehouseResponse
            switch parserError {
            case .headerOverflow:
                response = .json(.requestHeaderFieldsTooLarge, detail: "The request head is larger than allowed.", allocator: context.channel.allocator)
            default:
                response = .json(.badRequest, detail: "The request is not valid HTTP/1.1.", allocator: context.channel.allocator)
            }
            context.write(wrapOutboundOut(.head(response.head(version: .http1_1, close: true))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            responseInProgress = false
        }
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200 || head.status.code == 101:
            responseInProgress = true
        case .end:
            responseInProgress = false
        default:
            break
        }
        context.write(data, promise: promise)
    }
}
