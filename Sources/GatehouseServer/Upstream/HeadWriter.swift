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
    /// through (a client's line copied from the bytes it arrived in), the framing, the blank line;
    /// appended to `buffer` (sized by the caller: the received head plus 256 bytes is enough for
    /// the request line and Gatehouse's own lines; a longer one grows the buffer).
    static func request(
        _ head: RequestHead, target: String, policy: UpstreamHeaderPolicy, plan: ForwardPlan, isWebSocketUpgrade: Bool, scheme: String,
        peer: IPAddress?, peerText: String?, deviceCSRFToken: String?, into buffer: inout ByteBuffer
    ) {
        var method = head.method
        var target = target
        _ = method.withUTF8 { method in
            target.withUTF8 { target in
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: method.count + target.count + 12) { out in
                    var appender = ByteAppender(out)
                    appender.append(UnsafeRawBufferPointer(method))
                    appender.append(space)
                    appender.append(UnsafeRawBufferPointer(target))
                    appender.append(http11RequestLineEnd)
                    return appender.count
                }
            }
        }
        head.bytes.withUnsafeBytes { raw in
            policy.forEachField(
                of: head, plan: plan, isWebSocketUpgrade: isWebSocketUpgrade, scheme: scheme, peer: peer, peerText: peerText,
                deviceCSRFToken: deviceCSRFToken
            ) { field in
                switch field {
                case .received(let received):
                    Self.line(
                        UnsafeRawBufferPointer(rebasing: raw[Int(received.nameStart)..<Int(received.nameEnd)]),
                        UnsafeRawBufferPointer(rebasing: raw[Int(received.valueStart)..<Int(received.valueEnd)]), into: &buffer)
                case .setReceivedValue(let name, let received):
                    Self.line(bytes(of: name), UnsafeRawBufferPointer(rebasing: raw[Int(received.valueStart)..<Int(received.valueEnd)]), into: &buffer)
                case .set(var name, var value):
                    name.withUTF8 { name in value.withUTF8 { value in Self.line(UnsafeRawBufferPointer(name), UnsafeRawBufferPointer(value), into: &buffer) } }
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
    }

    /// `name: value` CRLF, with one capacity check.
    static func line(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        let length = name.count + value.count + 4
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
            var appender = ByteAppender(out)
            appender.append(name)
            appender.append(colonSpace)
            appender.append(value)
            appender.append(crlf)
            return appender.count
        }
    }

    /// The device's response head as it is passed on, written with one capacity check: the status
    /// line (its version set to `versionMinor`, the rest as the device sent it), the device's
    /// header lines less the hop-by-hop ones (runs between them copied whole), then `extra`
    /// (Gatehouse's framing and connection lines, with the blank line). `raw` is the head's bytes.
    static func passedOnResponseHead(
        _ head: ScannedResponseHead, raw: UnsafeRawBufferPointer, versionMinor: Int, extra: StaticString, reserving: Int, into buffer: inout ByteBuffer
    ) {
        // Never longer than what came (the version is as long either way, lines only go) plus `extra`.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: raw.count + extra.utf8CodeUnitCount + reserving) { out in
            var appender = ByteAppender(out)
            let statusLineEnd = head.reason.upperBound + 2
            appender.append(versionMinor == 0 ? http10 : http11)
            appender.append(UnsafeRawBufferPointer(rebasing: raw[8..<statusLineEnd]))
            var runStart = statusLineEnd
            for k in 0..<head.hopByHop.count {
                let line = head.hopByHop[k]
                appender.append(UnsafeRawBufferPointer(rebasing: raw[runStart..<line.lowerBound]))
                runStart = line.upperBound
            }
            // Up to the blank line, which `extra` ends with.
            appender.append(UnsafeRawBufferPointer(rebasing: raw[runStart..<(raw.count - 2)]))
            appender.append(bytes(of: extra))
            return appender.count
        }
    }

    private static var colonSpace: UnsafeRawBufferPointer { bytes(of: ": ") }
    private static var crlf: UnsafeRawBufferPointer { bytes(of: "\r\n") }
    private static var http10: UnsafeRawBufferPointer { bytes(of: "HTTP/1.0") }
    private static var http11: UnsafeRawBufferPointer { bytes(of: "HTTP/1.1") }
    private static var space: UnsafeRawBufferPointer { bytes(of: " ") }
    private static var http11RequestLineEnd: UnsafeRawBufferPointer { bytes(of: " HTTP/1.1\r\n") }

    private static func bytes(of text: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
    }

    /// The lines Gatehouse adds after a passed-on response head, with the blank line.
    static func responseFramingLines(chunked: Bool, close: Bool, announceKeepAlive: Bool) -> StaticString {
        switch (chunked, close, announceKeepAlive) {
        case (true, true, _): return "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        case (true, false, true): return "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        case (true, false, false): return "Transfer-Encoding: chunked\r\n\r\n"
        case (false, true, _): return "Connection: close\r\n\r\n"
        case (false, false, true): return "Connection: keep-alive\r\n\r\n"
        case (false, false, false): return "\r\n"
        }
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

/// Appends bytes into memory whose size was checked once for all of them. Appending past the end
/// stops the process (a wrong size estimate must never write out of bounds).
struct ByteAppender {
    private let base: UnsafeMutableRawPointer?
    private let capacity: Int
    private(set) var count = 0

    init(_ out: UnsafeMutableRawBufferPointer) {
        base = out.baseAddress
        capacity = out.count
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        precondition(count + bytes.count <= capacity, "head larger than reserved")
        (base! + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }
}
