import Foundation
import GatehouseCore
import NIOCore

/// Closes a WebSocket tunnel once the credential that opened it stops authenticating — a
/// logged-out session, a revoked key or token, a disabled or deleted user, an expiry — so that
/// signing out really ends a live printer console.
///
/// Guarantees: the credential is asked again every `interval` for as long as the tunnel lives
/// (through the credential cache, so a still-valid credential costs no store read); the first
/// answer other than success closes the client side, and the tunnel closes the device side with
/// it. A check never runs on a closed channel, and the handler holds no timer once removed.
final class TunnelCredentialWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    /// Answers whether the credential still authenticates at `now`.
    typealias Check = @Sendable (Date) async -> Bool

    private let interval: TimeAmount
    private let now: @Sendable () -> Date
    private let check: Check
    private var scheduled: Scheduled<Void>?

    init(interval: TimeAmount, now: @escaping @Sendable () -> Date, check: @escaping Check) {
        self.interval = interval
        self.now = now
        self.check = check
    }

    func handlerAdded(context: ChannelHandlerContext) { scheduleNext(context: context) }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }

    func channelInactive(context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
        context.fireChannelInactive()
    }

    private func scheduleNext(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        scheduled = context.eventLoop.scheduleTask(in: interval) {
            let (watch, context) = loopBound.value
            watch.runCheck(context: context)
        }
    }

    private func runCheck(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let check = self.check
        let at = now()
        let answer = context.eventLoop.makePromise(of: Bool.self)
        answer.completeWithTask { await check(at) }
        answer.futureResult.assumeIsolated().whenSuccess { stillValid in
            guard context.channel.isActive else { return }
            if stillValid {
                self.scheduleNext(context: context)
            } else {
                context.close(promise: nil)
            }
        }
    }
}
