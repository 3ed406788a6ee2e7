import Foundation
import GatehouseCore
import NIOCore
import NIOHTTP1

/// The one handler of a client connection: it reads the client's bytes with Gatehouse's own
/// parser (``RequestHeadScanner``, ``RequestBodyScanner``), carries out what
/// ``ClientConnectionStateMachine`` decides, asks GatehouseCore about each request (the
/// admission sequence, the gate, the header policy), and relays between the client and a device
/// connection (``UpstreamConnectionHandler``) on the same event loop by direct calls. It writes
/// `ByteBuffer`s itself: heads serialized once, bodies passed on as they arrived.
///
/// Guarantees:
/// - Nothing reaches the device before the gate said `forward`: no device connection is even
///   taken for a refused request, and no byte of its body is parsed.
/// - Bodies stream in both directions; reading from one side stops while the other side cannot
///   take more, so memory stays flat for any body size.
/// - A response whose end did not arrive is never made to look complete: the client connection
///   is closed instead.
/// - One flush per read cycle of the side that produced the bytes.
final class ClientConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler, UpstreamExchangeDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let loop: LoopContext
    private let settingsSource: SettingsSource
    private let peer: IPAddress?
    /// `peer` as text, made once for the connection (every forwarded request names it).
    private let peerText: String?
    private let timeouts: (idle: TimeAmount, header: TimeAmount, body: TimeAmount)
    private var context: ChannelHandlerContext?
    private var machine = ClientConnectionStateMachine()
    /// The settings of the current request, read when its head arrived.
    private var settings: ProxySettings
    private var exchange: ClientExchange?
    /// A device's response head, written with the first body bytes when they come in the same read.
    private var heldResponseHead: ByteBuffer?
    /// What the client sent that is not handled yet: a head still incomplete, a body waiting for
    /// its exchange's decision or device connection, requests pipelined behind the current one.
    private var inbound: ByteBuffer?
    private var heads: RequestHeadScanner
    /// The current request's body while it is read (nil between requests).
    private var body: RequestBodyScanner?
    private var processing = false
    /// The digest of the last secret this connection presented (hashed once, not per request).
    private let digests = DigestMemo()
    private var timer: DeadlineTimer?
    private var armed: ClientConnectionStateMachine.Timer?
    private var pendingRead = false
    /// Inside a read cycle of the client: what is written to the device is flushed once, at its end.
    private var inReadCycle = false
    private var closing = false

    init(
        loop: LoopContext, settingsSource: SettingsSource, peer: IPAddress?, headLimits: RequestHeadScanner.Limits, idle: TimeAmount,
        clientHeader: TimeAmount, clientBody: TimeAmount
    ) {
        self.loop = loop
        self.settingsSource = settingsSource
        self.settings = loop.settings
        self.peer = peer
        self.peerText = peer?.description
        self.heads = RequestHeadScanner(limits: headLimits)
        self.timeouts = (idle, clientHeader, clientBody)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Strong on purpose (no weak reference: it would put every retain of this handler on
        // the slow path); the cycle is broken in handlerRemoved.
        timer = DeadlineTimer(eventLoop: context.eventLoop) { self.clientTimedOut() }
        if context.channel.isActive { updateTimer() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        updateTimer()
        context.fireChannelActive()
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        inReadCycle = true
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        process()
    }

    /// Reads requests out of ``inbound`` as far as the exchange lets it: a head when no exchange
    /// is under way; the current request's body once its route is known (and its device is
    /// there). What cannot be handled yet stays in ``inbound``.
    private func process() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while context != nil, !closing {
            if body != nil {
                guard let exchange, readyForBody(exchange) else { break }
                guard stepBody(exchange) else { break }
                continue
            }
            guard machine.isIdle, let bytes = inbound, bytes.readableBytes > 0 else { break }
            let step = bytes.withUnsafeReadableBytes { heads.scan($0) }
            switch step {
            case .needMore:
                break
            case .failure(let error):
                return refuseUnreadable(status: error.status, detail: error.detail)
            case .head(let head, let consumed):
                inbound!.moveReaderIndex(forwardBy: consumed)
                body = RequestBodyScanner(head.framing)
                switch machine.head(keepAlive: head.keepAlive, hasBody: head.hasBody, asksUpgrade: head.asksUpgrade) {
                case .decide: begin(head)
                default: body = nil
                }
                continue
            }
            break
        }
        if let bytes = inbound, bytes.readableBytes == 0 { inbound = nil }
        machine.bytesLeft((inbound?.readableBytes ?? 0) > 0)
        updateTimer()
    }

    /// Whether the current request's body may be read now: its exchange was decided, and a
    /// device-bound body has its device connection.
    private func readyForBody(_ exchange: ClientExchange) -> Bool {
        switch currentRoute {
        case .held, nil: return false
        case .device: return exchange.upstream != nil
        case .collect, .discard: return true
        }
    }

    /// One step of the current body; false when nothing more can be done until more bytes come.
    private func stepBody(_ exchange: ClientExchange) -> Bool {
        let step: RequestBodyScanner.Step
        if let bytes = inbound {
            step = bytes.withUnsafeReadableBytes { body!.step($0) }
        } else {
            step = body!.step(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        switch step {
        case .needMore:
            return false
        case .failure:
            refuseUnreadable(status: 400, detail: "The request body's chunked framing is malformed.")
            return false
        case .body(let consumed, let forward, let thenCRLF, let payload):
            var piece = inbound!.readSlice(length: consumed)!
            exchange.requestBytes += Int64(payload)
            guard withinBodyLimit(exchange) else { return false }
            switch machine.body() {
            case .forwardToDevice:
                guard let upstream = exchange.upstream else { return false }
                if forward > 0 { upstream.sendBody(piece.getSlice(at: piece.readerIndex, length: forward)!) }
                if thenCRLF { upstream.sendBody(crlf()) }
            case .collect:
                if payload > 0 { collect(piece.readSlice(length: payload)!) }
            default:
                break
            }
            return true
        case .end(let consumed, let forward):
            var last: ByteBuffer?
            if consumed > 0, var piece = inbound!.readSlice(length: consumed) {
                last = forward > 0 ? piece.readSlice(length: forward) : nil
            }
            body = nil
            switch machine.end() {
            case .forwardEndToDevice:
                exchange.upstream?.sendEnd(last, flush: !inReadCycle)
            case .dispatchOwnEndpoint:
                dispatchOwnEndpoint(exchange)
            case .finishExchange(let after):
                finishExchange(exchange, after)
            default:
                break
            }
            return true
        }
    }

    private func crlf() -> ByteBuffer {
        var buffer = context?.channel.allocator.buffer(capacity: 2) ?? ByteBuffer()
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// Bytes that are not HTTP as Gatehouse reads it: answered (400, or 414/431 for a head over
    /// its limits) while no response began, and the connection closed either way.
    private func refuseUnreadable(status: Int, detail: String) {
        guard let context else { return }
        let action = machine.parserError(status: status)
        if let exchange {
            exchange.abandon()
            log(exchange, note: "unreadable_request")
            self.exchange = nil
        }
        inbound = nil
        body = nil
        if case .answerAndClose(let status) = action, context.channel.isActive {
            let response = GatehouseResponse.json(HTTPResponseStatus(statusCode: status), detail: detail, allocator: context.channel.allocator)
            context.write(wrapOutboundOut(response.serialized(versionMinor: 1, close: true, headRequest: false, allocator: context.channel.allocator)), promise: nil)
        }
        closeAfterFlush()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadCycle = false
        exchange?.upstream?.flush()
        updateTimer()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let exchange, !exchange.logged {
            exchange.abandon()
            log(exchange, note: "client_closed")
        }
        exchange = nil
        heldResponseHead = nil
        inbound = nil
        machine.closed()
        timer?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        exchange?.abandon()
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        // Shutdown: an idle connection goes now, one with a request in flight after its answer.
        if machine.quiesce() { closeAfterFlush() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { exchange?.upstream?.resumeReading() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Reading and timers

    func read(context: ChannelHandlerContext) {
        if let upstream = exchange?.upstream { machine.deviceWritability(upstream.isWritable) }
        guard machine.shouldRead else {
            pendingRead = true
            updateTimer()
            return
        }
        if machine.timer == .body { armed = nil }  // each read asked for during a body gets its own clock
        updateTimer()
        context.read()
    }

    private func resumeReading() {
        guard pendingRead, let context else { return }
        if let upstream = exchange?.upstream { machine.deviceWritability(upstream.isWritable) }
        guard machine.shouldRead else { return }
        pendingRead = false
        read(context: context)
    }

    /// Arms the client timer the state machine asks for (each only when it changes; the body
    /// clock on every read asked for).
    private func updateTimer() {
        let wanted = machine.timer
        guard wanted != armed else { return }
        armed = wanted
        switch wanted {
        case .idle: timer?.set(in: timeouts.idle)
        case .header: timer?.set(in: timeouts.header)
        case .body: timer?.set(in: timeouts.body)
        case nil: timer?.clear()
        }
    }

    private func clientTimedOut() {
        machine.timedOut()
        exchange?.abandon()
        context?.close(promise: nil)
    }

    // MARK: A request

    private func begin(_ head: RequestHead) {
        guard let context else { return }
        settings = loop.settings
        let exchange = ClientExchange(head: head)
        self.exchange = exchange
        updateTimer()
        // Everything decided from the head alone: the same sequence `gatehouse explain` runs.
        let admission = settings.admission.admit(head, peer: peer)
        if let target = admission.target { exchange.target = target }
        exchange.corsHeaders = admission.corsHeaders?.map { (name: $0.name, value: $0.value) }
        let allocator = context.channel.allocator
        switch admission.outcome {
        case .refuse(let refusal):
            answer(exchange, .reply(ErrorReply(refusal), allocator: allocator), close: refusal.close)
        case .preflight(let allowed):
            answer(exchange, GatehouseResponse(status: .ok, headers: HTTPHeaders(allowed.map { ($0.name, $0.value) }), body: allocator.buffer(capacity: 0)), close: false)
        case .healthz:
            let response: GatehouseResponse = head.method == "GET" || head.method == "HEAD"
                ? .text(.ok, "ok\n", allocator: allocator) : .json(.methodNotAllowed, detail: "Use GET.", allocator: allocator)
            answer(exchange, response, close: false)
        case .readyz:
            exchange.isReadinessProbe = true
            machine.decided(.collect)
            process()
        case .ownEndpoint, .deviceEndpoint:
            machine.decided(.collect)
            process()
        case .gate(let facts):
            exchange.isWebSocketUpgrade = facts.isWebSocketUpgrade
            exchange.facts = facts
            act(on: settings.gate.decideFromMemory(facts, accounts: settings.accounts, now: settings.credentials?.now() ?? Date(), digests: digests), exchange)
        }
    }

    private func act(on decision: GateDecision, _ exchange: ClientExchange) {
        switch decision {
        case .refuse(let failure): refuse(exchange, failure)
        case .forward(let plan):
            exchange.identity = plan.identity
            forward(exchange, plan: plan)
        case .lookUp(let pending): lookUp(pending, exchange)
        }
    }

    /// Asks the store off the event loop (memory could not answer). Meanwhile the body stays
    /// unparsed and the client is not read.
    private func lookUp(_ pending: PendingAuthentication, _ exchange: ClientExchange) {
        guard let accounts = settings.accounts, let context else { return refuse(exchange, .storeUnavailable) }
        let gate = settings.gate
        let promise = context.eventLoop.makePromise(of: GateDecision.self)
        promise.completeWithTask { await gate.completeFromStore(pending, accounts: accounts, now: accounts.credentials.now()) }
        promise.futureResult.assumeIsolated().whenSuccess { decision in
            guard self.exchange === exchange, !exchange.abandoned else { return }
            self.act(on: decision, exchange)
        }
    }

    /// Answers a refused request: a browser navigation that lacks a credential goes to the
    /// sign-in page instead of seeing a bare 401.
    private func refuse(_ exchange: ClientExchange, _ failure: AuthenticationFailure) {
        guard let context else { return }
        exchange.failure = failure
        let allocator = context.channel.allocator
        guard LoginRedirect.redirects(failure, method: exchange.head.method, exchange.head, signInServed: settings.endpoints != nil)
        else {
            return answer(exchange, .reply(ErrorReply(failure), allocator: allocator), close: false)
        }
        var response = GatehouseResponse(status: .found, headers: HTTPHeaders(), body: allocator.buffer(capacity: 0))
        response.headers.add(name: "Location", value: LoginRedirect.location(returningTo: exchange.target.uri))
        if failure == .invalidSession {
            response.headers.add(name: "Set-Cookie", value: SessionCookie.clearing(secure: false))
        }
        answer(exchange, response, close: false)
    }

    // MARK: Gatehouse's own answers

    /// Writes Gatehouse's own answer; a body still on its way will not be read (the connection
    /// closes after the answer).
    private func answer(_ exchange: ClientExchange, _ response: GatehouseResponse, close: Bool) {
        guard let context, self.exchange === exchange else { return }
        var response = response
        for (name, value) in exchange.corsHeaders ?? [] { response.headers.replaceOrAdd(name: name, value: value) }
        exchange.status = Int(response.status.code)
        exchange.responseBytes = Int64(response.body.readableBytes)
        let after = machine.answeredByGatehouse(close: close)
        let closes = machine.closesAfterExchange
        context.write(
            wrapOutboundOut(response.serialized(versionMinor: exchange.clientVersionMinor, close: closes, headRequest: exchange.isHEAD, allocator: context.channel.allocator)),
            promise: nil)
        context.flush()
        if let after {
            finishExchange(exchange, after)
        } else {
            // The request's end is still to be read (the answer may have come after a store lookup).
            process()
            resumeReading()
        }
    }

    /// Runs one of Gatehouse's own endpoints once its body is complete.
    private func dispatchOwnEndpoint(_ exchange: ClientExchange) {
        guard let context else { return }
        if exchange.isReadinessProbe {
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
            return
        }
        guard let endpoints = settings.endpoints else {
            return answer(exchange, .json(.notFound, detail: "No such Gatehouse endpoint.", allocator: context.channel.allocator), close: false)
        }
        let request = OwnRequest(
            head: exchange.head, target: exchange.target, body: exchange.ownBody, peer: peer, overTLS: settings.clientScheme == "https")
        exchange.ownBody = []
        let promise = context.eventLoop.makePromise(of: OwnResponse.self)
        promise.completeWithTask { await endpoints.respond(request, now: endpoints.accounts.credentials.now()) }
        promise.futureResult.assumeIsolated().whenSuccess { response in
            self.ownEndpointAnswered(response, exchange)
        }
    }

    private func ownEndpointAnswered(_ response: OwnResponse, _ exchange: ClientExchange) {
        guard let context, self.exchange === exchange, !exchange.abandoned else { return }
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        answer(exchange, GatehouseResponse(status: HTTPResponseStatus(statusCode: response.status), headers: headers, body: buffer), close: false)
    }

    private func collect(_ body: ByteBuffer) {
        guard let exchange, let context else { return }
        guard exchange.ownBody.count + body.readableBytes <= OwnEndpoints.maxBodyBytes else {
            machine.closeAfterExchange()
            return answer(exchange, .json(.payloadTooLarge, detail: "The request body is larger than this endpoint takes.", allocator: context.channel.allocator), close: true)
        }
        exchange.ownBody += body.readableBytesView
    }

    // MARK: Forwarding

    private func forward(_ exchange: ClientExchange, plan: ForwardPlan) {
        guard let context else { return }
        if let csrf = settings.octoPrintCSRF, DeviceCSRFPolicy.applies(to: plan, method: exchange.head.method) {
            guard let token = csrf.value else {
                // Fetched from the device in the background; the request waits for it (no longer
                // than the device's own time to answer) rather than go without and be refused.
                csrf.whenAvailable(on: context.eventLoop, within: settings.upstreamResponseTimeout).assumeIsolated().whenSuccess { token in
                    guard self.exchange === exchange, !exchange.abandoned else { return }
                    self.forward(exchange, plan: plan, deviceCSRFToken: token)
                }
                return
            }
            return forward(exchange, plan: plan, deviceCSRFToken: token)
        }
        forward(exchange, plan: plan, deviceCSRFToken: nil)
    }

    private func forward(_ exchange: ClientExchange, plan: ForwardPlan, deviceCSRFToken: String?) {
        guard context != nil else { return }
        let head = exchange.head
        if head.hasUnderscoreName {
            let dropped = head.fields.filter { $0.hasUnderscore && settings.headerPolicy.dropsUnderscoreHeader(bytes: head.bytes[$0.nameRange]) }
            if let first = dropped.first {
                loop.metrics.droppedUnderscoreHeaders += dropped.count
                if settings.metrics?.shouldLogDroppedHeader() ?? true {
                    settings.logger.warning("dropped request header \(head.name(of: first).prefix(64)) (a _ in a header name; forward_underscore_headers lets named ones through); logged at most once a minute")
                }
            }
        }
        exchange.forwarding = ClientExchange.Forwarding(
            plan: plan, deviceTarget: settings.headerPolicy.target(exchange.target, plan: plan).uri, deviceCSRFToken: deviceCSRFToken)
        exchange.forwardedAt = .now()
        acquireUpstream(for: exchange, fresh: false)
    }

    /// A device connection: an idle one at once, or a new one.
    private func acquireUpstream(for exchange: ClientExchange, fresh: Bool) {
        if !fresh, let idle = loop.pool.takeIdle() {
            return attach(idle, to: exchange, reused: true)
        }
        loop.pool.connect().assumeIsolated().whenComplete { result in
            guard self.exchange === exchange, !exchange.abandoned else {
                if case .success(let connection) = result { connection.close() }
                return
            }
            switch result {
            case .success(let connection): self.attach(connection, to: exchange, reused: false)
            case .failure(let error):
                self.settings.logger.warning("upstream unavailable: \(error)")
                self.deviceGaveNoAnswer(exchange, status: .badGateway, detail: "The device behind Gatehouse is not reachable.")
            }
        }
    }

    private func attach(_ connection: UpstreamConnectionHandler, to exchange: ClientExchange, reused: Bool) {
        guard let forwarding = exchange.forwarding, let context else { return }
        exchange.upstream = connection
        // Written when a connection is there (again for a retry): nothing holds it after the write.
        var head = loop.headBuffer(
            .toDevice, capacity: exchange.head.bytes.count + forwarding.deviceTarget.utf8.count + 256, allocator: context.channel.allocator)
        HeadWriter.request(
            exchange.head, target: forwarding.deviceTarget, policy: settings.headerPolicy, plan: forwarding.plan,
            isWebSocketUpgrade: exchange.isWebSocketUpgrade, scheme: settings.clientScheme, peer: peer, peerText: peerText,
            deviceCSRFToken: forwarding.deviceCSRFToken, into: &head)
        connection.begin(
            delegate: self, requestHead: head, requestWasHEAD: exchange.isHEAD, responseTimeout: settings.upstreamResponseTimeout, reused: reused)
        loop.reuse(head, .toDevice)
        machine.decided(.device)
        if machine.requestEnded {
            // A retry: the request (without a body byte sent) was complete already.
            connection.sendEnd(nil, flush: !inReadCycle)
        } else {
            // The body, as far as it has come, goes now.
            process()
            if !inReadCycle, exchange.upstream === connection { connection.flush() }
        }
        resumeReading()
    }

    private var currentRoute: ClientConnectionStateMachine.Route? {
        if case .exchange(let e) = machine.state { return e.route }
        return nil
    }

    /// The request body's size against `limits.max_body_bytes`: past it, 413 (or a close when
    /// the response already began).
    private func withinBodyLimit(_ exchange: ClientExchange) -> Bool {
        let limit = settings.limits.maxBodyBytes
        guard limit > 0, exchange.requestBytes > limit, let context else { return true }
        exchange.abandon()
        machine.closeAfterExchange()
        if machine.responseStarted {
            closeAbruptly(exchange, note: nil)
        } else {
            answer(exchange, .json(.payloadTooLarge, detail: "The request body is larger than allowed.", allocator: context.channel.allocator), close: true)
        }
        return false
    }

    // MARK: The device's answer (UpstreamExchangeDelegate)

    var clientIsWritable: Bool { context?.channel.isWritable ?? false }

    func upstreamResponseHead(_ head: ScannedResponseHead, bytes: ByteBuffer, leftover: ByteBuffer?) {
        guard let context, let exchange else { return }
        if head.isInterim {
            // 100 Continue and other interim answers pass straight through to an HTTP/1.1 client.
            guard exchange.clientVersionMinor >= 1 else { return }
            var buffer = context.channel.allocator.buffer(capacity: bytes.readableBytes + 16)
            writeHead(head, from: bytes, versionMinor: 1, cors: nil, into: &buffer)
            buffer.writeStaticString("\r\n")
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            return
        }
        exchange.status = head.status
        if let forwardedAt = exchange.forwardedAt {
            loop.metrics.upstreamResponded(after: (NIODeadline.now() - forwardedAt).nanoseconds)
        }
        if head.status == 101 { return switchProtocols(exchange, head: head, bytes: bytes, leftover: leftover) }
        var close = !exchange.head.keepAlive || machine.closesAfterExchange
        switch head.framing {
        case .none, .contentLength:
            exchange.responseFraming = head.framing == .none ? .none : .passThrough
        case .chunked:
            if exchange.clientVersionMinor >= 1 {
                exchange.responseFraming = .passThrough
            } else {
                exchange.responseFraming = .dechunked
                close = true
            }
        case .untilClose:
            exchange.responseFraming = .passThrough
            close = true
        }
        machine.responseStarted(close: close)
        let chunkedPassThrough = head.framing == .chunked && exchange.responseFraming == .passThrough
        let extra = HeadWriter.responseFramingLines(
            chunked: chunkedPassThrough, close: close, announceKeepAlive: exchange.clientVersionMinor == 0)
        // Room for a small body that arrives in the same read: head and body go out as one write.
        var reserve = 0
        if case .contentLength(let length) = head.framing { reserve = Int(min(length, Self.coalescedBodyBytes)) }
        var buffer = loop.headBuffer(.toClient, capacity: bytes.readableBytes + extra.utf8CodeUnitCount + reserve, allocator: context.channel.allocator)
        if head.needsFieldByField || exchange.corsHeaders != nil {
            writeHead(head, from: bytes, versionMinor: exchange.clientVersionMinor, cors: exchange.corsHeaders, into: &buffer)
            buffer.writeStaticString(extra)
        } else {
            bytes.withUnsafeReadableBytes { raw in
                HeadWriter.passedOnResponseHead(
                    head, raw: raw, versionMinor: exchange.clientVersionMinor, extra: extra, reserving: reserve, into: &buffer)
            }
        }
        heldResponseHead = buffer
    }

    /// A response body up to this size that arrives with its head is written with it.
    private static let coalescedBodyBytes: Int64 = 16 * 1024

    /// Writes the response head held back for its body, if any.
    private func writeHeldResponseHead() {
        guard let head = heldResponseHead, let context else { return }
        heldResponseHead = nil
        context.write(wrapOutboundOut(head), promise: nil)
        loop.reuse(head, .toClient)
    }

    /// The rare path of a passed-on head: the device named headers in `Connection` (those go too),
    /// or a CORS path (Gatehouse's CORS headers instead of the device's). The caller adds the
    /// framing lines and the blank line.
    private func writeHead(
        _ head: ScannedResponseHead, from bytes: ByteBuffer, versionMinor: Int, cors: [(name: String, value: String)]?,
        into buffer: inout ByteBuffer
    ) {
        bytes.withUnsafeReadableBytes { raw in
            HeadWriter.statusLine(versionMinor: versionMinor, status: head.status, reason: head.reasonText(in: raw), into: &buffer)
            var fields = DownstreamResponseHeaders.clean(head.headers(in: raw), isSwitchingProtocols: false)
            if let cors {
                // On a CORS path Gatehouse's policy speaks, never the device's.
                fields.removeAll { field in
                    HeaderName.foldedHasPrefix(field.name, "access-control-")
                        || cors.contains { $0.name.asciiLowercased() == field.name.asciiLowercased() }
                }
                fields += cors
            }
            for (name, value) in fields { HeadWriter.field(name, value, into: &buffer) }
        }
    }

    func upstreamResponseBody(wire: ByteBuffer, payload: ByteBuffer) {
        guard let context, let exchange else { return }
        switch exchange.responseFraming {
        case .none: return
        case .passThrough:
            exchange.responseBytes += Int64(wire.readableBytes)
            write(wire, context: context)
        case .dechunked:
            guard payload.readableBytes > 0 else { return }
            exchange.responseBytes += Int64(payload.readableBytes)
            write(payload, context: context)
        }
    }

    /// Writes response bytes: into the held head when they fit its room, else after it.
    private func write(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        if heldResponseHead != nil {
            if heldResponseHead!.writableBytes >= bytes.readableBytes {
                var bytes = bytes
                heldResponseHead!.writeBuffer(&bytes)
                return
            }
            writeHeldResponseHead()
        }
        context.write(wrapOutboundOut(bytes), promise: nil)
    }

    func upstreamResponseEnd(wire: ByteBuffer?) {
        guard let context, let exchange, let upstream = exchange.upstream else { return }
        if let wire, exchange.responseFraming == .passThrough { write(wire, context: context) }
        writeHeldResponseHead()
        exchange.upstream = nil
        if machine.requestEnded {
            loop.pool.release(upstream)
        } else {
            // The device answered before the request body was finished; that body will not be
            // read any further, so neither connection can be reused.
            upstream.close()
        }
        guard let after = machine.responseEnded() else { return }
        finishExchange(exchange, after)
    }

    func upstreamReadComplete() {
        writeHeldResponseHead()
        context?.flush()
    }

    func upstreamBecameWritable() { resumeReading() }

    func upstreamFailed(_ failure: UpstreamFailure, retriable: Bool) {
        guard let exchange else { return }
        exchange.upstream = nil
        // As nginx: only a method that may be repeated, and only when nothing of the answer came
        // and no body byte went out. A POST (Moonraker's G-code commands are bodyless POSTs) is
        // never sent twice: the device may have acted on it before it closed.
        if retriable, !exchange.retried, !machine.responseStarted, Self.retriableMethods.contains(exchange.head.method),
            case .closedEarly = failure
        {
            exchange.retried = true
            return acquireUpstream(for: exchange, fresh: true)
        }
        if machine.responseStarted { return closeAbruptly(exchange, note: "upstream_reset") }
        switch failure {
        case .timedOut: deviceGaveNoAnswer(exchange, status: .gatewayTimeout, detail: "The device behind Gatehouse did not answer in time.")
        case .malformedResponse(let error):
            settings.logger.warning("the device's response could not be framed (\(error)); its connection is closed")
            deviceGaveNoAnswer(exchange, status: .badGateway, detail: "The device behind Gatehouse sent a response that cannot be framed.")
        case .connectFailed, .closedEarly:
            deviceGaveNoAnswer(exchange, status: .badGateway, detail: "The device behind Gatehouse closed the connection.")
        }
    }

    /// Methods a client may repeat without changing the outcome (RFC 9110 idempotent, less TRACE).
    static let retriableMethods: Set<String> = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]

    /// The device failed or timed out before any response head: Gatehouse answers 502/504 itself.
    private func deviceGaveNoAnswer(_ exchange: ClientExchange, status: HTTPResponseStatus, detail: String) {
        guard let context, self.exchange === exchange else { return }
        exchange.abandon()
        answer(exchange, .json(status, detail: detail, allocator: context.channel.allocator), close: !machine.requestEnded)
    }

    /// The response began and cannot be finished: the client must not take a truncated body for
    /// a complete one, so its connection is closed without the final chunk.
    private func closeAbruptly(_ exchange: ClientExchange, note: String?) {
        exchange.abandon()
        log(exchange, note: note)
        machine.abort()
        self.exchange = nil
        writeHeldResponseHead()
        context?.flush()
        context?.close(promise: nil)
    }

    // MARK: The end of an exchange

    private func finishExchange(_ exchange: ClientExchange, _ after: ClientConnectionStateMachine.AfterExchange) {
        log(exchange, note: nil)
        if self.exchange === exchange { self.exchange = nil }
        switch after {
        case .close:
            inbound = nil
            body = nil
            closeAfterFlush()
        case .next:
            // A request pipelined behind this one may be waiting in `inbound`.
            process()
            resumeReading()
        }
    }

    private func closeAfterFlush() {
        guard let context, !closing else { return }
        closing = true
        timer?.cancel()
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    // MARK: Tunnel

    private func switchProtocols(_ exchange: ClientExchange, head: ScannedResponseHead, bytes: ByteBuffer, leftover: ByteBuffer?) {
        guard let context, let upstream = exchange.upstream else { return }
        let (headers, reason) = bytes.withUnsafeReadableBytes { raw in (head.headers(in: raw), head.reasonText(in: raw)) }
        // Only a WebSocket that completes the handshake the client began becomes a tunnel: a
        // device that switched to anything else (h2c) would carry bytes past every rule.
        guard exchange.isWebSocketUpgrade, let key = WebSocketHandshake.key(in: exchange.head),
            WebSocketHandshake.accepts(response: headers, key: key)
        else {
            machine.closeAfterExchange()
            return deviceGaveNoAnswer(exchange, status: .badGateway, detail: "The device switched to a protocol other than the WebSocket that was asked for.")
        }
        var buffer = context.channel.allocator.buffer(capacity: 256)
        HeadWriter.statusLine(versionMinor: 1, status: 101, reason: reason, into: &buffer)
        for (name, value) in DownstreamResponseHeaders.clean(headers, isSwitchingProtocols: true) where !name.equalsCaseInsensitive("connection") {
            HeadWriter.field(name, value, into: &buffer)
        }
        buffer.writeStaticString("Connection: Upgrade\r\n\r\n")
        context.write(wrapOutboundOut(buffer), promise: nil)
        exchange.upstream = nil
        machine.becameTunnel()
        log(exchange, note: "tunnel")
        self.exchange = nil
        timer?.cancel()
        let metrics = loop.metrics
        metrics.openTunnels += 1
        context.channel.closeFuture.assumeIsolated().whenComplete { _ in metrics.openTunnels -= 1 }

        let (clientSide, upstreamSide) = ByteTunnelHandler.pair()
        do {
            try upstream.becomeTunnel(upstreamSide)
            let pipeline = context.pipeline.syncOperations
            if let watch = credentialWatch(for: exchange) { try pipeline.addHandler(watch, position: .after(self)) }
            try pipeline.addHandler(clientSide)
            if let leftover { upstreamSide.forwardToPartner(leftover) }
            // Bytes the client sent after its request head belong to the tunnel, and only to it.
            if let early = inbound, early.readableBytes > 0 {
                clientSide.forwardToPartner(early)
                clientSide.flushPartner()
            }
            inbound = nil
            body = nil
            context.flush()
            pipeline.removeHandler(context: context, promise: nil)
        } catch {
            upstream.close()
            upstreamSide.closeChannel()
            context.close(promise: nil)
        }
    }

    /// A watch that closes the tunnel once the request that opened it would no longer be let
    /// through as the same user: the same gate decision, store lookup and completion, asked again.
    /// A one-shot token is spent by design, so a tunnel it opened is held to its user instead
    /// (deleted or disabled closes it). Each check reads the current settings, so a key or rule
    /// removed by a reload closes the tunnels it opened too.
    private func credentialWatch(for exchange: ClientExchange) -> TunnelCredentialWatch? {
        guard let facts = exchange.facts, let identity = exchange.identity else { return nil }
        let user = identity.user
        let source = settingsSource
        let accounts = settings.accounts
        return TunnelCredentialWatch(interval: settings.tunnelRecheck, now: { accounts?.credentials.now() ?? Date() }) { now in
            let gate = source.current.gate
            if case .lookUp(let pending) = gate.decide(facts, now: now), pending.kind == .oneShotToken {
                guard let accounts else { return false }
                // A user the config names (its keys, trusted networks) needs no store entry
                // while the config still names them; one removed by a reload does.
                return await accounts.credentials.userIsActive(user, mustExist: !gate.configUsers.contains(user))
            }
            guard case .forward(let plan) = await gate.decideFully(facts, accounts: accounts, now: now) else { return false }
            return plan.identity?.user == user
        }
    }

    // MARK: Access log

    /// Counts the finished exchange and writes its access-log line (once each).
    private func log(_ exchange: ClientExchange, note: String?) {
        guard !exchange.logged else { return }
        exchange.logged = true
        loop.metrics.request(status: exchange.status, auth: exchange.identity?.method, failure: exchange.failure)
        guard settings.accessLog else { return }
        let elapsed = (NIODeadline.now() - exchange.started).nanoseconds
        loop.accessLog.write { line in
            line.append(exchange.head.method)
            line.append(" ")
            let logged = DevicePaths.withoutTokens(exchange.target.path)
            if logged.utf8.count > 256 {
                line.append(String(logged.prefix(256)))
                line.append("…")
            } else {
                line.append(logged)
            }
            line.append(" ")
            line.append(exchange.status)
            line.append(" user=")
            line.append(exchange.identity?.user ?? "-")
            line.append(" auth=")
            line.append(exchange.identity?.method.rawValue ?? "-")
            if let failure = exchange.failure {
                line.append(" reason=")
                line.append(failure.code)
            }
            line.append(" in=")
            line.append(exchange.requestBytes)
            line.append(" out=")
            line.append(exchange.responseBytes)
            line.append(" ms=")
            line.appendMilliseconds(nanoseconds: elapsed)
            if let note {
                line.append(" note=")
                line.append(note)
            }
        }
    }
}
