import GatehouseCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Asks the Gatehouse on this machine for `healthz` or `readyz`, over TLS when its config says
/// so — what a container's health check runs (`gatehouse health`), since the image has no curl.
///
/// Guarantees: connects only to the configured listen address (a wildcard one is asked on
/// loopback); over TLS the certificate is not checked (this asks the local process whether it
/// serves, not who it is); bounded by `timeout` in all.
public enum LocalHealthProbe {
    public enum ProbeError: Error, CustomStringConvertible {
        case noAnswer
        public var description: String { "no HTTP answer" }
    }

    /// The status `GET path` gets.
    public static func status(of path: String, config: GatehouseConfig, group: EventLoopGroup, timeout: TimeAmount = .seconds(5)) async throws -> Int {
        let host = switch config.listen.host {
        case "0.0.0.0", "": "127.0.0.1"
        case "::": "::1"
        case let other: other
        }
        let tls: NIOSSLContext? = try config.tls.map { _ in
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            return try NIOSSLContext(configuration: configuration)
        }
        let loop = group.next()
        let answer = loop.makePromise(of: Int.self)
        let timer = loop.scheduleTask(in: timeout) { answer.fail(ChannelError.connectTimeout(timeout)) }
        defer { timer.cancel() }
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(StatusCatcher(answer))
                }
            }
            .connect(host: host, port: config.listen.port).get()
        } catch {
            answer.fail(error)
            throw error
        }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "localhost")
        head.headers.add(name: "Connection", value: "close")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        defer { channel.close(promise: nil) }
        return try await answer.futureResult.get()
    }
}

private final class StatusCatcher: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let answer: EventLoopPromise<Int>
    init(_ answer: EventLoopPromise<Int>) { self.answer = answer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { answer.succeed(Int(head.status.code)) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        answer.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        answer.fail(LocalHealthProbe.ProbeError.noAnswer)
    }
}
