/// Why a request's head was refused before anything reached the device: each case is a way a
/// proxy and its upstream could disagree on where a request ends (request smuggling) or on what
/// a header says.
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

/// Checks the parsed head of a request for ambiguous framing and invalid fields.
///
/// Guarantees: a head that passes has at most one well-formed `Content-Length` xor a single
/// `Transfer-Encoding: chunked`, no control characters in any name or value (so no obs-fold, bare
/// CR/LF or NUL can survive into the head rebuilt for the device), one `Host` for HTTP/1.1, and an
/// origin-form target without a `#`. This runs after NIO's parser, which already refuses most of these; it is
/// the second lock on the same door.
public enum RequestFramingValidator {
    public static func validate(
        uri: String, versionMajor: Int, versionMinor: Int, headers: [(name: String, value: String)]
    ) -> FramingViolation? {
        guard uri.utf8.first == UInt8(ascii: "/") else { return .targetNotOriginForm }
        if uri.utf8.contains(UInt8(ascii: "#")) { return .fragmentInTarget }
        var contentLengths = 0
        var transferEncodings = 0
        var hosts = 0
        for (name, value) in headers {
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else { return .invalidHeaderName }
            guard value.utf8.allSatisfy(isFieldValueByte) else {
                return .invalidHeaderValue(name: name.utf8.count <= 64 ? name : String(name.prefix(64)))
            }
            if name.equalsCaseInsensitive("content-length") {
                contentLengths += 1
                guard !value.isEmpty, value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    return .invalidContentLength
                }
            } else if name.equalsCaseInsensitive("transfer-encoding") {
                transferEncodings += 1
                guard value.equalsCaseInsensitive("chunked") else { return .unsupportedTransferEncoding }
            } else if name.equalsCaseInsensitive("host") {
                hosts += 1
            }
        }
        if contentLengths > 0 && transferEncodings > 0 { return .contentLengthWithTransferEncoding }
        if contentLengths > 1 { return .multipleContentLength }
        if transferEncodings > 1 { return .unsupportedTransferEncoding }
        if transferEncodings > 0 && versionMajor == 1 && versionMinor == 0 { return .transferEncodingInHTTP10 }
        if hosts > 1 { return .multipleHost }
        if hosts == 0 && versionMajor == 1 && versionMinor >= 1 { return .missingHost }
        return nil
    }

    /// RFC 9110 token characters.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    /// Visible ASCII, space, tab and obs-text; never NUL, CR, LF or other controls.
    static func isFieldValueByte(_ b: UInt8) -> Bool {
        b == 0x09 || (b >= 0x20 && b != 0x7F)
    }
}
