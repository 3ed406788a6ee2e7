import NIOCore

/// Events the proxy handler sends toward this handler to say where the connection is.
enum ClientConnectionPhase: Sendable {
    /// A request head was received: until its end arrives, each read of its body must bring
    /// bytes within `clientBody`.
    case requestHeadReceived
    /// The request's end arrived: no client timeout applies until the exchange ends.
    case requestEndReceived
    /// The response was written completely: the connection is idle again.
    case exchangeFinished
    /// The connection became a tunnel: its own lifetime rules apply.
    case tunnelling
}

/// Cuts off clients that hold a connection without using it.
///
/// Guarantees: an idle keep-alive connection (no byte of a next request) is closed after
/// `idle`; once the first byte of a request has arrived, its head must be complete within
/// `clientHeader`, otherwise the connection is closed (slowloris); while its body is being
/// received, each read Gatehouse asks for must bring bytes within `clientBody` (a client that
/// stops sending its body mid-way is cut off, as nginx's `client_body_timeout`). The body clock
/// runs only while Gatehouse is reading: a client held back by backpressure or a store lookup is
/// never blamed. Sits first in the pipeline, so it sees raw bytes before the HTTP parser.
final class ClientTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = NIOAny

    private enum Phase { case idle, readingHead, readingBody, inExchange, tunnel }

    private let idle: TimeAmount
    private let clientHeader: TimeAmount
    private let clientBody: TimeAmount
    private var phase = Phase.idle
    private var timer: DeadlineTimer?
    private var context: ChannelHandlerContext?

    init(idle: TimeAmount, clientHeader: TimeAmount, clientBody: TimeAmount = .seconds(30)) {
        self.idle = idle
        self.clientHeader = clientHeader
        self.clientBody = clientBody
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let channel = context.channel
        timer = DeadlineTimer(eventLoop: context.eventLoop) { [weak channel] in channel?.close(promise: nil) }
        if channel.isActive { arm(context: context, after: idle) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context, after: idle)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .idle:
            phase = .readingHead
            arm(context: context, after: clientHeader)
        case .readingBody:
            timer?.clear()  // bytes came; the next read asked for starts the clock again
        case .readingHead, .inExchange, .tunnel:
            break
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        if phase == .readingBody { arm(context: context, after: clientBody) }
        context.read()
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? ClientConnectionPhase else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        enter(event, context: context)
        promise?.succeed(())
    }

    /// The same as sending `phase` as an outbound user event, without the trip through the
    /// pipeline: the proxy handler of the same connection calls it once or twice per request.
    func enter(_ phase: ClientConnectionPhase) {
        guard let context else { return }
        enter(phase, context: context)
    }

    private func enter(_ event: ClientConnectionPhase, context: ChannelHandlerContext) {
        switch event {
        case .requestHeadReceived:
            phase = .readingBody
            timer?.clear()
        case .requestEndReceived:
            if phase == .readingBody { phase = .inExchange }
            timer?.clear()
        case .exchangeFinished:
            phase = .idle
            arm(context: context, after: idle)
        case .tunnelling:
            phase = .tunnel
            timer?.cancel()
        }
    }

    private func arm(context: ChannelHandlerContext, after delay: TimeAmount) {
        guard context.channel.isActive else { return }
        timer?.set(in: delay)
    }
}
