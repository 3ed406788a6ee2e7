import GatehouseCore
import NIOCore

/// Serializes heads straight into one `ByteBuffer`: no intermediate header objects, one write.
///
/// Guarantees: every value written was validated before it got here (client header values by
/// ``RequestFramingValidator``, device header values by ``ResponseFramingScanner``, Gatehouse's
/// own from the validated config), so no CR or LF can end a line early.
enum HeadWriter {
    /// `METHOD target HTTP/1.1` and the headers, then the blank line.
    static func request(
        method: String, target: String, headers: [(name: String, value: String)], framing: HeaderField?, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var size = method.utf8.count + target.utf8.count + 16
        for (name, value) in headers { size += name.utf8.count + value.utf8.count + 4 }
        if let framing { size += framing.name.utf8.count + framing.value.utf8.count + 4 }
        var buffer = allocator.buffer(capacity: size + 2)
        buffer.writeString(method)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(target)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        for (name, value) in headers { field(name, value, into: &buffer) }
        if let framing { field(framing.name, framing.value, into: &buffer) }
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

    /// A chunk's size line.
    static func chunkHeader(_ count: Int, into buffer: inout ByteBuffer) {
        buffer.writeString(String(count, radix: 16))
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
