import Crypto
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One HTTPS request over a fresh connection, with the trust a test chooses, and the
/// certificate the server presented.
public enum TLSTestClient {
    public struct Answer: Sendable {
        public let status: Int
        public let headers: [(name: String, value: String)]
        public let body: String
        /// SHA-256 of the leaf the server presented, as `AB:CD:…`.
        public let fingerprint: String
        public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    }

    /// - Parameter trusting: PEM of the certificate(s) to trust; nil trusts anything (checks nothing).
    public static func get(
        port: Int, path: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: String? = nil,
        trusting pem: String?, serverName: String? = nil, group: EventLoopGroup
    ) async throws -> Answer {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let pem {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8)))
            configuration.certificateVerification = serverName == nil ? .noHostnameVerification : .fullVerification
        } else {
            configuration.certificateVerification = .none
        }
        let context = try NIOSSLContext(configuration: configuration)
        let collector = ResponseCollector()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: serverName ?? "127.0.0.1:\(port)")
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body { head.headers.add(name: "Content-Length", value: "\(body.utf8.count)") }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
        do {
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        } catch {
            // A failed handshake closes the channel; the collector holds the reason.
            _ = try await collector.done.futureResult.get()
            throw error
        }
        let (response, body) = try await collector.done.futureResult.get()
        let leaf = collector.peerCertificate
        try? await channel.close()
        let der = try leaf?.toDERBytes() ?? []
        let fingerprint = SHA256.hash(data: der).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
        return Answer(
            status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
            body: body, fingerprint: fingerprint)
    }
}

private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private var head: HTTPResponseHead?
    private var body = ""
    private var promise: EventLoopPromise<(HTTPResponseHead, String)>?
    private let lock = NIOLock()
    var done: EventLoopPromise<(HTTPResponseHead, String)> { lock.withLock { promise! } }

    func handlerAdded(context: ChannelHandlerContext) {
        lock.withLock { promise = context.eventLoop.makePromise() }
    }

    /// Read when the response head arrives: the handshake is done, and the server has not yet
    /// closed the connection (which takes the TLS handler out of the pipeline).
    private var _peerCertificate: NIOSSLCertificate?
    var peerCertificate: NIOSSLCertificate? { lock.withLock { _peerCertificate } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            let leaf = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
            lock.withLock { _peerCertificate = leaf }
        case .body(let buffer): body += String(buffer: buffer)
        case .end:
            if let head { done.succeed((head, body)) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        done.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(ChannelError.eof)
    }
}
