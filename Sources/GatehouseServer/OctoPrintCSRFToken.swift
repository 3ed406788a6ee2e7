import GatehouseCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// OctoPrint's CSRF double-submit pair (`csrf_token` cookie and `X-CSRF-Token` header, signed
/// with OctoPrint's secret), fetched from the device, for requests Gatehouse authenticated with a
/// credential that a browser does not send on its own (`octoprint_csrf: true`).
///
/// Why: OctoPrint waives its CSRF check for callers it authenticated by API key, because a
/// browser never attaches one by itself. Behind Gatehouse, OctoPrint sees `X-Remote-User`
/// instead and asks every state-changing request for the pair, so a slicer's upload would get
/// 400 "CSRF validation failed". Gatehouse restores OctoPrint's own rule: a request whose
/// identity came from an API key, a token, HTTP Basic, a one-shot token or a trusted network
/// gets the pair; a request authenticated by the session cookie never does (the OctoPrint page
/// sends its own, and Gatehouse's same-site rule has already been applied to it).
///
/// Guarantees: the pair is asked of the device with an anonymous `GET /` (OctoPrint sets the
/// cookie on its sign-in redirect), never with anyone's identity; it is refreshed every
/// ``refreshInterval``, and every two seconds while none could be had; until one is had,
/// requests go without it (and OctoPrint answers 400, as it would without Gatehouse).
final class OctoPrintCSRFToken: Sendable {
    private let current = NIOLockedValueBox<String?>(nil)
    static let refreshInterval: Duration = .seconds(600)

    var value: String? { current.withLockedValue { $0 } }

    /// Fetches a pair once; true when one was had.
    @discardableResult
    func refreshOnce(upstream: UpstreamConnector, eventLoop: EventLoop) async -> Bool {
        guard let token = try? await Self.fetch(upstream: upstream, eventLoop: eventLoop) else { return false }
        current.withLockedValue { $0 = token }
        return true
    }

    /// Fetches a pair every ``refreshInterval`` (every two seconds while none could be had)
    /// until the task is cancelled.
    func keepFresh(upstream: UpstreamConnector, eventLoop: EventLoop, logger: Logger) async {
        var warned = false
        while !Task.isCancelled {
            do {
                if value != nil { try await Task.sleep(for: Self.refreshInterval) }
                let token = try await Self.fetch(upstream: upstream, eventLoop: eventLoop)
                current.withLockedValue { $0 = token }
                warned = false
            } catch is CancellationError {
                return
            } catch {
                if !warned { logger.warning("octoprint_csrf: cannot get a CSRF token from \(upstream.address) yet (\(error)); retrying") }
                warned = true
                try? await Task.sleep(for: .seconds(2))
            }
        }
    }

    enum FetchError: Error, CustomStringConvertible {
        case noCookie(status: UInt)
        case closedEarly
        var description: String {
            switch self {
            case .noCookie(let status): return "GET / answered \(status) without a csrf_token cookie"
            case .closedEarly: return "the connection closed before an answer"
            }
        }
    }

    static func fetch(upstream: UpstreamConnector, eventLoop: EventLoop) async throws -> String {
        let channel = try await upstream.connect(on: eventLoop).get()
        let host = upstream.hostHeader
        let promise = eventLoop.makePromise(of: HTTPResponseHead.self)
        do {
            try await eventLoop.submit {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(ResponseHeadCatcher(promise))
            }.get()
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: host)
            headers.add(name: "Connection", value: "close")
            channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: headers)), promise: nil)
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
            let head = try await promise.futureResult.get()
            try? await channel.close()
            guard let token = csrfCookie(in: head.headers) else { throw FetchError.noCookie(status: head.status.code) }
            return token
        } catch {
            promise.fail(error)
            try? await channel.close()
            throw error
        }
    }

    /// The value of the first `csrf_token` cookie (OctoPrint adds a port suffix to the name).
    static func csrfCookie(in headers: HTTPHeaders) -> String? {
        for cookie in headers["set-cookie"] {
            guard let equals = cookie.firstIndex(of: "="), cookie[..<equals].hasPrefix("csrf_token") else { continue }
            let value = cookie[cookie.index(after: equals)...].prefix { $0 != ";" }
            if !value.isEmpty, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") }) { return String(value) }
        }
        return nil
    }
}

/// Completes a promise with the first response head; fails it if the connection ends first.
private final class ResponseHeadCatcher: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<HTTPResponseHead>
    init(_ promise: EventLoopPromise<HTTPResponseHead>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { promise.succeed(head) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(OctoPrintCSRFToken.FetchError.closedEarly)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
