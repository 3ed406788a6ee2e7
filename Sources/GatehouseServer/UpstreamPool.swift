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
    private let address: UpstreamAddress
    private let connectTimeout: TimeAmount
    private let maxIdle: Int
    private let maxIdleTime: TimeAmount
    private var idle: [Connection] = []

    init(eventLoop: EventLoop, address: UpstreamAddress, connectTimeout: TimeAmount, maxIdle: Int = 256, maxIdleTime: TimeAmount = .seconds(30)) {
        self.eventLoop = eventLoop
        self.address = address
        self.connectTimeout = connectTimeout
        self.maxIdle = maxIdle
        self.maxIdleTime = maxIdleTime
    }

    func acquire() -> EventLoopFuture<Connection> {
        eventLoop.assertInEventLoop()
        let now = NIODeadline.now()
        while let candidate = idle.popLast() {
            if candidate.handler.isActive && now - candidate.handler.idleSince < maxIdleTime {
                candidate.handler.onClose = nil
                return eventLoop.makeSucceededFuture(Connection(handler: candidate.handler, httpHandlers: candidate.httpHandlers, reused: true))
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
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([encoder, decoder, handler])
                }
            }
        let address = self.address
        return bootstrap.connect(to: address).flatMapErrorThrowing { error in
            throw UpstreamFailure.connectFailed("\(address): \(error)")
        }.map { _ in
            Connection(handler: handler, httpHandlers: httpHandlers, reused: false)
        }
    }
}

extension ClientBootstrap {
    /// Connects to the upstream wherever the config says it is: TCP host and port, or a unix socket.
    func connect(to address: UpstreamAddress) -> EventLoopFuture<Channel> {
        switch address {
        case .tcp(let host, let port): return connect(host: host, port: port)
        case .unixSocket(let path): return connect(unixDomainSocketPath: path)
        }
    }
}
