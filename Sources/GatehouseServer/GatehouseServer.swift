import GatehouseCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix

/// A running Gatehouse listener.
///
/// Guarantees: ``start(config:group:logger:)`` returns only once the socket is bound (so the
/// port is known, even for port 0); ``shutdown(drain:)`` stops accepting at once, lets requests
/// in flight finish for up to `drain`, then closes whatever is left; once it returns, the event
/// loop group may be shut down before the server is released. It owns no global state:
/// several servers can run in one process (the tests do).
public final class GatehouseServer: Sendable {
    public let localAddress: SocketAddress
    private let serverChannel: Channel
    /// Dropped by ``shutdown(drain:)``: the helper touches its event loop when it is released,
    /// so it must go while the loops still run, not whenever the last reference to the server does.
    private let quiesce: NIOLockedValueBox<ServerQuiescingHelper?>
    private let pools: [UpstreamPool.Handle]
    private let logger: Logger
    /// Polls the store's revision so other processes' revocations reach the credential cache.
    private let storeWatch: Task<Void, Never>?
    private let settings: SettingsSource
    /// The config the server runs with (the last one applied by ``reload(config:)``).
    private let running: NIOLockedValueBox<GatehouseConfig>
    private let accounts: AccountService?
    private let csrf: OctoPrintCSRFToken
    private let metrics: GatehouseMetrics
    /// Keeps ``csrf`` fresh while `octoprint_csrf` is on.
    private let csrfWatch: Task<Void, Never>?

    private init(
        serverChannel: Channel, quiesce: ServerQuiescingHelper, pools: [UpstreamPool.Handle], logger: Logger,
        storeWatch: Task<Void, Never>?, settings: SettingsSource, config: GatehouseConfig, accounts: AccountService?,
        csrf: OctoPrintCSRFToken, csrfWatch: Task<Void, Never>?, metrics: GatehouseMetrics
    ) throws {
        self.metrics = metrics
        self.csrf = csrf
        self.csrfWatch = csrfWatch
        self.settings = settings
        self.running = NIOLockedValueBox(config)
        self.accounts = accounts
        guard let address = serverChannel.localAddress else { throw ServerError.notBound }
        self.localAddress = address
        self.serverChannel = serverChannel
        self.quiesce = NIOLockedValueBox(quiesce)
        self.pools = pools
        self.logger = logger
        self.storeWatch = storeWatch
    }

    /// How often the store is asked whether another process changed it.
    public static let storeWatchInterval: Duration = .milliseconds(250)

    /// Errors raised while starting.
    public enum ServerError: Error, CustomStringConvertible {
        case notBound
        case bindFailed(String, underlying: String)
        public var description: String {
            switch self {
            case .notBound: return "the listener has no local address"
            case .bindFailed(let address, let underlying): return "cannot listen on \(address): \(underlying)"
            }
        }
    }

    public var port: Int { localAddress.port ?? 0 }

    /// - Parameter accounts: users, sessions, tokens and run-time keys from the store; without it
    ///   only config-file keys and trusted networks are accepted and no sign-in page is served.
    public static func start(
        config: GatehouseConfig, group: MultiThreadedEventLoopGroup, logger: Logger, accounts: AccountService? = nil
    ) async throws -> GatehouseServer {
        let csrf = OctoPrintCSRFToken()
        let metrics = GatehouseMetrics()
        let settings = SettingsSource(ProxySettings(config: config, logger: logger, accounts: accounts, octoPrintCSRF: csrf, metrics: metrics))
        let connectTimeout = TimeAmount.seconds(config.timeouts.upstreamConnect.seconds)
        var pools: [UpstreamPool.Handle] = []
        for loop in group.makeIterator() {
            pools.append(try await UpstreamPool.Handle.make(eventLoop: loop, address: config.upstream, connectTimeout: connectTimeout))
        }
        let poolList = pools
        let quiesce = ServerQuiescingHelper(group: group)
        let decoderLimits: NIOHTTPDecoderLimitConfiguration = {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = config.limits.maxHeadBytes
            limits.maxHeaderListSize = config.limits.maxHeadBytes
            limits.maxHeaderFieldCount = config.limits.maxHeaders
            return limits
        }()
        let limiter = ConnectionLimiter(limits: config.limits, trustedProxies: ClientAddressResolver(trustedProxies: config.trustedProxies))
        let idle = TimeAmount.seconds(config.timeouts.idle.seconds)
        let clientHeader = TimeAmount.seconds(config.timeouts.clientHeader.seconds)
        let clientBody = TimeAmount.seconds(config.timeouts.clientBody.seconds)

        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let pool = poolList.first(where: { $0.eventLoop === channel.eventLoop })?.pool else {
                        throw ServerError.notBound
                    }
                    let peer = channel.remoteAddress.flatMap(IPAddress.init(socketAddress:))
                    if let (refusal, refusedSoFar) = limiter.admit(peer) {
                        // The first refusal and every thousandth after it: a flood must not flood the log too.
                        if refusedSoFar % 1000 == 1 {
                            logger.warning("connection limit reached (\(refusal)); \(refusedSoFar) connection(s) refused so far")
                        }
                        try channel.pipeline.syncOperations.addHandlers([HTTPResponseEncoder(), ConnectionRefusalHandler(refusal)])
                        return
                    }
                    metrics.openConnections.increment()
                    channel.closeFuture.whenComplete { _ in
                        limiter.release(peer)
                        metrics.openConnections.decrement()
                    }
                    let encoder = HTTPResponseEncoder(configuration: {
                        var c = HTTPResponseEncoder.Configuration()
                        c.automaticallySetFramingHeaders = false
                        return c
                    }())
                    let decoder = ByteToMessageHandler(
                        HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: decoderLimits))
                    let pipelining = HTTPServerPipelineHandler()
                    let validator = NIOHTTPResponseHeadersValidator()
                    let errors = ProtocolErrorResponder()
                    let timeouts = ClientTimeoutHandler(idle: idle, clientHeader: clientHeader, clientBody: clientBody)
                    let proxy = ProxyHandler(
                        settings: settings, pool: pool, peer: peer,
                        httpHandlers: [timeouts, pipelining, validator, errors, encoder, decoder])
                    try channel.pipeline.syncOperations.addHandlers([timeouts, encoder, decoder, pipelining, validator, errors, proxy])
                }
            }
        let channel: Channel
        do {
            switch (config.listen.host, config.listen.port) {
            case (let host, let port):
                channel = try await bootstrap.bind(host: host, port: port).get()
            }
        } catch {
            throw ServerError.bindFailed(config.listen.description, underlying: "\(error)")
        }
        let storeWatch = accounts.map { accounts in
            Task { await accounts.credentials.watchStore(every: storeWatchInterval) }
        }
        if config.octoPrintCSRF {
            // The first pair before the first request, when the device is up; otherwise the watch retries.
            await csrf.refreshOnce(upstream: config.upstream, eventLoop: group.next(), connectTimeout: connectTimeout)
        }
        let csrfWatch = config.octoPrintCSRF ? Task {
            await csrf.keepFresh(upstream: config.upstream, eventLoop: group.next(), connectTimeout: connectTimeout, logger: logger)
        } : nil
        let server: GatehouseServer
        do {
            server = try GatehouseServer(
                serverChannel: channel, quiesce: quiesce, pools: pools, logger: logger, storeWatch: storeWatch,
                settings: settings, config: config, accounts: accounts, csrf: csrf, csrfWatch: csrfWatch, metrics: metrics)
        } catch {
            storeWatch?.cancel()
            csrfWatch?.cancel()
            throw error
        }
        logger.info("listening on \(server.localAddress), forwarding to \(config.upstream)")
        return server
    }

    /// Applies a new configuration to every request whose head arrives from now on: API keys,
    /// trusted networks and proxies, access rules, CORS, identity and stripped headers, query and
    /// Basic credentials, the upstream response timeout, the tunnel recheck, the access log.
    /// Requests already in flight finish under the settings they started with.
    ///
    /// What is bound when the server starts — the listen address, the upstream, limits on heads
    /// and connections, connection-level timeouts, the store, sessions, tokens and lockouts — is
    /// kept as it is; the returned lines name each such setting that differs in `config`, so
    /// the caller can say that it needs a restart.
    @discardableResult
    public func reload(config: GatehouseConfig) -> [String] {
        let old = running.withLockedValue { $0 }
        var kept: [String] = []
        var applied = config
        func keep<T: Equatable>(_ name: String, _ path: WritableKeyPath<GatehouseConfig, T>) {
            guard old[keyPath: path] != config[keyPath: path] else { return }
            kept.append("\(name) changed; it takes effect after a restart")
            applied[keyPath: path] = old[keyPath: path]
        }
        keep("listen", \.listen)
        keep("upstream", \.upstream)
        keep("store.path", \.storePath)
        keep("sessions", \.sessions)
        keep("jwt", \.jwt)
        keep("login", \.loginThrottle)
        keep("passwords", \.passwordPolicy)
        keep("timeouts.upstream_connect", \.timeouts.upstreamConnect)
        keep("timeouts.idle", \.timeouts.idle)
        keep("timeouts.client_header", \.timeouts.clientHeader)
        keep("timeouts.client_body", \.timeouts.clientBody)
        keep("limits.max_head_bytes", \.limits.maxHeadBytes)
        keep("limits.max_headers", \.limits.maxHeaders)
        keep("limits.max_connections", \.limits.maxConnections)
        keep("limits.max_connections_per_client", \.limits.maxConnectionsPerClient)
        keep("octoprint_csrf", \.octoPrintCSRF)
        // The connection limiter reads the trusted proxies at start; the gate must agree with it.
        keep("trusted_proxies", \.trustedProxies)
        settings.replace(with: ProxySettings(config: applied, logger: logger, accounts: accounts, octoPrintCSRF: csrf, metrics: metrics))
        running.withLockedValue { $0 = applied }
        return kept
    }

    /// Stops accepting, waits up to `drain` for connections to finish, then closes the rest.
    public func shutdown(drain: TimeAmount) async {
        let loop = serverChannel.eventLoop
        guard let helper = quiesce.withLockedValue({ helper in defer { helper = nil }; return helper }) else { return }
        storeWatch?.cancel()
        await storeWatch?.value
        csrfWatch?.cancel()
        await csrfWatch?.value
        let done = loop.makePromise(of: Void.self)
        helper.initiateShutdown(promise: done)
        let timer = loop.scheduleTask(in: drain) { done.succeed(()) }
        try? await done.futureResult.get()
        timer.cancel()
        for handle in pools { try? await handle.eventLoop.submit { handle.pool.closeIdle() }.get() }
        logger.info("stopped")
    }
}

extension IPAddress {
    /// The IP of an inet/inet6 socket address; nil for a unix socket.
    init?(socketAddress: SocketAddress) {
        guard let ip = socketAddress.ipAddress else { return nil }
        self.init(ip)
    }
}

extension UpstreamPool {
    /// A pool bound to its event loop, safe to hand to other threads because the pool itself is
    /// only ever touched on that loop.
    struct Handle: Sendable {
        let eventLoop: EventLoop
        private let bound: NIOLoopBound<UpstreamPool>

        /// Creates the pool on its own loop (a loop-bound value must be made there).
        static func make(eventLoop: EventLoop, address: UpstreamAddress, connectTimeout: TimeAmount) async throws -> Handle {
            let bound = try await eventLoop.submit {
                NIOLoopBound(UpstreamPool(eventLoop: eventLoop, address: address, connectTimeout: connectTimeout), eventLoop: eventLoop)
            }.get()
            return Handle(eventLoop: eventLoop, bound: bound)
        }

        private init(eventLoop: EventLoop, bound: NIOLoopBound<UpstreamPool>) {
            self.eventLoop = eventLoop
            self.bound = bound
        }

        /// Only on `eventLoop`.
        var pool: UpstreamPool { bound.value }
    }
}
