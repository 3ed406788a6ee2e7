import GatehouseCore
import NIOCore

/// How the body of a response is delimited toward the client.
enum ClientResponseFraming {
    /// No body (HEAD, 1xx, 204, 304), or Gatehouse's own answer.
    case none
    /// The device's bytes as they arrived: its `Content-Length` or chunked framing, or a body
    /// ended by the close (then the client connection closes too).
    case passThrough
    /// A chunked body for an HTTP/1.0 client: the payload only, ended by the close.
    case dechunked
}

/// What one request/response exchange on a client connection knows: the request as parsed and
/// decided, its device connection, counts for the access log. Plain data; its transitions are
/// the connection's state machine's.
final class ClientExchange {
    let head: RequestHead
    /// The target as received until the path was normalized, then the normalized one (what the
    /// rules see and what goes upstream).
    var target: RequestTarget
    let started = NIODeadline.now()
    /// When the request was handed to the device (for the latency metric).
    var forwardedAt: NIODeadline?
    var clientVersionMinor: Int { head.versionMinor }
    var isHEAD: Bool { head.method == "HEAD" }

    var identity: Identity?
    var failure: AuthenticationFailure?
    var corsHeaders: [(name: String, value: String)]?
    var facts: RequestFacts?
    var isWebSocketUpgrade = false
    var isReadinessProbe = false
    /// Collected for an own endpoint (at most `OwnEndpoints.maxBodyBytes`).
    var ownBody: [UInt8] = []

    var upstream: UpstreamConnectionHandler?
    /// What the device is sent: the gate's plan, the target, OctoPrint's CSRF token. Kept (rather
    /// than the written head) for one retry on a fresh connection.
    struct Forwarding {
        let plan: ForwardPlan
        let deviceTarget: String
        let deviceCSRFToken: String?
    }
    var forwarding: Forwarding?
    var retried = false
    var abandoned = false
    var responseFraming = ClientResponseFraming.none
    var logged = false
    var status = 0
    /// Body data received (chunk framing not counted).
    var requestBytes: Int64 = 0
    var responseBytes: Int64 = 0

    init(head: RequestHead) {
        self.head = head
        self.target = RequestTarget(head.uri)
    }

    /// Ends the device side for good: its connection is closed, never pooled.
    func abandon() {
        abandoned = true
        upstream?.close()
        upstream = nil
    }
}
