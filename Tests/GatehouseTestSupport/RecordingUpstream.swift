import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// What the upstream saw of one request.
public struct RecordedRequest: Sendable {
    public let method: String
    public let uri: String
    public let version: String
    public let headers: [(name: String, value: String)]
    public var bodyBytes: Int
    public var bodySHA: String?
    /// The request's end arrived (its whole body was received).
    public var complete = false
    public let connectionID: Int

    /// Every value of `name`, compared case-insensitively and with `_` folded into `-`, the way a
    /// WSGI device would merge them.
    public func values(_ name: String) -> [String] {
        let wanted = fold(name)
        return headers.filter { fold($0.name) == wanted }.map(\.value)
    }
}

private func fold(_ s: String) -> String { s.lowercased().replacingOccurrences(of: "_", with: "-") }

/// A real HTTP/1.1 server on 127.0.0.1 (or a unix socket) that records every request it receives
/// and answers according to the path:
///
/// - `/slow`            never answers (504 tests)
/// - `/reset`           sends a head promising 1000 bytes, 10 of them, then closes (truncation)
/// - `/download?bytes=N[&chunked=1]`  N bytes of body, Content-Length or chunked
/// - `/mjpeg`           an endless multipart stream until the connection closes
/// - `/ws`              with `Upgrade: websocket`: answers 101, then echoes raw bytes
/// - `/status/N`        an empty response with status N
/// - `/drop-on-reuse`   on a connection's first request, 200; on any later one (a kept-alive
///                      connection reused), reads the whole request and closes without a word
/// - `/drop`            reads the whole request and closes without a word, always
/// - `/` (GET)          with `holdRoot`, answered only after that long, with OctoPrint's
///                      `csrf_token_P5000` cookie (a device still starting)
/// - anything else      200 with a small JSON body; the request body is counted and hashed
///                      (`?close=1`: with `Connection: close`, and the connection closed after)
public final class RecordingUpstream: @unchecked Sendable {
    // @unchecked: all mutable state is behind `lock`.
    private let lock = NIOLock()
    private var _requests: [RecordedRequest] = []
    private var _connections = 0
    private var _openMJPEG = 0
    private var _closedMJPEG = 0
    private var _tunnelsClosed = 0
    private(set) var channel: Channel!

    public var requests: [RecordedRequest] { lock.withLock { _requests } }
    public var connectionsAccepted: Int { lock.withLock { _connections } }
    public var mjpegStreamsClosed: Int { lock.withLock { _closedMJPEG } }
    public var tunnelsClosed: Int { lock.withLock { _tunnelsClosed } }
    private var _rootAnswers = 0
    /// How many held `GET /` were answered so far (with ``holdRoot``).
    public var rootAnswers: Int { lock.withLock { _rootAnswers } }
    fileprivate func rootAnswered() { lock.withLock { _rootAnswers += 1 } }
    public var port: Int { channel.localAddress?.port ?? 0 }

    public func reset() { lock.withLock { _requests.removeAll() } }

    /// - Parameter tls: serve HTTPS with this context (an `https://` upstream).
    /// How long `GET /` is held before its answer (nil: answered at once, like any path).
    public let holdRoot: TimeAmount?
    /// The CSRF cookie value `GET /` sets when ``holdRoot`` is given.
    public static let deviceCSRFToken = "device-csrf-token.signed"

    private init(holdRoot: TimeAmount?) { self.holdRoot = holdRoot }

    /// - Parameter tls: serve HTTPS with this context (an `https://` upstream).
    public static func start(
        group: EventLoopGroup, unixSocket: String? = nil, tls: NIOSSLContext? = nil, holdRoot: TimeAmount? = nil
    ) async throws -> RecordingUpstream {
        let upstream = RecordingUpstream(holdRoot: holdRoot)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let id = upstream.lock.withLock { () -> Int in
                    upstream._connections += 1
                    return upstream._connections
                }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: true)
                    try channel.pipeline.syncOperations.addHandler(UpstreamRequestHandler(upstream: upstream, connectionID: id))
                }
            }
        if let unixSocket {
            try? FileManager.default.removeItem(atPath: unixSocket)
            upstream.channel = try await bootstrap.bind(unixDomainSocketPath: unixSocket).get()
        } else {
            upstream.channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        }
        return upstream
    }

    public func stop() async { try? await channel.close() }

    fileprivate func record(_ r: RecordedRequest) { lock.withLock { _requests.append(r) } }
    fileprivate func updateLast(connectionID: Int, bytes: Int, sha: String?) {
        lock.withLock {
            if let i = _requests.lastIndex(where: { $0.connectionID == connectionID }) {
                _requests[i].bodyBytes = bytes
                _requests[i].bodySHA = sha
                _requests[i].complete = true
            }
        }
    }
    fileprivate func mjpegClosed() { lock.withLock { _closedMJPEG += 1 } }
    fileprivate func tunnelClosed() { lock.withLock { _tunnelsClosed += 1 } }
}

import Crypto

private final class UpstreamRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    public let upstream: RecordingUpstream
    public let connectionID: Int
    public var head: HTTPRequestHead?
    public var bodyBytes = 0
    public var hasher = SHA256()
    public var streamingMJPEG = false
    /// After a 101 the `.end` of the upgrade request must not be answered a second time.
    public var upgraded = false
    /// Requests answered (or dropped) on this connection so far.
    public var requestsOnConnection = 0

    public init(upstream: RecordingUpstream, connectionID: Int) {
        self.upstream = upstream
        self.connectionID = connectionID
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            bodyBytes = 0
            hasher = SHA256()
            upstream.record(RecordedRequest(
                method: head.method.rawValue, uri: head.uri, version: "\(head.version.major).\(head.version.minor)",
                headers: head.headers.map { ($0.name, $0.value) }, bodyBytes: 0, bodySHA: nil, connectionID: connectionID))
            if head.uri.hasPrefix("/ws") && !head.headers["upgrade"].isEmpty {
                upgrade(head, context: context)
            }
        case .body(var body):
            bodyBytes += body.readableBytes
            if let bytes = body.readBytes(length: body.readableBytes) { hasher.update(data: bytes) }
        case .end:
            guard let head, !upgraded else { return }
            let sha = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            upstream.updateLast(connectionID: connectionID, bytes: bodyBytes, sha: bodyBytes > 0 ? sha : nil)
            respond(to: head, context: context, sha: sha)
        }
    }

    /// Any `Upgrade` to `/ws…` gets a 101 (a device that would switch to anything): for
    /// `/ws/h2c` one naming `h2c`, for `/ws/wrong-accept` one with a `Sec-WebSocket-Accept` that
    /// does not answer the key, otherwise a correct WebSocket handshake.
    private func upgrade(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        upgraded = true
        var headers = HTTPHeaders()
        headers.add(name: "Upgrade", value: head.uri.hasPrefix("/ws/h2c") ? "h2c" : "websocket")
        headers.add(name: "Connection", value: "Upgrade")
        let key = head.headers["sec-websocket-key"].first ?? ""
        let accept = Data(Insecure.SHA1.hash(data: Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
        headers.add(name: "Sec-WebSocket-Accept", value: head.uri.hasPrefix("/ws/wrong-accept") ? "dGhpcyBpcyBub3QgaXQ=" : accept)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        let pipeline = context.pipeline
        let upstream = self.upstream
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let sync = pipeline.syncOperations
            // Above TLS when the upstream serves HTTPS, else first: the echo sees plain bytes.
            let position: ChannelPipeline.SynchronousOperations.Position =
                (try? sync.handler(type: NIOSSLServerHandler.self)).map { .after($0) } ?? .first
            try? sync.addHandler(RawEchoHandler(onClose: { upstream.tunnelClosed() }), position: position)
            if let encoder = try? sync.handler(type: HTTPResponseEncoder.self) { sync.removeHandler(encoder, promise: nil) }
            if let pipelining = try? sync.handler(type: HTTPServerPipelineHandler.self) { sync.removeHandler(pipelining, promise: nil) }
            if let errors = try? sync.handler(type: HTTPServerProtocolErrorHandler.self) { sync.removeHandler(errors, promise: nil) }
            if let validator = try? sync.handler(type: NIOHTTPResponseHeadersValidator.self) { sync.removeHandler(validator, promise: nil) }
            if let decoder = try? sync.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) { sync.removeHandler(decoder, promise: nil) }
            sync.removeHandler(handler.value, promise: nil)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext, sha: String) {
        let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
        let query = head.uri.split(separator: "?").dropFirst().first.map(String.init) ?? ""
        var params: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            params[String(kv[0])] = kv.count > 1 ? String(kv[1]) : ""
        }
        requestsOnConnection += 1
        switch path {
        case "/slow":
            return
        case "/drop-on-reuse" where requestsOnConnection > 1, "/drop":
            context.close(promise: nil)
            return
        case "/" where head.method == .GET && upstream.holdRoot != nil:
            var headers = HTTPHeaders()
            headers.add(name: "Set-Cookie", value: "csrf_token_P5000=\(RecordingUpstream.deviceCSRFToken); Path=/")
            headers.add(name: "Content-Length", value: "0")
            let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let answer = HTTPResponseHead(version: .http1_1, status: .found, headers: headers)
            context.eventLoop.scheduleTask(in: upstream.holdRoot ?? .zero) {
                let context = loopContext.value
                guard context.channel.isActive else { return }
                context.write(handler.value.wrapOutboundOut(.head(answer)), promise: nil)
                context.writeAndFlush(handler.value.wrapOutboundOut(.end(nil)), promise: nil)
                handler.value.upstream.rootAnswered()
            }
            return
        case "/reset":
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: "1000")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: "0123456789")))), promise: nil)
            let channel = context.channel
            context.eventLoop.scheduleTask(in: .milliseconds(50)) { channel.close(promise: nil) }
            return
        case "/download":
            let total = Int(params["bytes"] ?? "0") ?? 0
            var headers = HTTPHeaders()
            if params["chunked"] == "1" {
                headers.add(name: "Transfer-Encoding", value: "chunked")
            } else {
                headers.add(name: "Content-Length", value: String(total))
            }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            streamDownload(remaining: total, context: context)
            return
        case "/hop-by-hop":
            // Hop-by-hop headers between ordinary ones: two of them, or (`many=1`) more than the
            // response scanner keeps inline.
            var headers = HTTPHeaders()
            headers.add(name: "X-Before", value: "1")
            headers.add(name: "Connection", value: "keep-alive")
            headers.add(name: "X-Middle", value: "2")
            headers.add(name: "Keep-Alive", value: "timeout=5")
            if params["many"] == "1" {
                headers.add(name: "Proxy-Connection", value: "keep-alive")
                headers.add(name: "TE", value: "trailers")
                headers.add(name: "X-Between", value: "3")
                headers.add(name: "Trailer", value: "Expires")
                headers.add(name: "Upgrade", value: "h2c")
            }
            headers.add(name: "X-After", value: "4")
            headers.add(name: "Content-Length", value: "2")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: "ok")))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        case "/mjpeg":
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "multipart/x-mixed-replace; boundary=frame")
            headers.add(name: "Transfer-Encoding", value: "chunked")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            streamingMJPEG = true
            sendFrame(context: context)
            return
        default:
            break
        }
        var status = HTTPResponseStatus.ok
        if path.hasPrefix("/status/"), let code = Int(path.dropFirst("/status/".count)) {
            status = HTTPResponseStatus(statusCode: code)
        }
        let body = "{\"path\":\"\(path)\",\"received\":\(bodyBytes),\"sha256\":\"\(bodyBytes > 0 ? sha : "")\"}"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "X-Upstream-Connection", value: String(connectionID))
        // `?close=1`: the last answer on this connection, as nginx gives at its
        // `keepalive_requests` (1,000 by default): `Connection: close`, then it closes.
        let last = params["close"] == "1"
        if last { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in if last { channel.close(promise: nil) } }
    }

    /// Writes the download in 64 KiB pieces, each only after the previous one was flushed, so the
    /// upstream itself never buffers the whole body.
    private func streamDownload(remaining: Int, context: ChannelHandlerContext) {
        if remaining == 0 {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let n = min(remaining, 65536)
        let buffer = context.channel.allocator.buffer(repeating: UInt8(ascii: "x"), count: n)
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer)))).whenSuccess {
            handler.value.streamDownload(remaining: remaining - n, context: loopContext.value)
        }
    }

    private func sendFrame(context: ChannelHandlerContext) {
        guard streamingMJPEG, context.channel.isActive else { return }
        let frame = "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\nJPEG\r\n"
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: frame))))).whenComplete { result in
            guard case .success = result else { return }
            loopContext.value.eventLoop.scheduleTask(in: .milliseconds(20)) {
                handler.value.sendFrame(context: loopContext.value)
            }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if streamingMJPEG {
            streamingMJPEG = false
            upstream.mjpegClosed()
        }
        context.fireChannelInactive()
    }
}

/// After the 101: echoes every byte back, raw.
private final class RawEchoHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer
    public let onClose: () -> Void
    public init(onClose: @escaping () -> Void) { self.onClose = onClose }
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
    public func channelInactive(context: ChannelHandlerContext) {
        onClose()
        context.fireChannelInactive()
    }
}
