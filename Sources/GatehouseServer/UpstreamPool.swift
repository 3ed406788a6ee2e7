import GatehouseCore
import NIOCore
import NIOPosix

/// Keep-alive connections to the upstream, one pool per event loop.
///
/// Guarantees: a connection handed out is active and belongs to this pool's event loop (the
/// same loop as the client connection, so no locks on the request path); an idle connection is
/// handed out synchronously, without a future; only connections that finished a clean exchange
/// come back; at most `maxIdle` idle connections are kept and none longer than `maxIdleTime`.
final class UpstreamPool {
    let eventLoop: EventLoop
    private let connector: UpstreamConnector
    private let maxIdle: Int
    private let maxIdleTime: TimeAmount
    private var idle: [UpstreamConnectionHandler] = []
    /// Told by an idle connection that closes; made once, not per release.
    private lazy var removeClosed: (UpstreamConnectionHandler) -> Void = { [unowned self] closed in
        self.idle.removeAll { $0 === closed }
    }

    init(eventLoop: EventLoop, connector: UpstreamConnector, maxIdle: Int = 256, maxIdleTime: TimeAmount = .seconds(30)) {
        self.eventLoop = eventLoop
        self.connector = connector
        self.maxIdle = maxIdle
        self.maxIdleTime = maxIdleTime
    }

    /// An idle connection from the pool, if one is alive.
    func takeIdle() -> UpstreamConnectionHandler? {
        eventLoop.assertInEventLoop()
        let now = NIODeadline.now()
        while let candidate = idle.popLast() {
            candidate.onClose = nil
            if candidate.isIdle && now - candidate.idleSince < maxIdleTime { return candidate }
            candidate.close()
        }
        return nil
    }

    /// A new connection; the future completes on this loop.
    func connect() -> EventLoopFuture<UpstreamConnectionHandler> {
        let address = connector.address
        return connector.connect(on: eventLoop).flatMapErrorThrowing { error in
            throw UpstreamFailure.connectFailed("\(address): \(error)")
        }.assumeIsolated().flatMapThrowing { channel in
            // Still on this loop, in the same tick as the connect: nothing was read yet.
            let handler = UpstreamConnectionHandler()
            try channel.pipeline.syncOperations.addHandler(handler)
            return handler
        }.nonisolated()
    }

    /// A connection whose exchange is over: kept when it finished cleanly, closed otherwise.
    func release(_ connection: UpstreamConnectionHandler) {
        eventLoop.assertInEventLoop()
        guard connection.finish(), idle.count < maxIdle else {
            connection.close()
            return
        }
        connection.idleSince = .now()
        connection.onClose = removeClosed
        idle.append(connection)
    }

    /// Closes every idle connection (shutdown).
    func closeIdle() {
        let all = idle
        idle.removeAll()
        for connection in all { connection.close() }
    }
}
