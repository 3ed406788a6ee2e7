import GatehouseCore
import NIOCore
import NIOHTTP1
import Synchronization

/// Counts open client connections, in all and per client address, and turns away those past
/// `limits.max_connections` / `limits.max_connections_per_client`.
///
/// Guarantees: a connection is counted from ``admit(_:)`` until ``release(_:)`` (the server
/// releases on the channel's close, whatever the reason), so the counts never drift; a trusted
/// proxy's address is held only to the total (every client behind it shares it); memory holds
/// one entry per address with an open connection; refusals are counted (the running count goes
/// to the log).
final class ConnectionLimiter: Sendable {
    private struct State {
        var total = 0
        var perAddress: [IPAddress: Int] = [:]
        var refused: Int = 0
    }

    let maxTotal: Int
    let maxPerAddress: Int
    private let trustedProxies: ClientAddressResolver
    private let state = Mutex(State())

    init(limits: GatehouseConfig.Limits, trustedProxies: ClientAddressResolver) {
        self.maxTotal = limits.maxConnections
        self.maxPerAddress = limits.maxConnectionsPerClient
        self.trustedProxies = trustedProxies
    }

    /// Why a connection was turned away.
    enum Refusal: Equatable {
        case tooManyConnections
        case tooManyFromAddress
    }

    /// Counts the connection in, or says why not (then nothing is counted but the refusal);
    /// `refusedSoFar` is the running count of refusals including this one (for sparse logging).
    func admit(_ peer: IPAddress?) -> (refusal: Refusal, refusedSoFar: Int)? {
        let perAddressApplies = peer.map { !trustedProxies.isTrustedProxy($0) } ?? false
        return state.withLock { state in
            if state.total >= maxTotal {
                state.refused += 1
                return (.tooManyConnections, state.refused)
            }
            if perAddressApplies, let peer, state.perAddress[peer, default: 0] >= maxPerAddress {
                state.refused += 1
                return (.tooManyFromAddress, state.refused)
            }
            state.total += 1
            if let peer { state.perAddress[peer, default: 0] += 1 }
            return nil
        }
    }

    /// Counts an admitted connection out.
    func release(_ peer: IPAddress?) {
        state.withLock { state in
            state.total -= 1
            guard let peer, let count = state.perAddress[peer] else { return }
            if count <= 1 { state.perAddress.removeValue(forKey: peer) } else { state.perAddress[peer] = count - 1 }
        }
    }
}

/// Answers a connection that was turned away with a 503 and closes it, without reading a byte.
/// The answer is a ``GatehouseResponse`` like every other Gatehouse writes itself.
final class ConnectionRefusalHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let refusal: ConnectionLimiter.Refusal
    /// False on a TLS listener: a TLS client cannot read a plain answer, and a TLS one would
    /// cost a handshake (and wait for one that may never come), so the connection is just closed.
    private let answers: Bool

    init(_ refusal: ConnectionLimiter.Refusal, answers: Bool = true) {
        self.refusal = refusal
        self.answers = answers
    }

    func channelActive(context: ChannelHandlerContext) {
        guard answers else {
            context.close(promise: nil)
            return
        }
        let detail = refusal == .tooManyConnections
            ? "Gatehouse has too many open connections; try again shortly."
            : "Too many open connections from your address; close some and try again."
        let response = GatehouseResponse.reply(ErrorReply(status: 503, detail: detail, retryAfter: 1), allocator: context.channel.allocator)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(
            wrapOutboundOut(response.serialized(versionMinor: 1, close: true, headRequest: false, allocator: context.channel.allocator)),
            promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
