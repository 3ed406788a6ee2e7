import GatehouseCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import NIOSSL

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
    private let loops: [LoopContext.Handle]
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
    /// The listener's certificate, when Gatehouse terminates TLS.
    private let listenerTLS: ListenerTLS?
    /// The plain-HTTP listener that only redirects to HTTPS (`tls.redirect_http`).
    private let redirectChannel: Channel?
    private let upstream: UpstreamConnector
    /// Pending OctoPrint app-key requests; kept across reloads.
    private let appKeys: any AppKeyRequestBook

    private init(
        serverChannel: Channel, quiesce: ServerQuiescingHelper, loops: [LoopContext.Handle], logger: Logger,
        storeWatch: Task<Void, Never>?, settings: SettingsSource, config: GatehouseConfig, accounts: AccountService?,
        csrf: OctoPrintCSRFToken, csrfWatch: Task<Void, Never>?, metrics: GatehouseMetrics,
        listenerTLS: ListenerTLS?, redirectChannel: Channel?, upstream: UpstreamConnector, appKeys: any AppKeyRequestBook
    ) throws {
        self.appKeys = appKeys
        self.listenerTLS = listenerTLS
        self.redirectChannel = redirectChannel
        self.upstream = upstream
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
        self.loops = loops
        self.logger = logger
        self.storeWatch = storeWatch
    }

    /// How often the store is asked whether another process changed it.
    public static let storeWatchInterval: Duration = .milliseconds(250)

    /// Errors raised while starting.
    public enum ServerError: Error, CustomStringConvertible {
        case notBound
        case bindFailed(String, underlying: String)
        case tls(TLSSetupError)
        public var description: String {
            switch self {
            case .tls(let error): return "\(error)"
            case .notBound: return "the listener has no local address"
            case .bindFailed(let address, let underlying): return "cannot listen on \(address): \(underlying)"
            }
        }
    }

    public var port: Int { localAddress.port ?? 0 }

    /// The plain-HTTP redirect listener's address (`tls.redirect_http`), when there is one.
    public var redirectAddress: SocketAddress? { redirectChannel?.localAddress }

    /// The SHA-256 fingerprint of the listener's certificate, when Gatehouse terminates TLS.
    public var certificateFingerprint: String? { listenerTLS?.loaded.fingerprint }

    /// - Parameters:
    ///   - accounts: users, sessions, tokens and run-time keys from the store; without it only
    ///     config-file keys and trusted networks are accepted and no sign-in page is served.
    ///   - accessLog: where access-log lines go: batched off the event loops (`serve`), or (nil)
    ///     through `logger`, one event per request.
    public static func start(
        config: GatehouseConfig, group: MultiThreadedEventLoopGroup, logger: Logger, accounts: AccountService? = nil,
        accessLog: AccessLogWriter? = nil
    ) async throws -> GatehouseServer {
        let csrf = OctoPrintCSRFToken()
        let appKeys = accounts?.appKeyRequests ?? AppKeyPairing()
        let metrics = GatehouseMetrics()
        let connectTimeout = TimeAmount.seconds(config.timeouts.upstreamConnect.seconds)
        let upstream: UpstreamConnector
        let listenerTLS: ListenerTLS?
        do {
            upstream = try UpstreamConnector(address: config.upstream, settings: config.upstreamTLS, connectTimeout: connectTimeout)
            listenerTLS = try config.tls.map { settings throws(TLSSetupError) in ListenerTLS(try ListenerTLS.load(settings)) }
        } catch {
            throw ServerError.tls(error)
        }
        if config.upstreamTLS.insecureSkipVerify {
            logger.warning("upstream_tls.insecure_skip_verify is on: the certificate of \(config.upstream) is not checked, so anyone on the path to it can read and change the traffic")
        }
        if let loaded = listenerTLS?.loaded {
            if loaded.created { logger.notice("made a self-signed certificate: \(loaded.certificateFile) (key: \(loaded.keyFile))") }
            logger.notice("TLS certificate \(loaded.certificateFile), SHA-256 fingerprint \(loaded.fingerprint)")
            for line in loaded.warnings { logger.warning("\(line)") }
        }
        let initial = ProxySettings(config: config, logger: logger, accounts: accounts, octoPrintCSRF: csrf, metrics: metrics, upstream: upstream, appKeys: appKeys)
        let settings = SettingsSource(initial)
        let sink: AccessLogSink = accessLog.map { .batched($0) } ?? .logger(logger)
        var loops: [LoopContext.Handle] = []
        for loop in group.makeIterator() {
            loops.append(try await LoopContext.Handle.make(eventLoop: loop) {
                LoopContext(
                    eventLoop: loop, pool: UpstreamPool(eventLoop: loop, connector: upstream), settings: initial,
                    metrics: metrics.counters(on: loop),
                    accessLog: LoopAccessLog(sink: sink, eventLoop: loop))
            })
        }
        let loopList = loops
        let quiesce = ServerQuiescingHelper(group: group)
        let headLimits = RequestHeadScanner.Limits(maxHeadBytes: config.limits.maxHeadBytes, maxHeaders: config.limits.maxHeaders)
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
                    guard let loop = loopList.first(where: { $0.eventLoop === channel.eventLoop })?.value else {
                        throw ServerError.notBound
                    }
                    let peer = channel.remoteAddress.flatMap(IPAddress.init(socketAddress:))
                    if let (refusal, refusedSoFar) = limiter.admit(peer) {
                        // The first refusal and every thousandth after it: a flood must not flood the log too.
                        if refusedSoFar % 1000 == 1 {
                            logger.warning("connection limit reached (\(refusal)); \(refusedSoFar) connection(s) refused so far")
                        }
                        try channel.pipeline.syncOperations.addHandler(ConnectionRefusalHandler(refusal, answers: listenerTLS == nil))
                        return
                    }
                    if let listenerTLS {
                        try channel.pipeline.syncOperations.addHandlers([listenerTLS.makeHandler(), TLSHandshakeDeadline(limit: clientHeader)])
                    }
                    let counters = loop.metrics
                    counters.openConnections += 1
                    channel.closeFuture.assumeIsolated().whenComplete { _ in
                        limiter.release(peer)
                        counters.openConnections -= 1
                    }
                    // One handler: the connection's own, with Gatehouse's own request parser.
                    let client = ClientConnectionHandler(
                        loop: loop, settingsSource: settings, peer: peer, headLimits: headLimits, idle: idle, clientHeader: clientHeader,
                        clientBody: clientBody)
                    try channel.pipeline.syncOperations.addHandler(client)
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
        let redirectChannel: Channel?
        if let redirect = config.tls?.redirectHTTP {
            do {
                let httpsPort = config.tls?.httpsPort ?? channel.localAddress?.port ?? config.listen.port
                redirectChannel = try await bindRedirect(redirect, httpsPort: httpsPort, group: group, limiter: limiter, timeout: clientHeader)
            } catch {
                try? await channel.close()
                throw ServerError.bindFailed("\(redirect) (tls.redirect_http)", underlying: "\(error)")
            }
        } else {
            redirectChannel = nil
        }
        let storeWatch = accounts.map { accounts in
            Task { await accounts.credentials.watchStore(every: storeWatchInterval) }
        }
        // Fetched in the background: nothing at start waits on the device (a request that needs
        // the pair before it arrived waits for it, bounded by timeouts.upstream_response).
        let csrfTimeout = TimeAmount.seconds(config.timeouts.upstreamResponse.seconds)
        let csrfWatch = config.octoPrintCSRF ? Task {
            await csrf.keepFresh(upstream: upstream, eventLoop: group.next(), timeout: csrfTimeout, logger: logger)
        } : nil
        let server: GatehouseServer
        do {
            server = try GatehouseServer(
                serverChannel: channel, quiesce: quiesce, loops: loops, logger: logger, storeWatch: storeWatch,
                settings: settings, config: config, accounts: accounts, csrf: csrf, csrfWatch: csrfWatch, metrics: metrics,
                listenerTLS: listenerTLS, redirectChannel: redirectChannel, upstream: upstream, appKeys: appKeys)
        } catch {
            try? await redirectChannel?.close()
            storeWatch?.cancel()
            csrfWatch?.cancel()
            throw error
        }
        logger.info("listening on \(server.localAddress), forwarding to \(config.upstream)\(listenerTLS == nil ? "" : "; clients speak HTTPS")")
        if let address = server.redirectAddress { logger.info("redirecting plain HTTP on \(address) to HTTPS") }
        return server
    }

    /// The `tls.redirect_http` listener: every request gets a redirect to the HTTPS port.
    private static func bindRedirect(
        _ address: ListenAddress, httpsPort: Int, group: MultiThreadedEventLoopGroup, limiter: ConnectionLimiter, timeout: TimeAmount
    ) async throws -> Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let peer = channel.remoteAddress.flatMap(IPAddress.init(socketAddress:))
                    if let (refusal, _) = limiter.admit(peer) {
                        try channel.pipeline.syncOperations.addHandler(ConnectionRefusalHandler(refusal))
                        return
                    }
                    channel.closeFuture.whenComplete { _ in limiter.release(peer) }
                    // The whole exchange must happen within the client header timeout.
                    let deadline = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
                    channel.closeFuture.whenComplete { _ in deadline.cancel() }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPSRedirectHandler(httpsPort: httpsPort))
                }
            }
            .bind(host: address.host, port: address.port).get()
    }

    /// Applies a new configuration to every request whose head arrives from now on: API keys,
    /// trusted networks and proxies, access rules, CORS, identity and stripped headers, query and
    /// Basic credentials, the upstream response timeout, the tunnel recheck, the access log.
    /// Requests already in flight finish under the settings they started with.
    ///
    /// What is bound when the server starts (``ReloadPolicy/restartBound``: the listen address,
    /// the upstream, limits on heads and connections, connection-level timeouts, the store,
    /// sessions, tokens, lockouts, the audit log and log format) is kept as it is; the returned
    /// lines name each such setting that differs in `config`, so the caller can say that it
    /// needs a restart.
    ///
    /// The listener's certificate and key are read again (a renewed certificate is used for
    /// connections accepted from now on); if they cannot be used, nothing at all changes and the
    /// error is thrown.
    @discardableResult
    public func reload(config: GatehouseConfig) throws(TLSSetupError) -> [String] {
        let old = running.withLockedValue { $0 }
        var certificate: ListenerTLS.Loaded?
        if let listenerTLS, let tls = config.tls {
            let loaded = try ListenerTLS.load(tls)
            if loaded.fingerprint != listenerTLS.loaded.fingerprint {
                logger.notice("TLS certificate \(loaded.certificateFile) reloaded, SHA-256 fingerprint \(loaded.fingerprint)")
            }
            for line in loaded.warnings { logger.warning("\(line)") }
            certificate = loaded
        }
        let (applied, kept) = ReloadPolicy.apply(config, over: old)
        if let certificate { listenerTLS?.replace(with: certificate) }
        let fresh = ProxySettings(config: applied, logger: logger, accounts: accounts, octoPrintCSRF: csrf, metrics: metrics, upstream: upstream, appKeys: appKeys)
        settings.replace(with: fresh)
        // Each loop takes its snapshot on the loop: a request reads it without a lock.
        for loop in loops { loop.eventLoop.execute { loop.value.settings = fresh } }
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
        try? await redirectChannel?.close()
        let done = loop.makePromise(of: Void.self)
        helper.initiateShutdown(promise: done)
        let timer = loop.scheduleTask(in: drain) { done.succeed(()) }
        try? await done.futureResult.get()
        timer.cancel()
        for handle in loops {
            try? await handle.eventLoop.submit {
                handle.value.pool.closeIdle()
                handle.value.accessLog.flush()
            }.get()
        }
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
