import GatehouseCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// Keep-alive connections to the upstream, one pool per event loop.
///
/// Guarantees: a connection handed out is active and belongs to this pool's event loop (the
/// same loop as the client connection, so no locks on the request path); only connections that
/// finished a clean exchange come back; at most `maxIdle` idle connections are kept and none
/// longer than `maxIdleTime`.
final class UpstreamPool {
    /// The HTTP handlers of one upstream connection, kept so a tunnel can remove them.
    struct Connection {
        let handler: UpstreamConnection
        let httpHandlers: [RemovableChannelHandler]
        let reused: Bool
    }

    let eventLoop: EventLoop
    private let connector: UpstreamConnector
    private let maxIdle: Int
    private let maxIdleTime: TimeAmount
    private var idle: [Connection] = []

    init(eventLoop: EventLoop, connector: UpstreamConnector, maxIdle: Int = 256, maxIdleTime: TimeAmount = .seconds(30)) {
        self.eventLoop = eventLoop
        self.connector = connector
        self.maxIdle = maxIdle
        self.maxIdleTime = maxIdleTime
    }

    /// An idle connection, or a new one; `fresh`: always a new one (a retry after a kept-alive
    /// connection failed under the request).
    func acquire(fresh: Bool = false) -> EventLoopFuture<Connection> {
        eventLoop.assertInEventLoop()
        let now = NIODeadline.now()
        while !fresh, let candidate = idle.popLast() {
            if candidate.handler.isActive && now - candidate.handler.idleSince < maxIdleTime {
                candidate.handler.onClose = nil
                return eventLoop.assumeIsolated().makeSucceededFuture(Connection(handler: candidate.handler, httpHandlers: candidate.httpHandlers, reused: true))
            }
            candidate.handler.close()
        }
        return connect()
    }

    func release(_ connection: Connection) {
        eventLoop.assertInEventLoop()
        guard connection.handler.isReusable, idle.count < maxIdle else {
            connection.handler.close()
            return
        }
        connection.handler.idleSince = .now()
        connection.handler.onClose = { [weak self] closed in
            self?.idle.removeAll { $0.handler === closed }
        }
        idle.append(Connection(handler: connection.handler, httpHandlers: connection.httpHandlers, reused: true))
    }

    /// Closes every idle connection (shutdown).
    func closeIdle() {
        let all = idle
        idle.removeAll()
        for connection in all { connection.handler.close() }
    }

    private func connect() -> EventLoopFuture<Connection> {
        let handler = UpstreamConnection()
        let encoder = HTTPRequestEncoder(configuration: {
            var c = HTTPRequestEncoder.Configuration()
            c.automaticallySetFramingHeaders = false
            return c
        }())
        let decoder = ByteToMessageHandler(
            HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .forward))
        // No NIOHTTPRequestHeadersValidator here: every header sent upstream is either a client
        // header that RequestFramingValidator already checked, or one Gatehouse set from the
        // validated configuration and identity.
        let httpHandlers: [RemovableChannelHandler] = [decoder, encoder]
        let address = connector.address
        return connector.connect(on: eventLoop).flatMapErrorThrowing { error in
            throw UpstreamFailure.connectFailed("\(address): \(error)")
        }.assumeIsolated().flatMapThrowing { channel in
            // Still on this loop, in the same tick as the connect: nothing was read yet.
            try channel.pipeline.syncOperations.addHandlers([encoder, decoder, handler])
            return Connection(handler: handler, httpHandlers: httpHandlers, reused: false)
        }.nonisolated()
    }
}
