import NIOCore
import NIOHTTP1
import NIOPosix

/// A tiny HTTP server that answers every request with its request line and headers as plain
/// text: the upstream of `gatehouse demo`, so a newcomer can see exactly what the device would
/// receive (the injected identity, and no credential).
///
/// Guarantees: listens on loopback only; reads and discards request bodies; never crashes on
/// any request NIO can parse.
public final class EchoUpstream: Sendable {
    public let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    public var port: Int { channel.localAddress?.port ?? 0 }

    public static func start(group: EventLoopGroup, port: Int = 0) async throws -> EchoUpstream {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        return EchoUpstream(channel: channel)
    }

    public func stop() async { try? await channel.close() }
}

private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var text = ""
    private var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            text = "The device received:\n\n\(head.method.rawValue) \(head.uri) HTTP/\(head.version.major).\(head.version.minor)\n"
            for (name, value) in head.headers { text += "\(name): \(value)\n" }
        case .body:
            break
        case .end:
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: String(text.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
            let keepAlive = self.keepAlive
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { channel.close(promise: nil) }
            }
        }
    }
}
