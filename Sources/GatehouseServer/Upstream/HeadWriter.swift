import GatehouseCore
import NIOCore

/// Serializes heads straight into one `ByteBuffer`: no intermediate header objects, one write.
///
/// Guarantees: every value written was validated before it got here (client header values by
/// ``RequestHeadScanner``, device header values by ``ResponseFramingScanner``, Gatehouse's
/// own from the validated config), so no CR or LF can end a line early; the framing line is the
/// one the request was read by (``UpstreamHeaderPolicy/framing(of:)``).
enum HeadWriter {
    /// The head sent to the device: `METHOD target HTTP/1.1`, the header lines the policy lets
    /// through (a client's line copied from the bytes it arrived in), the framing, the blank line.
    static func request(
        _ head: RequestHead, target: String, policy: UpstreamHeaderPolicy, plan: ForwardPlan, isWebSocketUpgrade: Bool, scheme: String,
        peer: IPAddress?, peerText: String?, deviceCSRFToken: String?, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        // The received head bounds what is copied; Gatehouse's own lines fit in the slack.
        var buffer = allocator.buffer(capacity: head.bytes.count + target.utf8.count + 256)
        buffer.writeString(head.method)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(target)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        head.bytes.withUnsafeBytes { raw in
            policy.forEachField(
                of: head, plan: plan, isWebSocketUpgrade: isWebSocketUpgrade, scheme: scheme, peer: peer, peerText: peerText,
                deviceCSRFToken: deviceCSRFToken
            ) { field in
                switch field {
                case .received(let received):
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[Int(received.nameStart)..<Int(received.nameEnd)]))
                    buffer.writeStaticString(": ")
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: raw[Int(received.valueStart)..<Int(received.valueEnd)]))
                    buffer.writeStaticString("\r\n")
                case .set(let name, let value):
                    Self.field(name, value, into: &buffer)
                }
            }
        }
        switch head.framing {
        case .none: break
        case .contentLength(let n):
            buffer.writeStaticString("Content-Length: ")
            buffer.writeString(String(n))
            buffer.writeStaticString("\r\n")
        case .chunked:
            buffer.writeStaticString("Transfer-Encoding: chunked\r\n")
        }
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// The status line for `status` (the device's reason phrase when given).
    static func statusLine(versionMinor: Int, status: Int, reason: String?, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(versionMinor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        buffer.writeString(String(status))
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(reason ?? Self.reason(status))
        buffer.writeStaticString("\r\n")
    }

    static func field(_ name: String, _ value: String, into buffer: inout ByteBuffer) {
        buffer.writeString(name)
        buffer.writeStaticString(": ")
        buffer.writeString(value)
        buffer.writeStaticString("\r\n")
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Payload Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Status"
        }
    }
}
