import GatehouseCore
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Opens connections to the upstream: TCP, TLS over TCP, or a unix socket.
///
/// Guarantees: an `https` upstream's certificate is verified against the system's roots (or
/// `upstream_tls.ca_file`) and the upstream's host — or `server_name` — unless
/// `insecure_skip_verify` is set; the connect timeout bounds the TCP connect. The returned
/// channel carries the TLS handler already (first in the pipeline); callers add HTTP handlers
/// after it, and a tunnel keeps it when it removes them.
struct UpstreamConnector: Sendable {
    let address: UpstreamAddress
    let connectTimeout: TimeAmount
    /// Nil for plain TCP and unix sockets.
    private let tls: NIOSSLContext?
    /// SNI and the name checked against the certificate; nil for an IP host (then the IP is checked).
    private let serverName: String?

    init(address: UpstreamAddress, settings: UpstreamTLSSettings, connectTimeout: TimeAmount) throws(TLSSetupError) {
        self.address = address
        self.connectTimeout = connectTimeout
        guard case .https(let host, _) = address else {
            tls = nil
            serverName = nil
            return
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        if settings.insecureSkipVerify {
            configuration.certificateVerification = .none
        } else if let caFile = settings.caFile {
            do {
                let roots = try NIOSSLCertificate.fromPEMFile(caFile)
                guard !roots.isEmpty else { throw TLSSetupError.badCAFile(file: caFile, reason: "no certificate in it") }
                configuration.trustRoots = .certificates(roots)
            } catch let error as TLSSetupError {
                throw error
            } catch {
                throw .badCAFile(file: caFile, reason: "not a PEM certificate file (\(error))")
            }
        }
        do {
            tls = try NIOSSLContext(configuration: configuration)
        } catch {
            throw .cannotGenerate(reason: "upstream TLS context: \(error)")
        }
        let name = settings.serverName ?? host
        serverName = IPAddress(name) == nil ? name : nil
    }

    /// A plain connector (tests, and `http`/unix upstreams that need no TLS set-up).
    init(address: UpstreamAddress, connectTimeout: TimeAmount) {
        self.address = address
        self.connectTimeout = connectTimeout
        self.tls = nil
        self.serverName = nil
    }

    /// Connects on `eventLoop`; for TLS the handshake follows on its own (the first write waits
    /// for it, and a failed verification fails that write and closes the channel).
    /// - Parameter handshake: completed when the TLS handshake ends (or fails); watched from the
    ///   start, so a handshake that ends before the caller looks is not missed.
    func connect(on eventLoop: EventLoop, handshake: EventLoopPromise<Void>? = nil) -> EventLoopFuture<Channel> {
        let tls = self.tls
        let serverName = self.serverName
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        if let handshake { try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(handshake)) }
                    }
                }
            }
        switch address {
        case .tcp(let host, let port), .https(let host, let port): return bootstrap.connect(host: host, port: port)
        case .unixSocket(let path): return bootstrap.connect(unixDomainSocketPath: path)
        }
    }

    /// Connects and, for TLS, waits for the handshake (certificate checked) — for `readyz`.
    func connectAndHandshake(on eventLoop: EventLoop) async throws -> Channel {
        let done = eventLoop.makePromise(of: Void.self)
        let channel: Channel
        do {
            channel = try await connect(on: eventLoop, handshake: done).get()
        } catch {
            done.fail(error)
            throw error
        }
        guard tls != nil else {
            done.succeed(())
            return channel
        }
        let timer = eventLoop.scheduleTask(in: connectTimeout) { done.fail(ChannelError.connectTimeout(self.connectTimeout)) }
        defer { timer.cancel() }
        do {
            try await done.futureResult.get()
        } catch {
            try? await channel.close()
            throw error
        }
        return channel
    }

    /// The `Host` to send on requests Gatehouse makes itself (the CSRF fetch).
    var hostHeader: String {
        switch address {
        case .tcp(let host, let port), .https(let host, let port):
            let name = host.contains(":") ? "[\(host)]" : host
            return "\(name):\(port)"
        case .unixSocket: return "localhost"
        }
    }
}

/// Completes its promise when the TLS handshake finishes or fails. It stays in the pipeline for
/// the connection's life and passes every event on; a promise completes once, so what comes
/// after the handshake changes nothing.
private final class HandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let done: EventLoopPromise<Void>
    init(_ done: EventLoopPromise<Void>) { self.done = done }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { done.succeed(()) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        done.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(ChannelError.eof)
        context.fireChannelInactive()
    }
}
