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
/// cookie on its sign-in redirect), never with anyone's identity, in the background: nothing at
/// start waits for the device. It is refreshed every ``refreshInterval``, and every two seconds
/// while none could be had; a fetch the device does not answer within the timeout is given up.
/// A request that needs the pair before the first one arrived waits for it
/// (``whenAvailable(on:within:)``), bounded by the device's response timeout, instead of going
/// without and being refused by OctoPrint.
final class OctoPrintCSRFToken: Sendable {
    private struct State {
        var token: String?
        var nextWaiter = 0
        var waiters: [Int: EventLoopPromise<String?>] = [:]
    }

    private let state = NIOLockedValueBox(State())
    static let refreshInterval: Duration = .seconds(600)

    var value: String? { state.withLockedValue { $0.token } }

    /// The pair once there is one; nil if none arrived within `timeout`. Completes on `eventLoop`.
    func whenAvailable(on eventLoop: EventLoop, within timeout: TimeAmount) -> EventLoopFuture<String?> {
        let promise = eventLoop.makePromise(of: String?.self)
        let id: Int? = state.withLockedValue { state in
            if state.token != nil { return nil }
            let id = state.nextWaiter
            state.nextWaiter += 1
            state.waiters[id] = promise
            return id
        }
        guard let id else {
            promise.succeed(value)
            return promise.futureResult
        }
        let timer = eventLoop.scheduleTask(in: timeout) { [state] in
            // Whoever takes the promise out of the table completes it, so it is completed once.
            if let waiting = state.withLockedValue({ $0.waiters.removeValue(forKey: id) }) { waiting.succeed(nil) }
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }

    private func store(_ token: String) {
        let waiting = state.withLockedValue { state -> [EventLoopPromise<String?>] in
            state.token = token
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for promise in waiting { promise.succeed(token) }
    }

    /// Fetches a pair once; true when one was had.
    @discardableResult
    func refreshOnce(upstream: UpstreamConnector, eventLoop: EventLoop, timeout: TimeAmount = .seconds(60)) async -> Bool {
        guard let token = try? await Self.fetch(upstream: upstream, eventLoop: eventLoop, timeout: timeout) else { return false }
        store(token)
        return true
    }

    /// Fetches a pair every ``refreshInterval`` (every two seconds while none could be had)
    /// until the task is cancelled; each fetch is given up after `timeout`.
    func keepFresh(upstream: UpstreamConnector, eventLoop: EventLoop, timeout: TimeAmount, logger: Logger) async {
        var warned = false
        while !Task.isCancelled {
            do {
                if value != nil { try await Task.sleep(for: Self.refreshInterval) }
                let token = try await Self.fetch(upstream: upstream, eventLoop: eventLoop, timeout: timeout)
                store(token)
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

    static func fetch(upstream: UpstreamConnector, eventLoop: EventLoop, timeout: TimeAmount) async throws -> String {
        let channel = try await upstream.connect(on: eventLoop).get()
        // A device that holds `GET /` (OctoPrint starting on a Pi) is given up on; the caller retries.
        let deadline = eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { deadline.cancel() }
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
            // A shutdown while the device is silent closes the connection rather than wait for it.
            let head = try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
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
