import GatehouseCore
import NIOCore

/// Why an exchange with the upstream ended without a complete response.
enum UpstreamFailure: Error, Sendable {
    /// Connecting failed (refused, unreachable, connect timeout).
    case connectFailed(String)
    /// The connection closed or failed before the response was complete.
    case closedEarly
    /// The device's response could not be framed (``ResponseScanError``), or it sent bytes unasked.
    case malformedResponse(ResponseScanError)
    /// No response head within `timeouts.upstream_response`.
    case timedOut
}

/// What an exchange is told about its upstream response. All calls happen on the event loop
/// that both connections share.
protocol UpstreamExchangeDelegate: AnyObject {
    /// A response head (interim ones too), with the bytes it was parsed from (`head`'s ranges
    /// are offsets into them). `leftover`: the rest of the read after a 101 (the first bytes of
    /// the tunnel); nil otherwise.
    func upstreamResponseHead(_ head: ScannedResponseHead, bytes: ByteBuffer, leftover: ByteBuffer?)
    /// Body bytes as framed on the wire; `payload` is the body's data within them.
    func upstreamResponseBody(wire: ByteBuffer, payload: ByteBuffer)
    /// The response ended; `wire` holds its last framing bytes (the last chunk), if any.
    func upstreamResponseEnd(wire: ByteBuffer?)
    /// The device's read cycle ended: flush what was written to the client.
    func upstreamReadComplete()
    /// The device can take more of the request body.
    func upstreamBecameWritable()
    /// The exchange failed; `sawNothing` when the device answered nothing and no body byte went
    /// out on a connection that had served a request before (it may be sent again).
    func upstreamFailed(_ failure: UpstreamFailure, retriable: Bool)
    /// Whether the client can take more bytes now; the device is not read while it cannot.
    var clientIsWritable: Bool { get }
}

/// The only handler of a pooled connection to the device: it writes request bytes serialized by
/// the client side, and finds the response's boundaries with a ``ResponseFramingScanner`` —
/// the body is passed on as the buffers that arrived, never decoded and re-encoded.
///
/// Guarantees: response parts go to exactly one delegate at a time; the connection is reusable
/// only when ``UpstreamConnectionStateMachine`` says so; a response that cannot be framed, a
/// byte the device sends unasked, a failure, a timeout or a 101 each end its HTTP life; while the
/// client cannot take more bytes the device is not read (backpressure); nothing is buffered but
/// an incomplete head or chunk-size line.
final class UpstreamConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private(set) var context: ChannelHandlerContext?
    /// The exchange's client side, held strongly for the exchange only (set in `begin`, dropped
    /// at its end, failure or close): a weak reference would put every retain of the client
    /// handler on the runtime's slow path.
    private var delegate: UpstreamExchangeDelegate?
    /// The delegate bytes of the current read cycle went to: it flushes at the cycle's end, also
    /// when the response ended within the cycle.
    private var readCycleDelegate: UpstreamExchangeDelegate?
    private var machine = UpstreamConnectionStateMachine()
    private var scanner = ResponseFramingScanner()
    /// Bytes of an incomplete head or chunk line, waiting for the next read.
    private var cumulation: ByteBuffer?
    private var pendingRead = false
    private var responseTimer: DeadlineTimer?
    private var responseTimeout = TimeAmount.seconds(60)
    /// This connection served a request before the current one (it came from the pool).
    private var reused = false
    /// Set by the pool while the connection is idle in it: told when it closes.
    var onClose: ((UpstreamConnectionHandler) -> Void)?
    var idleSince = NIODeadline.now()

    var channel: Channel? { context?.channel }
    var isActive: Bool { context?.channel.isActive ?? false }
    var isWritable: Bool { context?.channel.isWritable ?? false }
    var isIdle: Bool { machine.isIdle && isActive }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Strong; the cycle is broken in handlerRemoved.
        responseTimer = DeadlineTimer(eventLoop: context.eventLoop) { self.timedOut() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        responseTimer?.cancel()
        responseTimer = nil
        delegate = nil
        readCycleDelegate = nil
        self.context = nil
    }

    // MARK: The exchange, as the client side drives it

    /// Begins an exchange: `requestHead` (the serialized head) is written, not yet flushed.
    func begin(delegate: UpstreamExchangeDelegate, requestHead: ByteBuffer, requestWasHEAD: Bool, responseTimeout: TimeAmount, reused: Bool) {
        self.delegate = delegate
        self.responseTimeout = responseTimeout
        self.reused = reused
        machine.begin(writable: isWritable)
        scanner.expectResponse(requestWasHEAD: requestWasHEAD)
        context?.write(wrapOutboundOut(requestHead), promise: nil)
    }

    /// Request body bytes, already framed for the wire.
    func sendBody(_ bytes: ByteBuffer) {
        machine.sentBody()
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    /// The request's end (`bytes`: the last chunk, for a chunked body); flushed now when `flush`
    /// (otherwise the caller flushes at the end of its read cycle).
    func sendEnd(_ bytes: ByteBuffer?, flush: Bool) {
        if let bytes { context?.write(wrapOutboundOut(bytes), promise: nil) }
        if flush { context?.flush() }
        apply(machine.sentEnd())
    }

    func flush() { context?.flush() }

    /// Closes the connection for good (the exchange was abandoned).
    func close() {
        delegate = nil
        machine.fail()
        responseTimer?.cancel()
        context?.close(promise: nil)
    }

    /// The exchange is over: true when the connection may go back to the pool.
    func finish() -> Bool {
        delegate = nil
        responseTimer?.clear()
        guard cumulation == nil, machine.finish(), isActive else {
            close()
            return false
        }
        return true
    }

    /// The client can take more bytes again.
    func resumeReading() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let delegate { readCycleDelegate = delegate }
        var bytes = unwrapInboundIn(data)
        if var held = cumulation {
            cumulation = nil
            held.writeBuffer(&bytes)
            bytes = held
        }
        process(&bytes)
    }

    /// Runs the scanner over `bytes` and hands each piece on.
    private func process(_ bytes: inout ByteBuffer) {
        while true {
            let step = bytes.withUnsafeReadableBytes { scanner.step($0) }
            switch step {
            case .needMore:
                if bytes.readableBytes > 0 { cumulation = bytes }
                return
            case .head(let head, let consumed):
                guard let headBytes = bytes.readSlice(length: consumed) else { return fail(.closedEarly) }
                apply(machine.receivedHead(interim: head.isInterim, keepAlive: head.keepAlive))
                if head.status == 101 {
                    // Whatever follows belongs to the tunnel.
                    let leftover = bytes.readableBytes > 0 ? bytes : nil
                    delegate?.upstreamResponseHead(head, bytes: headBytes, leftover: leftover)
                    return
                }
                delegate?.upstreamResponseHead(head, bytes: headBytes, leftover: nil)
            case .body(let consumed, let payloadOffset, let payloadCount):
                guard let wire = bytes.readSlice(length: consumed) else { return fail(.closedEarly) }
                let payload = wire.getSlice(at: wire.readerIndex + payloadOffset, length: payloadCount) ?? wire
                delegate?.upstreamResponseBody(wire: wire, payload: payload)
            case .end(let consumed):
                let wire = consumed > 0 ? bytes.readSlice(length: consumed) : nil
                machine.receivedEnd()
                let delegate = self.delegate
                self.delegate = nil
                delegate?.upstreamResponseEnd(wire: wire)
                if bytes.readableBytes > 0 {
                    // Bytes after a complete response that nobody asked for: the device and
                    // Gatehouse disagree on where it ended. This connection is done.
                    machine.fail()
                    context?.close(promise: nil)
                }
                return
            case .failure(let error):
                return fail(.malformedResponse(error))
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readCycleDelegate?.upstreamReadComplete()
        readCycleDelegate = nil
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        apply(machine.writabilityChanged(writable))
        if writable { delegate?.upstreamBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let delegate, !delegate.clientIsWritable {
            pendingRead = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A body framed by the close ends with it.
        if delegate != nil, case .end = scanner.connectionClosed() {
            machine.receivedEnd()
            let delegate = self.delegate
            self.delegate = nil
            delegate?.upstreamResponseEnd(wire: nil)
        }
        fail(.closedEarly)
        // Closed in the middle of a read (Gatehouse closes a connection the device marked
        // `Connection: close` as soon as its response ended): NIO fires no read-complete after
        // that, and the client's side flushes the response only on one.
        if let delegate = readCycleDelegate {
            readCycleDelegate = nil
            delegate.upstreamReadComplete()
        }
        onClose?(self)
        onClose = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(.closedEarly)
        context.close(promise: nil)
    }

    private func timedOut() {
        fail(.timedOut)
        context?.close(promise: nil)
    }

    private func fail(_ failure: UpstreamFailure) {
        let retriable = reused && machine.sawNothing
        machine.fail()
        responseTimer?.cancel()
        cumulation = nil
        guard let delegate else { return }
        self.delegate = nil
        delegate.upstreamFailed(failure, retriable: retriable)
        context?.close(promise: nil)
    }

    private func apply(_ action: UpstreamConnectionStateMachine.TimerAction) {
        switch action {
        case .none: break
        case .start: responseTimer?.set(in: responseTimeout)
        case .stop: responseTimer?.clear()
        }
    }

    /// Hands the channel to a byte tunnel: this handler leaves; `tunnel` takes its place.
    func becomeTunnel(_ tunnel: ByteTunnelHandler) throws {
        guard let context else { throw UpstreamFailure.closedEarly }
        machine.becomeTunnel()
        delegate = nil
        onClose = nil
        responseTimer?.cancel()
        let pipeline = context.pipeline.syncOperations
        try pipeline.addHandler(tunnel, position: .after(self))
        pipeline.removeHandler(context: context, promise: nil)
    }
}
