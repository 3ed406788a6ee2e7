import NIOCore
import NIOHTTP1

/// Why an exchange with the upstream ended without a complete response.
enum UpstreamFailure: Error, Sendable {
    /// Connecting failed (refused, unreachable, connect timeout).
    case connectFailed(String)
    /// The connection closed or failed before the response was complete.
    case closedEarly
}

/// What an exchange is told about its upstream response. All calls happen on the event loop
/// that both connections share.
protocol UpstreamResponseReceiver: AnyObject {
    func upstreamResponseHead(_ head: HTTPResponseHead)
    func upstreamResponseBody(_ body: ByteBuffer)
    func upstreamResponseEnd()
    func upstreamReadComplete()
    func upstreamBecameWritable()
    func upstreamFailed(_ failure: UpstreamFailure)
    /// Whether the client can take more bytes now; the upstream is not read while it cannot.
    var clientIsWritable: Bool { get }
}

/// The handler at the end of one pooled upstream connection's pipeline.
///
/// Guarantees: it forwards response parts to exactly one receiver at a time; it is reusable only
/// after a complete request was written and a complete keep-alive response was read, and never
/// after a failure, a 101, or `Connection: close`; while the client cannot take more bytes it
/// stops reading from the upstream (backpressure).
final class UpstreamConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private(set) var context: ChannelHandlerContext?
    weak var receiver: UpstreamResponseReceiver?
    /// Set by the pool; told when this connection closes so an idle one leaves the pool.
    var onClose: ((UpstreamConnection) -> Void)?

    private var pendingRead = false
    private var requestComplete = false
    private var responseComplete = false
    private var responseKeepAlive = true
    private var failed = false
    var idleSince: NIODeadline = .now()

    var channel: Channel? { context?.channel }
    var isActive: Bool { context?.channel.isActive ?? false }
    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// A complete exchange that left the connection clean enough for the next request.
    var isReusable: Bool { isActive && requestComplete && responseComplete && responseKeepAlive && !failed }

    /// Begins a new exchange on this connection.
    func begin(receiver: UpstreamResponseReceiver) {
        self.receiver = receiver
        requestComplete = false
        responseComplete = false
        responseKeepAlive = true
    }

    func send(_ part: HTTPClientRequestPart, flush: Bool) {
        guard let context else { return }
        if case .end = part { requestComplete = true }
        if flush {
            context.writeAndFlush(wrapOutboundOut(part), promise: nil)
        } else {
            context.write(wrapOutboundOut(part), promise: nil)
        }
    }

    func flush() { context?.flush() }

    func close() {
        failed = true
        context?.close(promise: nil)
    }

    /// The client can take more bytes again.
    func resumeReading() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status.code >= 200 || head.status.code == 101 {
                responseKeepAlive = head.isKeepAlive && head.status.code != 101
            }
            receiver?.upstreamResponseHead(head)
        case .body(let body):
            receiver?.upstreamResponseBody(body)
        case .end:
            responseComplete = true
            let receiver = self.receiver
            self.receiver = nil
            receiver?.upstreamResponseEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        receiver?.upstreamReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { receiver?.upstreamBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let receiver, !receiver.clientIsWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failed = true
        fail()
        onClose?(self)
        onClose = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failed = true
        fail()
        context.close(promise: nil)
    }

    private func fail() {
        guard let receiver else { return }
        self.receiver = nil
        receiver.upstreamFailed(.closedEarly)
    }

    /// Hands the channel over to a byte tunnel: everything HTTP is taken out of its pipeline, and
    /// bytes the upstream sent right after its 101 (a greeting often shares the 101's TCP
    /// segment) go to `tunnel` as the response decoder leaves, and are flushed on.
    func becomeTunnel(_ tunnel: ByteTunnelHandler, httpHandlers: [RemovableChannelHandler]) throws {
        guard let context else { throw UpstreamFailure.closedEarly }
        failed = true  // never back into the pool
        receiver = nil
        onClose = nil
        let pipeline = context.pipeline.syncOperations
        try pipeline.addHandler(tunnel)
        pipeline.removeHandler(context: context, promise: nil)
        for handler in httpHandlers {
            if handler is ByteToMessageHandler<HTTPResponseDecoder> {
                tunnel.removeDecoder(handler, from: pipeline)
            } else {
                pipeline.removeHandler(handler, promise: nil)
            }
        }
    }
}
