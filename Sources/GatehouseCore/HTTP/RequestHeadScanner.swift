/// Finds and parses one request head in the bytes a client sent — Gatehouse's own HTTP/1 request
/// parser, strict so that Gatehouse and a device can never read the same bytes as different
/// requests.
///
/// Guarantees:
/// - Every line ends in CRLF; a bare LF or a CR without LF fails at once (it never waits for a
///   blank line that a lenient parser would have seen already).
/// - The request line is `METHOD SP target SP HTTP/1.x` with single spaces: an upper-case method
///   (letters, `-`, `_`, at most 20), an origin-form target of visible ASCII without `#`,
///   HTTP/1.0 or HTTP/1.1. Empty lines before it are skipped (RFC 9112 §2.2).
/// - Fields are `token ":" OWS value OWS` — nothing between name and colon, no obs-fold, no
///   control byte in a value — and framed as ``RequestHead`` promises: one plain decimal
///   `Content-Length` or one `Transfer-Encoding: chunked` (not both; not chunked in HTTP/1.0);
///   one `Host` (required in HTTP/1.1).
/// - Limits: the request line to ``Limits/maxRequestLineBytes`` (414), the fields to
///   ``Limits/maxHeadBytes`` and ``Limits/maxHeaders`` (431); checked while the head arrives.
/// - Work is linear in the bytes however they are split: a head offered again with more bytes
///   behind it is searched on from where the last search stopped.
/// A differential fuzz target (`FuzzRequestScanner`) holds it to SwiftNIO's `HTTPRequestDecoder`:
/// wherever both accept, they agree on the request and where it ends.
public struct RequestHeadScanner: Sendable {
    public struct Limits: Sendable {
        /// The header fields, from the end of the request line through the blank line.
        public var maxHeadBytes: Int
        public var maxHeaders: Int
        public var maxRequestLineBytes: Int

        public init(maxHeadBytes: Int = 32768, maxHeaders: Int = 100, maxRequestLineBytes: Int = 65536) {
            self.maxHeadBytes = maxHeadBytes
            self.maxHeaders = maxHeaders
            self.maxRequestLineBytes = maxRequestLineBytes
        }

        /// For heads built from parts (nothing arrives over a wire).
        public static let unlimited = Limits(maxHeadBytes: .max, maxHeaders: .max, maxRequestLineBytes: .max)
    }

    public enum Step: Sendable {
        /// No complete head yet: offer the same bytes again with the next ones behind them.
        case needMore
        /// The first `consumed` bytes (leading empty lines included) are this head.
        case head(RequestHead, consumed: Int)
        case failure(RequestHeadError)
    }

    public let limits: Limits
    /// Leading empty lines skipped so far.
    private var start = 0
    /// Where the request line ends (its CR), once found.
    private var requestLineEnd: Int?
    /// Bytes before this were searched already.
    private var searched = 0

    public init(limits: Limits) { self.limits = limits }

    /// Forgets a head in progress: the next ``scan(_:)`` starts at a new request.
    public mutating func reset() {
        start = 0
        requestLineEnd = nil
        searched = 0
    }

    /// Bytes of a head have arrived (the client-header timer runs from the first one).
    public var started: Bool { searched > start || requestLineEnd != nil }

    /// The next thing `bytes` (beginning where the last head ended) say.
    public mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Step {
        let count = bytes.count
        var i = searched
        // Empty lines before the request line.
        if requestLineEnd == nil {
            while i == start, i + 1 < count, bytes[i] == 0x0D, bytes[i + 1] == 0x0A {
                i += 2
                start = i
                guard start <= limits.maxRequestLineBytes else { return fail(.requestLineTooLong) }
            }
            if i == start, i < count, bytes[i] == 0x0A { return fail(.bareLineBreak) }
        }
        while i < count {
            let b = bytes[i]
            if b == 0x0D {
                guard i + 1 < count else { break }
                guard bytes[i + 1] == 0x0A else { return fail(.bareLineBreak) }
                if let lineEnd = requestLineEnd {
                    // A blank line: CR LF right after the previous line's CR LF.
                    if i == lineEnd + 2 || (i >= 2 && bytes[i - 2] == 0x0D && bytes[i - 1] == 0x0A && i - 2 > lineEnd) {
                        let end = i + 2
                        let result = parse(bytes, requestLineEnd: lineEnd, end: end)
                        reset()
                        switch result {
                        case .success(let head): return .head(head, consumed: end)
                        case .failure(let error): return .failure(error)
                        }
                    }
                } else {
                    requestLineEnd = i
                }
                i += 2
                continue
            }
            if b == 0x0A { return fail(.bareLineBreak) }
            i += 1
            if let lineEnd = requestLineEnd {
                if i - (lineEnd + 2) > limits.maxHeadBytes { return fail(.headTooLarge) }
            } else if i - start > limits.maxRequestLineBytes {
                return fail(.requestLineTooLong)
            }
        }
        searched = i
        return .needMore
    }

    private mutating func fail(_ error: RequestHeadError) -> Step {
        reset()
        return .failure(error)
    }

    // MARK: Parsing a complete head

    private func parse(_ all: UnsafeRawBufferPointer, requestLineEnd: Int, end: Int) -> Result<RequestHead, RequestHeadError> {
        let headBytes = Array(UnsafeRawBufferPointer(rebasing: all[start..<end]))
        return headBytes.withUnsafeBytes { head in
            Self.parse(head, requestLineEnd: requestLineEnd - start, limits: limits).map { parts in
                RequestHead(
                    bytes: headBytes, method: parts.method, uri: parts.uri, versionMinor: parts.minor, fields: parts.fields,
                    framing: parts.framing, keepAlive: parts.keepAlive, present: parts.present, hasUnderscoreName: parts.underscore)
            }
        }
    }

    private struct Parts {
        var method: String
        var uri: String
        var minor: Int
        var fields: [RequestHead.Field]
        var framing: RequestBodyFraming
        var keepAlive: Bool
        var present: UInt64
        var underscore: Bool
    }

    private static func parse(_ head: UnsafeRawBufferPointer, requestLineEnd: Int, limits: Limits) -> Result<Parts, RequestHeadError> {
        // Request line: METHOD SP target SP HTTP/1.x
        var i = 0
        while i < requestLineEnd, isMethodByte(head[i]) { i += 1 }
        guard i > 0, i <= 20, i < requestLineEnd, head[i] == 0x20 else { return .failure(.malformedRequestLine) }
        let method = String(decoding: UnsafeRawBufferPointer(rebasing: head[0..<i]), as: UTF8.self)
        let targetStart = i + 1
        var j = targetStart
        while j < requestLineEnd, head[j] != 0x20 {
            // Visible ASCII only: a client percent-encodes everything else (as SwiftNIO's parser
            // requires too), so no two readers can decode the target differently.
            guard head[j] > 0x20, head[j] < 0x7F else { return .failure(.malformedRequestLine) }
            j += 1
        }
        guard j > targetStart, j < requestLineEnd else { return .failure(.malformedRequestLine) }
        let target = UnsafeRawBufferPointer(rebasing: head[targetStart..<j])
        let uri = String(decoding: target, as: UTF8.self)
        let versionStart = j + 1
        guard requestLineEnd - versionStart == 8 else {
            return .failure(requestLineEnd - versionStart > 0 && head[versionStart] == UInt8(ascii: "H") ? .unsupportedVersion : .malformedRequestLine)
        }
        let version: StaticString = "HTTP/1."
        let prefixMatches = version.withUTF8Buffer { wanted in (0..<7).allSatisfy { head[versionStart + $0] == wanted[$0] } }
        guard prefixMatches else { return .failure(head[versionStart] == UInt8(ascii: "H") ? .unsupportedVersion : .malformedRequestLine) }
        let minorByte = head[versionStart + 7]
        guard minorByte == UInt8(ascii: "0") || minorByte == UInt8(ascii: "1") else { return .failure(.unsupportedVersion) }
        let minor = Int(minorByte - UInt8(ascii: "0"))
        guard target[0] == UInt8(ascii: "/") else { return .failure(.framing(.targetNotOriginForm)) }
        if target.contains(UInt8(ascii: "#")) { return .failure(.framing(.fragmentInTarget)) }

        // Fields, up to the blank line.
        var fields: [RequestHead.Field] = []
        fields.reserveCapacity(8)
        var present: UInt64 = 0
        var underscore = false
        var contentLengths = 0
        var length: Int64 = 0
        var transferEncodings = 0
        var chunked = true
        var hosts = 0
        var close = false
        var keepAliveToken = false
        var position = requestLineEnd + 2
        let end = head.count - 2
        while position < end {
            var lineEnd = position
            while head[lineEnd] != 0x0D { lineEnd += 1 }
            guard fields.count < limits.maxHeaders else { return .failure(.tooManyHeaders) }
            let first = head[position]
            if first == 0x20 || first == 0x09 { return .failure(.foldedHeader) }
            var colon = position
            var nameUnderscore = false
            while colon < lineEnd, head[colon] != UInt8(ascii: ":") {
                let b = head[colon]
                guard HTTPSyntax.isTokenByte(b) else { return .failure(.invalidHeaderName) }
                if b == UInt8(ascii: "_") { nameUnderscore = true }
                colon += 1
            }
            guard colon < lineEnd, colon > position else { return .failure(.invalidHeaderName) }
            var valueStart = colon + 1
            var valueEnd = lineEnd
            while valueStart < valueEnd, head[valueStart] == 0x20 || head[valueStart] == 0x09 { valueStart += 1 }
            while valueEnd > valueStart, head[valueEnd - 1] == 0x20 || head[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            for k in valueStart..<valueEnd where !HTTPSyntax.isFieldValueByte(head[k]) {
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: head[position..<min(colon, position + 64)]), as: UTF8.self)
                return .failure(.invalidHeaderValue(name: name))
            }
            let kind = HeaderName.classify(bytes: UnsafeRawBufferPointer(rebasing: head[position..<colon]))
            let field = RequestHead.Field(
                nameStart: Int32(position), nameEnd: Int32(colon), valueStart: Int32(valueStart), valueEnd: Int32(valueEnd), kind: kind,
                hasUnderscore: nameUnderscore)
            fields.append(field)
            underscore = underscore || nameUnderscore
            if !nameUnderscore {
                present |= kind.bit
                let value = UnsafeRawBufferPointer(rebasing: head[valueStart..<valueEnd])
                switch kind {
                case .contentLength:
                    contentLengths += 1
                    guard value.count > 0, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                        return .failure(.framing(.invalidContentLength))
                    }
                    length = value.reduce(0) { $0 * 10 + Int64($1 - 0x30) }
                case .transferEncoding:
                    transferEncodings += 1
                    if !HeaderName.foldedEquals(bytes: value, "chunked") { chunked = false }
                case .host:
                    hosts += 1
                case .connection:
                    let tokens = HTTPSyntax.ConnectionTokens(value)
                    close = close || tokens.close
                    keepAliveToken = keepAliveToken || tokens.keepAlive
                default:
                    break
                }
            }
            position = lineEnd + 2
        }
        if transferEncodings > 0 && !chunked { return .failure(.framing(.unsupportedTransferEncoding)) }
        if contentLengths > 0 && transferEncodings > 0 { return .failure(.framing(.contentLengthWithTransferEncoding)) }
        if contentLengths > 1 { return .failure(.framing(.multipleContentLength)) }
        if transferEncodings > 1 { return .failure(.framing(.unsupportedTransferEncoding)) }
        if transferEncodings > 0 && minor == 0 { return .failure(.framing(.transferEncodingInHTTP10)) }
        if hosts > 1 { return .failure(.framing(.multipleHost)) }
        if hosts == 0 && minor == 1 { return .failure(.framing(.missingHost)) }
        let framing: RequestBodyFraming = transferEncodings > 0 ? .chunked : (contentLengths > 0 ? .contentLength(length) : .none)
        let keepAlive = minor == 1 ? !close : (keepAliveToken && !close)
        return .success(Parts(
            method: method, uri: uri, minor: minor, fields: fields, framing: framing, keepAlive: keepAlive, present: present,
            underscore: underscore))
    }

    @inline(__always)
    private static func isMethodByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
    }
}
