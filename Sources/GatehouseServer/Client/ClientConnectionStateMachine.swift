import NIOCore

/// The life of one client connection, as a value: one request at a time, pipelined requests held
/// back, where each request's body goes, when to read, which client timer runs, what a parser
/// error becomes, and when the connection closes. The handler (``ClientConnectionHandler``)
/// feeds it events and carries out the actions it returns; every transition is tested without a
/// channel (`ClientConnectionStateMachineTests`).
///
/// Guarantees (what NIO's pipelining helper, a protocol-error handler and a timeout handler each
/// gave before, in one place):
/// - One exchange at a time: bytes of a next request that arrive while one is under way stay
///   unread in the handler's buffer, and reading stops until they can be served; after a
///   response that closes the connection, they are dropped unanswered.
/// - A request body goes where its exchange decided — to the device, to an own endpoint, or
///   nowhere — and stays unparsed while no decision or no device connection is there yet;
///   reading stops while so and while the device does not take more.
/// - Timers: `idle` between requests, `clientHeader` from a request's first byte to its head,
///   `clientBody` from each read Gatehouse asks for during a body to its bytes; none while
///   Gatehouse itself holds the client back, none in a tunnel.
/// - A parser error before a response started is answered (400, or 431 for a head over the
///   limits) and the connection closed; during a response it is only closed.
/// - The connection closes after an exchange that asked for it (`Connection: close`, HTTP/1.0
///   without keep-alive, an upgrade that did not become a tunnel, a body left unread, a response
///   framed by its end).
struct ClientConnectionStateMachine {
    /// Where the current request's body goes.
    enum Route: Equatable {
        /// The exchange is being decided (a store lookup, or a device connection on its way):
        /// body parts are held.
        case held
        /// To the device connection.
        case device
        /// Collected for one of Gatehouse's own endpoints.
        case collect
        /// Dropped: Gatehouse answered (or refused) the request itself.
        case discard
    }

    enum Timer: Equatable { case idle, header, body }

    struct Exchange: Equatable {
        var route = Route.held
        var requestEnded = false
        /// A response (Gatehouse's or the device's) began: nothing else can be answered now.
        var responseStarted = false
        var responseEnded = false
        /// The request announced a body.
        var hasBody: Bool
        /// Close the connection when this exchange is over.
        var close: Bool
        /// The device cannot take more of the body right now.
        var deviceBlocked = false
        /// Bytes of a next request wait behind this exchange.
        var holdingNext = false
    }

    enum State: Equatable {
        /// Between requests; `headStarted` once bytes of the next head arrived.
        case idle(headStarted: Bool)
        case exchange(Exchange)
        case tunnel
        case closed
    }

    /// What to do with one request part.
    enum PartAction: Equatable {
        /// A new exchange: decide it (admission, the gate).
        case decide
        /// The current exchange's own part, left unparsed until it is decided or its device is there.
        case holdForExchange
        case forwardToDevice
        case collect
        /// Dropped unread.
        case discard
        /// The request's end: forward it to the device.
        case forwardEndToDevice
        /// The request's end: run the own endpoint with the collected body.
        case dispatchOwnEndpoint
        /// The request's end came after Gatehouse's answer: the exchange is over.
        case finishExchange(AfterExchange)
        case none
    }

    /// What follows the end of an exchange.
    enum AfterExchange: Equatable {
        /// Close the connection (held bytes are dropped).
        case close
        /// Go on with the next request: the bytes held, then what comes.
        case next
    }

    enum ParserErrorAction: Equatable {
        /// Answer with this status and close.
        case answerAndClose(status: Int)
        case close
    }

    private(set) var state = State.idle(headStarted: false)

    init() {}

    // MARK: Reading

    /// Whether the handler should read from the client now.
    var shouldRead: Bool {
        switch state {
        case .idle: return true
        case .exchange(let e):
            if e.holdingNext { return false }
            // The request is complete: reading finds the client's close or the next head (held).
            if e.requestEnded { return true }
            switch e.route {
            case .held: return false
            case .device: return !e.deviceBlocked
            case .collect, .discard: return true
            }
        case .tunnel: return true
        case .closed: return false
        }
    }

    /// The client timer that should run now (nil: none).
    var timer: Timer? {
        switch state {
        case .idle(let started): return started ? .header : .idle
        case .exchange(let e):
            guard !e.requestEnded, shouldRead else { return nil }
            switch e.route {
            case .device, .collect, .discard: return .body
            case .held: return nil
            }
        case .tunnel, .closed: return nil
        }
    }

    // MARK: Events

    /// The handler went through what it had read: `bytesLeft` when some of it is not handled yet
    /// (between requests: bytes of a head still incomplete; in an exchange: bytes of the next
    /// request, or of this one's body while it waits for its decision or device).
    mutating func bytesLeft(_ bytesLeft: Bool) {
        switch state {
        case .idle:
            state = .idle(headStarted: bytesLeft)
        case .exchange(var e):
            e.holdingNext = bytesLeft && e.requestEnded
            state = .exchange(e)
        case .tunnel, .closed:
            break
        }
    }

    mutating func head(keepAlive: Bool, hasBody: Bool, asksUpgrade: Bool) -> PartAction {
        switch state {
        case .idle:
            state = .exchange(Exchange(hasBody: hasBody, close: !keepAlive || asksUpgrade))
            return .decide
        case .exchange:
            // The handler reads no head while an exchange is under way.
            return .holdForExchange
        case .tunnel, .closed:
            return .discard
        }
    }

    mutating func body() -> PartAction {
        guard case .exchange(let e) = state else { return .discard }
        switch e.route {
        case .held: return .holdForExchange
        case .device: return .forwardToDevice
        case .collect: return .collect
        case .discard: return .discard
        }
    }

    mutating func end() -> PartAction {
        guard case .exchange(var e) = state else { return .discard }
        if e.route == .held { return .holdForExchange }
        e.requestEnded = true
        state = .exchange(e)
        switch e.route {
        case .held: return .holdForExchange
        case .device: return .forwardEndToDevice
        case .collect: return .dispatchOwnEndpoint
        case .discard: return e.responseEnded ? .finishExchange(finishExchange()) : .none
        }
    }

    /// Whether no exchange is under way (a held head may start one).
    var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// The exchange was decided: its body now goes `route` (the caller goes on reading it).
    mutating func decided(_ route: Route) {
        guard case .exchange(var e) = state else { return }
        e.route = route
        state = .exchange(e)
    }

    /// Gatehouse answered the request itself. A body still on its way will not be read: the
    /// connection closes after the answer, so no one can make Gatehouse swallow it.
    mutating func answeredByGatehouse(close: Bool) -> AfterExchange? {
        guard case .exchange(var e) = state else { return nil }
        e.route = .discard
        e.responseStarted = true
        e.responseEnded = true
        if close || (e.hasBody && !e.requestEnded) { e.close = true }
        state = .exchange(e)
        return e.requestEnded || e.close ? finishExchange() : nil
    }

    /// The device's response head went out; `close` when it must be the last on this connection.
    mutating func responseStarted(close: Bool) {
        guard case .exchange(var e) = state else { return }
        e.responseStarted = true
        if close { e.close = true }
        state = .exchange(e)
    }

    /// Whether a response is under way on the current exchange.
    var responseStarted: Bool {
        if case .exchange(let e) = state { return e.responseStarted }
        return false
    }

    /// The device's response ended. A body it did not wait for will not be read any further.
    mutating func responseEnded() -> AfterExchange? {
        guard case .exchange(var e) = state else { return nil }
        e.responseEnded = true
        if !e.requestEnded { e.close = true }
        state = .exchange(e)
        return finishExchange()
    }

    /// The exchange failed in a way that leaves the connection unusable (a truncated response).
    mutating func abort() {
        state = .closed
    }

    mutating func deviceWritability(_ writable: Bool) {
        guard case .exchange(var e) = state else { return }
        e.deviceBlocked = !writable
        state = .exchange(e)
    }

    /// Whether the current exchange will close the connection.
    var closesAfterExchange: Bool {
        if case .exchange(let e) = state { return e.close }
        return state == .closed
    }

    /// Whether the request's end has arrived.
    var requestEnded: Bool {
        if case .exchange(let e) = state { return e.requestEnded }
        return false
    }

    /// Forces the close flag (a request that asked for an upgrade, HTTP/1.0 framing by close).
    mutating func closeAfterExchange() {
        guard case .exchange(var e) = state else { return }
        e.close = true
        state = .exchange(e)
    }

    private mutating func finishExchange() -> AfterExchange {
        guard case .exchange(let e) = state else { return .close }
        if e.close {
            state = .closed
            return .close
        }
        state = .idle(headStarted: false)
        return .next
    }

    /// The server is shutting down: an idle connection closes now (true); one in an exchange
    /// closes after it, and no held request is served.
    mutating func quiesce() -> Bool {
        switch state {
        case .idle:
            state = .closed
            return true
        case .exchange(var e):
            e.close = true
            state = .exchange(e)
            return false
        case .tunnel, .closed:
            return false
        }
    }

    mutating func becameTunnel() {
        state = .tunnel
    }

    /// A client timer ran out: the connection closes.
    mutating func timedOut() { state = .closed }

    /// The client's bytes are not HTTP as Gatehouse reads it (a head, or a chunked body):
    /// answered with `status` while no response began, and closed.
    mutating func parserError(status: Int) -> ParserErrorAction {
        let answerable: Bool
        switch state {
        case .idle: answerable = true
        case .exchange(let e): answerable = !e.responseStarted
        case .tunnel, .closed: answerable = false
        }
        state = .closed
        return answerable ? .answerAndClose(status: status) : .close
    }

    mutating func closed() {
        state = .closed
    }
}
