import Foundation
import GatehouseCore
import Logging
import NIOCore
import NIOHTTP1

/// The last handler of a client connection: checks each request with the ``RequestGate`` and
/// either answers it itself or forwards it to the upstream and streams the answer back.
///
/// Guarantees:
/// - Nothing reaches the upstream before the gate said `forward`: the upstream connection is
///   not even acquired for a refused request.
/// - Bodies stream in both directions; reading from one side stops while the other side cannot
///   take more bytes, so memory stays flat for any body size.
/// - A response whose end did not arrive is never made to look complete: the client connection
///   is closed instead.
/// - One request at a time per connection (NIO's `HTTPServerPipelineHandler` in front of this
///   handler holds pipelined requests back until the previous response is written).
final class ProxyHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        /// Waiting for a request head.
        case idle
        /// Answered by Gatehouse itself; request body parts are dropped until `.end`.
        case answered(Exchange)
        /// For one of Gatehouse's own endpoints: the (small) body is collected, then answered.
        case ownEndpoint(Exchange)
        /// Forwarded to the upstream.
        case proxying(Exchange)
        /// A byte tunnel now owns the connection.
        case tunnel
    }

    private let settingsSource: SettingsSource
    /// The settings of the current request, read from ``settingsSource`` when its head arrived.
    private var settings: ProxySettings
    private let pool: UpstreamPool
    private let peer: IPAddress?
    /// The connection's HTTP handlers, removed when it becomes a tunnel.
    private let httpHandlers: [RemovableChannelHandler]
    private var context: ChannelHandlerContext?
    private var state = State.idle
    private var pendingRead = false
    private var closeWhenDone = false
    /// The current exchange's deadline for the device's response head (`upstream_response`).
    private var responseTimer: DeadlineTimer?

    init(settings: SettingsSource, pool: UpstreamPool, peer: IPAddress?, httpHandlers: [RemovableChannelHandler]) {
        self.settingsSource = settings
        self.settings = settings.current
        self.pool = pool
        self.peer = peer
        self.httpHandlers = httpHandlers
        self.clientTimeouts = httpHandlers.lazy.compactMap { $0 as? ClientTimeoutHandler }.first
    }

    /// The connection's timeout handler, told directly where the connection is; without one
    /// (handler tests), the phase travels as an outbound user event.
    private let clientTimeouts: ClientTimeoutHandler?

    private func enter(_ phase: ClientConnectionPhase, context: ChannelHandlerContext) {
        if let clientTimeouts {
            clientTimeouts.enter(phase)
        } else {
            context.triggerUserOutboundEvent(phase, promise: nil)
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        responseTimer = DeadlineTimer(eventLoop: context.eventLoop) { [weak self] in
            guard let self, case .proxying(let exchange) = self.state, !exchange.responseStarted else { return }
            self.upstreamGaveNoResponse(exchange, status: .gatewayTimeout, detail: "The device behind Gatehouse did not answer in time.")
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        responseTimer?.cancel()
        self.context = nil
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): receiveHead(head, context: context)
        case .body(let body): receiveBody(body, context: context)
        case .end: receiveEnd(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state { exchange.upstream?.handler.flush() }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .proxying(let exchange), .answered(let exchange), .ownEndpoint(let exchange):
            // The client left mid-exchange: the upstream exchange cannot finish cleanly.
            if !exchange.responseComplete {
                exchange.abandon()
                log(exchange, note: "client_closed")
            }
        case .idle, .tunnel:
            break
        }
        state = .idle
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if case .proxying(let exchange) = state { exchange.abandon() }
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .proxying(let exchange) = state {
            exchange.upstream?.handler.resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Outbound read control (backpressure toward the client)

    func read(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state, !exchange.requestComplete {
            guard let upstream = exchange.upstream, upstream.handler.isWritable else {
                pendingRead = true
                // A device that stops taking the body is not answering either: its time runs
                // while Gatehouse holds the client back for it.
                if exchange.upstream != nil && !exchange.responseStarted {
                    startResponseTimer(for: exchange, in: settings.upstreamResponseTimeout)
                }
                return
            }
        }
        context.read()
    }

    fileprivate func resumeClientReads() {
        if pendingRead, let context {
            pendingRead = false
            if case .proxying(let exchange) = state, !exchange.requestComplete { stopResponseTimer(for: exchange) }
            context.read()
        }
    }

    // MARK: Request

    private func receiveHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        enter(.requestHeadReceived, context: context)
        settings = settingsSource.current
        let headers = head.headers.map { (name: $0.name, value: $0.value) }
        let exchange = Exchange(handler: self, head: head, target: RequestTarget(head.uri))
        exchange.hasBody = headers.contains {
            ($0.name.equalsCaseInsensitive("content-length") && $0.value != "0")
                || $0.name.equalsCaseInsensitive("transfer-encoding")
        }
        exchange.headers = headers
        // A request that asked to switch protocols stops NIO's parser after its head, so nothing
        // more can be read as HTTP on this connection unless it really becomes a tunnel.
        if head.headers.contains(name: "upgrade") { closeWhenDone = true }
        if !head.isKeepAlive { closeWhenDone = true }

        // Everything decided from the head alone: the same sequence `gatehouse explain` runs.
        let admission = settings.admission.admit(
            method: head.method.rawValue, uri: head.uri, version: (head.version.major, head.version.minor), headers: headers, peer: peer)
        if let target = admission.target { exchange.target = target }
        exchange.corsHeaders = admission.corsHeaders?.map { (name: $0.name, value: $0.value) }
        let allocator = context.channel.allocator
        switch admission.outcome {
        case .refuse(let refusal):
            if refusal.close { closeWhenDone = true }
            var response = GatehouseResponse.json(HTTPResponseStatus(statusCode: refusal.status), detail: refusal.detail, allocator: allocator)
            for field in refusal.headers { response.headers.add(name: field.name, value: field.value) }
            answer(exchange, response, context: context)
        case .preflight(let allowed):
            answer(exchange, GatehouseResponse(status: .ok, headers: HTTPHeaders(allowed.map { ($0.name, $0.value) }), body: allocator.buffer(capacity: 0)), context: context)
        case .healthz:
            let response: GatehouseResponse = head.method == .GET || head.method == .HEAD
                ? .text(.ok, "ok\n", allocator: allocator) : .json(.methodNotAllowed, detail: "Use GET.", allocator: allocator)
            answer(exchange, response, context: context)
        case .readyz:
            exchange.isReadinessProbe = true
            state = .ownEndpoint(exchange)
        case .ownEndpoint, .deviceEndpoint:
            state = .ownEndpoint(exchange)
        case .gate(let facts):
            exchange.isWebSocketUpgrade = facts.isWebSocketUpgrade
            exchange.facts = facts
            act(on: settings.gate.decide(facts, now: settings.credentials?.now() ?? Date()), exchange, context: context)
        }
    }

    private func act(on decision: GateDecision, _ exchange: Exchange, context: ChannelHandlerContext) {
        switch decision {
        case .refuse(let failure):
            refuse(exchange, failure, context: context)
        case .forward(let plan):
            exchange.identity = plan.identity
            forward(exchange, plan: plan, context: context)
        case .lookUp(let pending):
            lookUp(pending, exchange, context: context)
        }
    }

    /// Answers a credential from the cache when it can; otherwise asks the store off the event
    /// loop. Meanwhile the exchange counts as proxying without an upstream: body parts wait in
    /// `pending` and client reads are paused.
    private func lookUp(_ pending: PendingAuthentication, _ exchange: Exchange, context: ChannelHandlerContext) {
        guard let accounts = settings.accounts else { return refuse(exchange, .storeUnavailable, context: context) }
        let credentials = accounts.credentials
        if let result = accounts.identifyFromMemory(pending, now: credentials.now()) {
            return act(on: settings.gate.complete(pending, with: result), exchange, context: context)
        }
        state = .proxying(exchange)
        let promise = context.eventLoop.makePromise(of: Result<Identity, AuthenticationFailure>.self)
        promise.completeWithTask { await accounts.identify(pending, now: credentials.now()) }
        promise.futureResult.assumeIsolated().whenSuccess { result in
            self.lookUpFinished(pending, result, exchange)
        }
    }

    private func lookUpFinished(_ pending: PendingAuthentication, _ result: Result<Identity, AuthenticationFailure>, _ exchange: Exchange) {
        guard let context = self.context, case .proxying(let current) = self.state, current === exchange,
            !exchange.abandoned
        else { return }
        self.act(on: self.settings.gate.complete(pending, with: result), exchange, context: context)
        self.resumeClientReads()
    }

    /// Answers a refused request: a browser navigation that lacks a credential goes to the
    /// sign-in page instead of seeing a bare 401.
    private func refuse(_ exchange: Exchange, _ failure: AuthenticationFailure, context: ChannelHandlerContext) {
        exchange.failure = failure
        exchange.pending.removeAll()
        let allocator = context.channel.allocator
        guard LoginRedirect.redirects(failure, method: exchange.head.method.rawValue, headers: exchange.headers, signInServed: settings.endpoints != nil)
        else {
            return answer(exchange, .refusal(failure, allocator: allocator), context: context)
        }
        var response = GatehouseResponse(status: .found, headers: HTTPHeaders(), body: allocator.buffer(capacity: 0))
        response.headers.add(name: "Location", value: LoginRedirect.location(returningTo: exchange.target.uri))
        if failure == .invalidSession {
            response.headers.add(name: "Set-Cookie", value: SessionCookie.clearing(secure: false))
        }
        answer(exchange, response, context: context)
    }

    /// Runs one of Gatehouse's own endpoints once its body is complete.
    private func dispatchOwnEndpoint(_ exchange: Exchange, context: ChannelHandlerContext) {
        if exchange.isReadinessProbe { return probeReadiness(exchange, context: context) }
        guard let endpoints = settings.endpoints else { return }
        let request = OwnRequest(
            method: exchange.head.method.rawValue, target: exchange.target, headers: exchange.headers,
            body: exchange.ownBody, peer: peer, overTLS: settings.clientScheme == "https")
        exchange.ownBody = []
        let promise = context.eventLoop.makePromise(of: OwnResponse.self)
        promise.completeWithTask { await endpoints.respond(request, now: endpoints.accounts.credentials.now()) }
        promise.futureResult.assumeIsolated().whenSuccess { response in
            self.ownEndpointAnswered(response, exchange)
        }
    }

    /// `readyz`: 200 when the upstream accepts a connection and the store answers, else 503
    /// naming what failed.
    private func probeReadiness(_ exchange: Exchange, context: ChannelHandlerContext) {
        let probe = settings.readiness
        let eventLoop = context.eventLoop
        let promise = eventLoop.makePromise(of: [String].self)
        promise.completeWithTask { await probe.failures(on: eventLoop) }
        promise.futureResult.assumeIsolated().whenSuccess { failures in
            let response = failures.isEmpty
                ? OwnResponse(status: 200, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array("ready\n".utf8))
                : OwnResponse.detail(503, "Not ready: " + failures.joined(separator: "; "))
            self.ownEndpointAnswered(response, exchange)
        }
    }

    private func ownEndpointAnswered(_ response: OwnResponse, _ exchange: Exchange) {
        guard let context = self.context, case .ownEndpoint(let current) = self.state, current === exchange else { return }
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        self.answer(exchange, GatehouseResponse(status: HTTPResponseStatus(statusCode: response.status), headers: headers, body: buffer), context: context)
    }

    private func receiveBody(_ body: ByteBuffer, context: ChannelHandlerContext) {
        if case .ownEndpoint(let exchange) = state {
            exchange.requestBytes += Int64(body.readableBytes)
            guard exchange.ownBody.count + body.readableBytes <= OwnEndpoints.maxBodyBytes else {
                closeWhenDone = true
                return answer(exchange, .json(.payloadTooLarge, detail: "The request body is larger than this endpoint takes.", allocator: context.channel.allocator), context: context)
            }
            exchange.ownBody += body.readableBytesView
            return
        }
        guard case .proxying(let exchange) = state else { return }  // answered: dropped
        exchange.requestBytes += Int64(body.readableBytes)
        if settings.limits.maxBodyBytes > 0 && exchange.requestBytes > settings.limits.maxBodyBytes {
            exchange.abandon()
            closeWhenDone = true
            if exchange.responseStarted {
                context.close(promise: nil)
            } else {
                exchange.upstream = nil
                answer(exchange, .json(.payloadTooLarge, detail: "The request body is larger than allowed.", allocator: context.channel.allocator), context: context)
            }
            return
        }
        exchange.sendUpstream(.body(.byteBuffer(body)))
    }

    private func receiveEnd(context: ChannelHandlerContext) {
        enter(.requestEndReceived, context: context)
        switch state {
        case .proxying(let exchange):
            exchange.requestComplete = true
            exchange.sendUpstream(.end(nil))
            exchange.upstream?.handler.flush()
            // The device's time to answer counts from here: a body still arriving is the
            // client's business (`client_body`), not the device's.
            if exchange.upstream != nil { startResponseTimer(for: exchange, in: settings.upstreamResponseTimeout) }
            if exchange.responseComplete { finish(exchange) }
        case .answered(let exchange):
            exchange.requestComplete = true
            if exchange.responseComplete { finish(exchange) }
        case .ownEndpoint(let exchange):
            exchange.requestComplete = true
            dispatchOwnEndpoint(exchange, context: context)
        case .idle, .tunnel:
            break
        }
    }

    // MARK: Answering

    private func answer(_ exchange: Exchange, _ response: GatehouseResponse, context: ChannelHandlerContext) {
        // A body still on its way is not read: the connection closes after the answer.
        if exchange.hasBody && !exchange.requestComplete { closeWhenDone = true }
        state = .answered(exchange)
        exchange.status = Int(response.status.code)
        exchange.responseBytes = Int64(response.body.readableBytes)
        let version = exchange.clientVersion
        var response = response
        for (name, value) in exchange.corsHeaders ?? [] { response.headers.replaceOrAdd(name: name, value: value) }
        context.write(wrapOutboundOut(.head(response.head(version: version, close: closeWhenDone))), promise: nil)
        if exchange.head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        exchange.responseStarted = true
        exchange.responseComplete = true
        // Finish before writing `.end`: NIO's pipelining handler hands over the next pipelined
        // request from inside that write, and it must find this connection idle.
        let close = closeWhenDone
        if close || exchange.requestComplete { finish(exchange) }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if close { channel.close(promise: nil) }
        }
    }

    // MARK: Forwarding

    /// OctoPrint's CSRF pair, for a state-changing request authenticated by a credential a
    /// browser never sends on its own: an API key or token in a header or the query, or a
    /// one-shot token (``OctoPrintCSRFToken``). Never for the session cookie, HTTP Basic (a
    /// browser replays it) or a trusted network (no credential at all): a page on another site
    /// can make those requests, and OctoPrint's own check is what stops it.
    private func needsDeviceCSRFToken(_ plan: ForwardPlan, method: HTTPMethod) -> Bool {
        settings.octoPrintCSRF != nil && DeviceCSRFPolicy.applies(to: plan, method: method.rawValue)
    }

    private func forward(_ exchange: Exchange, plan: ForwardPlan, context: ChannelHandlerContext) {
        state = .proxying(exchange)
        if needsDeviceCSRFToken(plan, method: exchange.head.method), let csrf = settings.octoPrintCSRF {
            guard let token = csrf.value else {
                // Fetched from the device in the background; the request waits for it (no longer
                // than the device's own time to answer) rather than go without and be refused.
                csrf.whenAvailable(on: context.eventLoop, within: settings.upstreamResponseTimeout).assumeIsolated().whenSuccess { token in
                    guard case .proxying(let current) = self.state, current === exchange, !exchange.abandoned, let context = self.context else { return }
                    self.forward(exchange, plan: plan, deviceCSRFToken: token, context: context)
                }
                return
            }
            return forward(exchange, plan: plan, deviceCSRFToken: token, context: context)
        }
        forward(exchange, plan: plan, deviceCSRFToken: nil, context: context)
    }

    private func forward(_ exchange: Exchange, plan: ForwardPlan, deviceCSRFToken: String?, context: ChannelHandlerContext) {
        let headers = exchange.headers
        if let metrics = settings.metrics, headers.contains(where: { $0.name.utf8.contains(UInt8(ascii: "_")) }) {
            let dropped = headers.filter { settings.headerPolicy.dropsUnderscoreHeader($0.name) }
            if !dropped.isEmpty, metrics.droppedUnderscoreHeaders(dropped.count) {
                settings.logger.warning("dropped request header \(dropped[0].name.prefix(64)) (a _ in a header name; forward_underscore_headers lets named ones through); logged at most once a minute")
            }
        }
        let upstreamTarget = settings.headerPolicy.target(exchange.target, plan: plan)
        var upstreamHeaders = HTTPHeaders(
            settings.headerPolicy.headers(
                from: headers, plan: plan, isWebSocketUpgrade: exchange.isWebSocketUpgrade, scheme: settings.clientScheme, peer: peer,
                deviceCSRFToken: deviceCSRFToken
            ).map { ($0.name, $0.value) })
        if let framing = UpstreamHeaderPolicy.framing(of: headers) { upstreamHeaders.add(name: framing.name, value: framing.value) }
        let upstreamHead = HTTPRequestHead(
            version: .http1_1, method: exchange.head.method, uri: upstreamTarget.uri, headers: upstreamHeaders)
        exchange.upstreamHead = upstreamHead
        // Body parts that arrived while a stored credential was looked up wait behind the head.
        exchange.pending.insert(.head(upstreamHead), at: 0)
        exchange.forwardedAt = .now()

        // The pool belongs to this connection's event loop, so its future completes here.
        pool.acquire().assumeIsolated().whenComplete { result in
            self.upstreamAcquired(result, for: exchange)
        }
    }

    /// A kept-alive connection the device closed while Gatehouse was reusing it, before any of
    /// its answer and before any body byte went out: a GET, HEAD, OPTIONS, PUT or DELETE is sent
    /// again, once, on a fresh connection (as nginx does); any other method, and a request whose
    /// body had started, is never sent twice.
    fileprivate func retryOnFreshConnection(_ exchange: Exchange) {
        guard case .proxying(let current) = state, current === exchange, !exchange.abandoned, let head = exchange.upstreamHead else { return }
        stopResponseTimer(for: exchange)
        exchange.retried = true
        exchange.switchingProtocolsHead = nil
        exchange.pending = [.head(head)] + (exchange.requestComplete ? [.end(nil)] : [])
        pool.acquire(fresh: true).assumeIsolated().whenComplete { result in
            self.upstreamAcquired(result, for: exchange)
        }
    }

    private func upstreamAcquired(_ result: Result<UpstreamPool.Connection, Error>, for exchange: Exchange) {
        guard case .proxying(let current) = self.state, current === exchange, !exchange.abandoned else {
            if case .success(let connection) = result { connection.handler.close() }
            return
        }
        switch result {
        case .success(let connection):
            exchange.attach(connection)
            if exchange.requestComplete { startResponseTimer(for: exchange, in: settings.upstreamResponseTimeout) }
            self.resumeClientReads()
        case .failure(let error):
            self.settings.logger.warning("upstream unavailable: \(error)")
            self.upstreamGaveNoResponse(exchange, status: .badGateway, detail: "The device behind Gatehouse is not reachable.")
        }
    }

    /// The upstream failed or timed out before any response head: answer 502/504 ourselves.
    fileprivate func upstreamGaveNoResponse(_ exchange: Exchange, status: HTTPResponseStatus, detail: String) {
        guard let context, case .proxying(let current) = state, current === exchange else { return }
        exchange.abandon()
        if !exchange.requestComplete { closeWhenDone = true }
        if exchange.responseStarted {
            closeAbruptly(exchange)
            return
        }
        answer(exchange, .json(status, detail: detail, allocator: context.channel.allocator), context: context)
    }

    fileprivate func writeResponseHead(_ exchange: Exchange, _ upstreamHead: HTTPResponseHead) {
        guard let context else { return }
        if upstreamHead.status.code < 200 && upstreamHead.status.code != 101 {
            // 100 Continue and other interim answers pass straight through.
            var interim = HTTPResponseHead(version: exchange.clientVersion, status: upstreamHead.status)
            interim.headers = HTTPHeaders(DownstreamResponseHeaders.clean(upstreamHead.headers.map { ($0.name, $0.value) }, isSwitchingProtocols: false).map { ($0.name, $0.value) })
            if exchange.clientVersion.minor >= 1 { context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil) }
            return
        }
        exchange.status = Int(upstreamHead.status.code)
        if let forwardedAt = exchange.forwardedAt {
            settings.metrics?.upstreamResponded(after: (NIODeadline.now() - forwardedAt).nanoseconds)
        }
        if upstreamHead.status == .switchingProtocols {
            // Only a WebSocket that completes the handshake the client began becomes a tunnel: a
            // device that switched to anything else (h2c) would carry bytes past every rule.
            guard exchange.isWebSocketUpgrade, let key = WebSocketHandshake.key(in: exchange.headers),
                WebSocketHandshake.accepts(response: upstreamHead.headers.map { ($0.name, $0.value) }, key: key)
            else {
                exchange.abandon()
                closeWhenDone = true
                return upstreamGaveNoResponse(exchange, status: .badGateway, detail: "The device switched to a protocol other than the WebSocket that was asked for.")
            }
            // The hand-over waits for the 101's `.end`: NIO's response decoder emits it right
            // after the head, and it must reach this handler, never the byte tunnel.
            exchange.switchingProtocolsHead = upstreamHead
            return
        }
        var headers = HTTPHeaders(DownstreamResponseHeaders.clean(upstreamHead.headers.map { ($0.name, $0.value) }, isSwitchingProtocols: false).map { ($0.name, $0.value) })
        if let cors = exchange.corsHeaders {
            // On a CORS path Gatehouse's policy speaks, never the device's.
            for name in Set(headers.map { $0.name.lowercased() }) where name.hasPrefix("access-control-") { headers.remove(name: name) }
            for (name, value) in cors { headers.replaceOrAdd(name: name, value: value) }
        }
        let noBody = exchange.head.method == .HEAD || upstreamHead.status.code == 204 || upstreamHead.status.code == 304
        if noBody {
            exchange.responseFraming = .none
        } else if upstreamHead.headers.contains(name: "content-length") {
            exchange.responseFraming = .contentLength
        } else if exchange.clientVersion.minor >= 1 {
            headers.add(name: "Transfer-Encoding", value: "chunked")
            exchange.responseFraming = .chunked
        } else {
            // An HTTP/1.0 client: the end of the body is marked by closing the connection.
            exchange.responseFraming = .untilClose
            closeWhenDone = true
        }
        if !upstreamHead.isKeepAlive && exchange.responseFraming == .untilClose { closeWhenDone = true }
        if closeWhenDone {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if exchange.clientVersion.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        exchange.responseStarted = true
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: exchange.clientVersion, status: upstreamHead.status, headers: headers))), promise: nil)
    }

    fileprivate func writeResponseBody(_ exchange: Exchange, _ body: ByteBuffer) {
        guard let context, exchange.responseFraming != .none else { return }
        exchange.responseBytes += Int64(body.readableBytes)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
    }

    fileprivate func flushResponse() { context?.flush() }

    fileprivate func writeResponseEnd(_ exchange: Exchange) {
        guard let context else { return }
        if let switching = exchange.switchingProtocolsHead {
            return becomeTunnel(exchange, head: switching, context: context)
        }
        exchange.responseComplete = true
        if !exchange.requestComplete {
            // The device answered before the request body was finished; that body will not be
            // read any further, so neither connection can be reused.
            exchange.abandon()
            closeWhenDone = true
        }
        exchange.releaseUpstream(to: pool)
        let close = closeWhenDone
        finish(exchange)  // before `.end`, for the same reason as in `answer`
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if close { channel.close(promise: nil) }
        }
    }

    /// The upstream failed after the response began: the client must not take a truncated body
    /// for a complete one, so its connection is closed without the final chunk.
    fileprivate func closeAbruptly(_ exchange: Exchange) {
        exchange.abandon()
        log(exchange, note: "upstream_reset")
        state = .idle
        context?.close(promise: nil)
    }

    private func finish(_ exchange: Exchange) {
        guard let context else { return }
        switch state {
        case .answered(let current) where current === exchange, .proxying(let current) where current === exchange:
            break
        default:
            return
        }
        guard exchange.requestComplete || closeWhenDone else { return }
        log(exchange, note: nil)
        state = .idle
        if !closeWhenDone {
            enter(.exchangeFinished, context: context)
        }
    }

    // MARK: Tunnel

    private func becomeTunnel(_ exchange: Exchange, head upstreamHead: HTTPResponseHead, context: ChannelHandlerContext) {
        guard let upstream = exchange.upstream else { return }
        exchange.cancelTimeout()
        var headers = HTTPHeaders(DownstreamResponseHeaders.clean(upstreamHead.headers.map { ($0.name, $0.value) }, isSwitchingProtocols: true).map { ($0.name, $0.value) })
        headers.replaceOrAdd(name: "Connection", value: "Upgrade")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        exchange.responseStarted = true
        exchange.responseComplete = true
        log(exchange, note: "tunnel")
        if let metrics = settings.metrics {
            metrics.openTunnels.increment()
            context.channel.closeFuture.whenComplete { _ in metrics.openTunnels.decrement() }
        }
        state = .tunnel
        enter(.tunnelling, context: context)

        let (clientSide, upstreamSide) = ByteTunnelHandler.pair()
        do {
            try upstream.handler.becomeTunnel(upstreamSide, httpHandlers: upstream.httpHandlers)
            let pipeline = context.pipeline.syncOperations
            if let watch = credentialWatch(for: exchange) { try pipeline.addHandler(watch) }
            try pipeline.addHandler(clientSide)
            for handler in httpHandlers where !(handler is HTTPRequestDecoderHandle) {
                pipeline.removeHandler(handler, promise: nil)
            }
            pipeline.removeHandler(context: context, promise: nil)
            // The decoder goes last, after this handler: bytes the client sent after its request
            // head are handed on as it leaves, and only the tunnel may receive them.
            for handler in httpHandlers where handler is HTTPRequestDecoderHandle {
                clientSide.removeDecoder(handler, from: pipeline)
            }
        } catch {
            // Once the tunnel has the upstream channel, the upstream handler has left it.
            upstream.handler.close()
            upstreamSide.closeChannel()
            context.close(promise: nil)
        }
    }

    /// A watch that closes the tunnel once the request that opened it would no longer be let
    /// through as the same user: the same gate decision, store lookup and completion, asked again.
    /// A one-shot token is spent by design, so a tunnel it opened is held to its user instead
    /// (deleted or disabled closes it).
    /// Each check reads the current settings, so a key or rule removed by a reload closes the
    /// tunnels it opened too.
    private func credentialWatch(for exchange: Exchange) -> TunnelCredentialWatch? {
        guard let facts = exchange.facts, let identity = exchange.identity else { return nil }
        let user = identity.user
        let source = settingsSource
        let accounts = settings.accounts
        return TunnelCredentialWatch(interval: settings.tunnelRecheck, now: { accounts?.credentials.now() ?? Date() }) { now in
            let gate = source.current.gate
            switch gate.decide(facts, now: now) {
            case .forward(let plan): return plan.identity?.user == user
            case .refuse: return false
            case .lookUp(let pending):
                guard let accounts else { return false }
                if pending.kind == .oneShotToken {
                    // A user the config names (its keys, trusted networks) needs no store entry
                    // while the config still names them; one removed by a reload does.
                    return await accounts.credentials.userIsActive(user, mustExist: !gate.configUsers.contains(user))
                }
                let result = await accounts.identify(pending, now: now)
                guard case .forward(let plan) = gate.complete(pending, with: result) else { return false }
                return plan.identity?.user == user
            }
        }
    }

    // MARK: Access log

    /// Counts the finished exchange in the metrics and writes its access-log line (once each).
    private func log(_ exchange: Exchange, note: String?) {
        guard !exchange.logged else { return }
        exchange.logged = true
        settings.metrics?.request(status: exchange.status, auth: exchange.identity?.method, failure: exchange.failure)
        guard settings.accessLog else { return }
        let elapsed = Double((NIODeadline.now() - exchange.started).nanoseconds) / 1_000_000
        let logged = DevicePaths.withoutTokens(exchange.target.path)
        let path = logged.utf8.count > 256 ? String(logged.prefix(256)) + "…" : logged
        var line = "\(exchange.head.method.rawValue) \(path) \(exchange.status)"
        line += " user=\(exchange.identity?.user ?? "-") auth=\(exchange.identity?.method.rawValue ?? "-")"
        if let failure = exchange.failure { line += " reason=\(failure.code)" }
        line += " in=\(exchange.requestBytes) out=\(exchange.responseBytes)"
        line += " ms=\(String(format: "%.2f", elapsed))"
        if let note { line += " note=\(note)" }
        settings.logger.info("\(line)")
    }

    fileprivate var clientIsWritable: Bool { context?.channel.isWritable ?? false }

    fileprivate func startResponseTimer(for exchange: Exchange, in delay: TimeAmount) {
        guard case .proxying(let current) = state, current === exchange else { return }
        responseTimer?.set(in: delay)
    }

    fileprivate func stopResponseTimer(for exchange: Exchange) {
        guard case .proxying(let current) = state, current === exchange else { return }
        responseTimer?.clear()
    }
}

/// Marks the request decoder among a connection's HTTP handlers (it must be removed last).
protocol HTTPRequestDecoderHandle {}
extension ByteToMessageHandler: HTTPRequestDecoderHandle where Decoder == HTTPRequestDecoder {}

/// How the body of a response is delimited toward the client.
enum ResponseFraming { case none, contentLength, chunked, untilClose }

/// One request/response exchange on a client connection.
///
/// Guarantees: its upstream connection is given back to the pool only after a clean exchange,
/// and closed in every other case (``abandon()``); it never outlives its client connection's
/// interest in it (the handler compares identities before acting on late callbacks).
final class Exchange: UpstreamResponseReceiver {
    /// Weak: a late upstream callback or timer must find nothing rather than a freed handler.
    weak var handler: ProxyHandler?
    let head: HTTPRequestHead
    /// The target as received until ``PathNormalizer`` has run, then the normalized one (what
    /// the access rules see and what goes upstream).
    var target: RequestTarget
    let started = NIODeadline.now()
    /// When the request was handed to the upstream pool (for the latency metric).
    var forwardedAt: NIODeadline?
    var clientVersion: HTTPVersion { HTTPVersion(major: 1, minor: head.version.minor == 0 ? 0 : 1) }

    var identity: Identity?
    var failure: AuthenticationFailure?
    /// The request's headers as parsed, kept for the decision that may finish after a lookup.
    var headers: [(name: String, value: String)] = []
    /// The body of a request to an own endpoint (at most `OwnEndpoints.maxBodyBytes`).
    var ownBody: [UInt8] = []
    var isWebSocketUpgrade = false
    /// CORS headers for this response (the origin is allowed on a CORS path), else nil.
    var corsHeaders: [(name: String, value: String)]?
    /// What the gate decided on; kept so a tunnel can be held to the same decision later.
    var facts: RequestFacts?
    var hasBody = false
    var pending: [HTTPClientRequestPart] = []
    var upstream: UpstreamPool.Connection?
    var requestComplete = false
    var responseStarted = false
    var responseComplete = false
    var responseFraming = ResponseFraming.none
    /// The device's 101, held until its `.end` arrives and the connection can become a tunnel.
    var switchingProtocolsHead: HTTPResponseHead?
    var abandoned = false
    /// The head sent upstream, kept for one retry on a fresh connection.
    var upstreamHead: HTTPRequestHead?
    /// The current upstream connection came from the pool (a kept-alive one).
    var upstreamReused = false
    /// A byte of the request body went to the upstream.
    var bodySent = false
    /// A response head (interim, final or 101) arrived from the device.
    var headSeen = false
    /// Sent again once already, on a fresh connection.
    var retried = false
    /// `GET /_gatehouse/readyz`.
    var isReadinessProbe = false
    var logged = false
    var status = 0
    var requestBytes: Int64 = 0
    var responseBytes: Int64 = 0

    init(handler: ProxyHandler, head: HTTPRequestHead, target: RequestTarget) {
        self.handler = handler
        self.head = head
        self.target = target
    }

    func attach(_ connection: UpstreamPool.Connection) {
        upstream = connection
        upstreamReused = connection.reused
        connection.handler.begin(receiver: self)
        for part in pending { send(part, on: connection) }
        pending.removeAll()
        connection.handler.flush()
    }

    func sendUpstream(_ part: HTTPClientRequestPart) {
        guard !abandoned else { return }
        if let upstream {
            send(part, on: upstream)
        } else {
            pending.append(part)
        }
    }

    private func send(_ part: HTTPClientRequestPart, on connection: UpstreamPool.Connection) {
        if case .body = part { bodySent = true }
        connection.handler.send(part, flush: false)
    }

    func cancelTimeout() {
        handler?.stopResponseTimer(for: self)
    }

    /// Ends the upstream side for good: the connection is closed, never pooled.
    func abandon() {
        cancelTimeout()
        abandoned = true
        pending.removeAll()
        if let upstream {
            upstream.handler.receiver = nil
            upstream.handler.close()
        }
        upstream = nil
    }

    func releaseUpstream(to pool: UpstreamPool) {
        cancelTimeout()
        if let upstream { pool.release(upstream) }
        upstream = nil
    }

    // MARK: UpstreamResponseReceiver

    /// Methods a client may repeat without changing the outcome (RFC 9110 idempotent, less TRACE).
    static let retriableMethods: Set<String> = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]

    func upstreamResponseHead(_ head: HTTPResponseHead) {
        headSeen = true
        if head.status.code >= 200 || head.status.code == 101 { cancelTimeout() }
        handler?.writeResponseHead(self, head)
    }

    func upstreamResponseBody(_ body: ByteBuffer) { handler?.writeResponseBody(self, body) }

    func upstreamResponseEnd() { handler?.writeResponseEnd(self) }

    func upstreamReadComplete() { handler?.flushResponse() }

    func upstreamBecameWritable() { handler?.resumeClientReads() }

    func upstreamFailed(_ failure: UpstreamFailure) {
        // As nginx: only a method that may be repeated, and only when nothing of the answer came
        // and no body byte went out. A POST (Moonraker's G-code commands are bodyless POSTs) is
        // never sent twice: the device may have acted on it before it closed.
        let staleKeptAlive = upstreamReused && !retried && !bodySent && !headSeen && !responseStarted
            && Self.retriableMethods.contains(head.method.rawValue)
        upstream = nil
        if staleKeptAlive {
            handler?.retryOnFreshConnection(self)
            return
        }
        if responseStarted {
            if responseFraming == .untilClose {
                // The end of the connection is the end of the body for an HTTP/1.0 client.
                handler?.writeResponseEnd(self)
            } else {
                handler?.closeAbruptly(self)
            }
        } else {
            handler?.upstreamGaveNoResponse(self, status: .badGateway, detail: "The device behind Gatehouse closed the connection.")
        }
    }

    var clientIsWritable: Bool { handler?.clientIsWritable ?? false }
}
