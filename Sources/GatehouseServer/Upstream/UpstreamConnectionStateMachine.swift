/// The life of one connection to the device, as a value: whether an exchange is under way, how
/// far its request and response got, when the device's time to answer runs, and whether the
/// connection may serve another request.
///
/// Guarantees: a connection is reusable only after a complete request was written and a
/// complete keep-alive response was read, never after a failure, a 101 or bytes the device sent
/// unasked; the device's response timer runs exactly while Gatehouse waits on the device — after
/// the request's end until a final response head, and while the device does not take the body
/// — and never while the client is the one still sending.
struct UpstreamConnectionStateMachine {
    enum State: Equatable {
        /// Connected, no exchange (new, or back in the pool).
        case idle
        case exchange(Progress)
        /// Handed to a byte tunnel: no longer HTTP.
        case tunnel
        /// Failed or closed: never used again.
        case closed
    }

    struct Progress: Equatable {
        var requestDone = false
        var bodySent = false
        /// Any response head arrived (an interim one too).
        var headSeen = false
        var finalHead = false
        var responseDone = false
        var keepAlive = true
        var writable = true
    }

    enum TimerAction: Equatable { case none, start, stop }

    private(set) var state = State.idle

    /// A request begins on this connection.
    mutating func begin(writable: Bool) {
        state = .exchange(Progress(writable: writable))
    }

    mutating func sentBody() {
        guard case .exchange(var p) = state else { return }
        p.bodySent = true
        state = .exchange(p)
    }

    /// The request's end went out: the device's time to answer starts (unless it already did).
    mutating func sentEnd() -> TimerAction {
        guard case .exchange(var p) = state else { return .none }
        p.requestDone = true
        state = .exchange(p)
        return p.finalHead ? .none : .start
    }

    /// While the body is still being sent, a device that stops taking it is not answering either.
    mutating func writabilityChanged(_ writable: Bool) -> TimerAction {
        guard case .exchange(var p) = state else { return .none }
        p.writable = writable
        state = .exchange(p)
        guard !p.requestDone, !p.finalHead else { return .none }
        return writable ? .stop : .start
    }

    /// A response head arrived; a final one (or a 101) stops the device's timer.
    mutating func receivedHead(interim: Bool, keepAlive: Bool) -> TimerAction {
        guard case .exchange(var p) = state else { return .none }
        p.headSeen = true
        if !interim {
            p.finalHead = true
            p.keepAlive = keepAlive
        }
        state = .exchange(p)
        return interim ? .none : .stop
    }

    /// The response's last byte arrived.
    mutating func receivedEnd() {
        guard case .exchange(var p) = state else { return }
        p.responseDone = true
        state = .exchange(p)
    }

    /// The exchange is over; true when the connection may serve another request.
    mutating func finish() -> Bool {
        guard case .exchange(let p) = state, p.requestDone, p.responseDone, p.keepAlive else {
            state = .closed
            return false
        }
        state = .idle
        return true
    }

    mutating func becomeTunnel() { state = .tunnel }

    mutating func fail() { state = .closed }

    /// Nothing of a response arrived and no body byte went out: the device cannot have seen
    /// more than the head.
    var sawNothing: Bool {
        guard case .exchange(let p) = state else { return false }
        return !p.headSeen && !p.bodySent
    }

    var isIdle: Bool { state == .idle }
    var isClosed: Bool { state == .closed }
}
