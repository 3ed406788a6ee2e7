import GatehouseCore
import NIOCore
import NIOHTTP1

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
    let head: HTTPRequestHead
    let headers: [(name: String, value: String)]
    /// The target as received until the path was normalized, then the normalized one (what the
    /// rules see and what goes upstream).
    var target: RequestTarget
    let started = NIODeadline.now()
    /// When the request was handed to the device (for the latency metric).
    var forwardedAt: NIODeadline?
    var clientVersionMinor: Int { head.version.minor == 0 ? 0 : 1 }
    /// The client sent `Transfer-Encoding: chunked`: the body goes upstream re-chunked.
    let chunkedRequest: Bool

    var identity: Identity?
    var failure: AuthenticationFailure?
    var corsHeaders: [(name: String, value: String)]?
    var facts: RequestFacts?
    var isWebSocketUpgrade = false
    var isReadinessProbe = false
    /// Collected for an own endpoint (at most `OwnEndpoints.maxBodyBytes`).
    var ownBody: [UInt8] = []

    /// Body parts (already framed for the wire) waiting for the decision or the device connection.
    var heldBody: [ByteBuffer] = []
    var heldEnd = false
    var upstream: UpstreamConnectionHandler?
    /// The serialized head sent upstream, kept for one retry on a fresh connection.
    var upstreamHead: ByteBuffer?
    var retried = false
    var abandoned = false
    var responseFraming = ClientResponseFraming.none
    var logged = false
    var status = 0
    var requestBytes: Int64 = 0
    var responseBytes: Int64 = 0

    init(head: HTTPRequestHead, headers: [(name: String, value: String)]) {
        self.head = head
        self.headers = headers
        self.target = RequestTarget(head.uri)
        self.chunkedRequest = headers.contains { $0.name.equalsCaseInsensitive("transfer-encoding") }
    }

    /// Ends the device side for good: its connection is closed, never pooled.
    func abandon() {
        abandoned = true
        heldBody.removeAll()
        upstream?.close()
        upstream = nil
    }
}
