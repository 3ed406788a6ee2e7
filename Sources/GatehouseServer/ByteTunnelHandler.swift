import NIOCore

/// One half of a raw byte tunnel between two channels (a WebSocket after its 101).
///
/// Guarantees: bytes read on one side are written to the other in order; reading stops while the
/// other side cannot take more (backpressure through writability), so a fast sender cannot fill
/// memory; when either side closes or fails, both are closed. Modelled on NIO's `GlueHandler`.
final class ByteTunnelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: ByteTunnelHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// Called once when this side goes away.
    var onClose: (() -> Void)?

    /// Two handlers that forward to each other; add one to each channel.
    static func pair() -> (ByteTunnelHandler, ByteTunnelHandler) {
        let a = ByteTunnelHandler()
        let b = ByteTunnelHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.partner = nil
    }

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerClose() {
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.partnerWrite(data)
    }

    /// Bytes that arrived on this side before the tunnel took over (after a 101 in the same
    /// read): written to the other side, flushed with its next flush.
    func forwardToPartner(_ bytes: ByteBuffer) {
        partner?.context?.write(NIOAny(bytes), promise: nil)
    }

    /// Closes this side's channel (when the tunnel could not be set up on the other side).
    func closeChannel() {
        context?.close(promise: nil)
    }

    /// Flushes what was written to the other side (bytes handed on outside a read cycle).
    func flushPartner() {
        partner?.partnerFlush()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose?()
        onClose = nil
        partner?.partnerClose()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
        partner?.partnerClose()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
