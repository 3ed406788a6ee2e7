/// Why a request's head was refused before anything reached the device (``RequestHeadScanner``):
/// each case is a way a proxy and its upstream could disagree on where a request ends (request
/// smuggling) or on what a header says.
public enum FramingViolation: Error, Sendable, Hashable {
    case contentLengthWithTransferEncoding
    case multipleContentLength
    case invalidContentLength
    case unsupportedTransferEncoding
    case transferEncodingInHTTP10
    case invalidHeaderName
    case invalidHeaderValue(name: String)
    case missingHost
    case multipleHost
    case targetNotOriginForm
    /// A `#` in the request target: a fragment is the client's own business and never sent, so
    /// a `#` here is not a path or query character a proxy and a device would read alike.
    case fragmentInTarget

    public var detail: String {
        switch self {
        case .contentLengthWithTransferEncoding: return "Both Content-Length and Transfer-Encoding were sent."
        case .multipleContentLength: return "Content-Length was sent more than once."
        case .invalidContentLength: return "Content-Length is not a plain decimal number."
        case .unsupportedTransferEncoding: return "Transfer-Encoding must be exactly 'chunked'."
        case .transferEncodingInHTTP10: return "Transfer-Encoding is not allowed in an HTTP/1.0 request."
        case .invalidHeaderName: return "A header name contains characters that are not allowed."
        case .invalidHeaderValue(let name): return "The value of header \(name) contains control characters."
        case .missingHost: return "An HTTP/1.1 request must carry exactly one Host header."
        case .multipleHost: return "Host was sent more than once."
        case .targetNotOriginForm: return "The request target must be a path starting with '/'."
        case .fragmentInTarget: return "The request target holds a '#' (a fragment is never sent to a server)."
        }
    }
}

/// The byte classes of HTTP/1.1's grammar (RFC 9110 §5.6.2, §5.5), shared by every parser
/// and check in Gatehouse.
public enum HTTPSyntax {
    /// What a `Connection` value's comma-separated tokens say, read in place (both parsers use it).
    public struct ConnectionTokens {
        public var close = false
        public var keepAlive = false
        /// A token besides `close` and `keep-alive`: the value names a header.
        public var namesHeaders = false

        public init(_ value: UnsafeRawBufferPointer) {
            var tokenStart = 0
            for k in 0...value.count {
                guard k == value.count || value[k] == UInt8(ascii: ",") else { continue }
                var start = tokenStart
                var end = k
                while start < end, value[start] == 0x20 || value[start] == 0x09 { start += 1 }
                while end > start, value[end - 1] == 0x20 || value[end - 1] == 0x09 { end -= 1 }
                let token = value[start..<end]
                if HeaderName.foldedEquals(bytes: token, "close") {
                    close = true
                } else if HeaderName.foldedEquals(bytes: token, "keep-alive") {
                    keepAlive = true
                } else if !token.isEmpty {
                    namesHeaders = true
                }
                tokenStart = k + 1
            }
        }
    }

    /// RFC 9110 token characters: letters, digits and ``!#$%&'*+-.^_`|~``.
    @inline(__always)
    public static func isTokenByte(_ b: UInt8) -> Bool {
        if b < 64 { return (0x03FF_6CFA_0000_0000 as UInt64) >> UInt64(b) & 1 == 1 }
        if b < 128 { return (0x57FF_FFFF_C7FF_FFFE as UInt64) >> UInt64(b - 64) & 1 == 1 }
        return false
    }

    /// Visible ASCII, space, tab and obs-text; never NUL, CR, LF or other controls.
    @inline(__always)
    public static func isFieldValueByte(_ b: UInt8) -> Bool {
        b == 0x09 || (b >= 0x20 && b != 0x7F)
    }
}
