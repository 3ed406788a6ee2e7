import NIOCore
import NIOTLS

/// Closes a TLS connection whose handshake is not done within `limit` (the client header
/// timeout): the timeout handler behind TLS sees no byte until the handshake ends, so without
/// this a silent client would hold its connection for the whole idle timeout.
///
/// Guarantees: sits right after the TLS handler; removes itself once the handshake completes.
final class TLSHandshakeDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let limit: TimeAmount
    private var timer: DeadlineTimer?

    init(limit: TimeAmount) { self.limit = limit }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let timer = DeadlineTimer(eventLoop: context.eventLoop) { channel.close(promise: nil) }
        timer.set(in: limit)
        self.timer = timer
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Passed on first: once removed, this context no longer reaches the handlers after it.
        context.fireUserInboundEventTriggered(event)
        if case TLSUserEvent.handshakeCompleted = event {
            timer?.cancel()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
