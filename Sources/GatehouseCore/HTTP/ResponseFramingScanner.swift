/// How a device's response body is delimited.
public enum ResponseBodyFraming: Sendable, Hashable {
    /// No body: a response to HEAD, a 1xx, 204 or 304, or a 101 (the connection switches).
    case none
    case contentLength(Int64)
    case chunked
    /// Neither length nor chunking: the body ends when the device closes the connection.
    case untilClose
}

/// A device's response head, parsed as far as forwarding needs it: where each part lies in the
/// head's bytes (which the caller keeps), so that forwarding it copies bytes and makes no strings.
public struct ScannedResponseHead: Sendable {
    /// One header line while it is scanned: offsets from the head's first byte.
    struct Field {
        let lineStart: Int
        let nameEnd: Int
        let valueStart: Int
        let valueEnd: Int
        /// The line's end (before its CRLF).
        let lineEnd: Int
        let name: HeaderName
    }

    /// The byte ranges of up to four hop-by-hop header lines (each with its CRLF), kept inline so
    /// that scanning a head allocates nothing.
    public struct HopByHopLines: Sendable {
        private var starts: (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        private var ends: (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        public private(set) var count = 0
        public static let capacity = 4

        /// False when full (the caller then takes the slower path that reads every field).
        mutating func append(_ line: Range<Int>) -> Bool {
            guard count < Self.capacity else { return false }
            withUnsafeMutableBytes(of: &starts) { $0.storeBytes(of: Int32(line.lowerBound), toByteOffset: count * 4, as: Int32.self) }
            withUnsafeMutableBytes(of: &ends) { $0.storeBytes(of: Int32(line.upperBound), toByteOffset: count * 4, as: Int32.self) }
            count += 1
            return true
        }

        public subscript(index: Int) -> Range<Int> {
            precondition(index >= 0 && index < count)
            let start = withUnsafeBytes(of: starts) { $0.load(fromByteOffset: index * 4, as: Int32.self) }
            let end = withUnsafeBytes(of: ends) { $0.load(fromByteOffset: index * 4, as: Int32.self) }
            return Int(start)..<Int(end)
        }
    }

    /// 0 or 1 (`HTTP/1.0`, `HTTP/1.1`).
    public let versionMinor: Int
    public let status: Int
    /// Where the reason phrase lies (may be empty); its end is the status line's CR.
    public let reason: Range<Int>
    /// The hop-by-hop lines to leave out when the head is passed on, in order.
    public let hopByHop: HopByHopLines
    public let framing: ResponseBodyFraming
    /// The device will keep the connection open after this response.
    public let keepAlive: Bool
    /// A `Connection` header names a header besides `close` and `keep-alive` (to be dropped too),
    /// or there were more hop-by-hop lines than ``hopByHop`` holds: the head must be passed on
    /// field by field (``headers(in:)``).
    public let needsFieldByField: Bool

    /// An interim answer (`100 Continue`, `103 Early Hints`): the final response follows.
    public var isInterim: Bool { status >= 100 && status < 200 && status != 101 }

    /// The headers as strings, from the head's bytes (the head was validated when scanned; for
    /// the rare uses that need them: a 101's handshake, interim answers, CORS).
    public func headers(in bytes: UnsafeRawBufferPointer) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        var position = reason.upperBound + 2
        while position < bytes.count - 2 {
            var lineEnd = position
            while bytes[lineEnd] != 0x0D { lineEnd += 1 }
            var colon = position
            while bytes[colon] != UInt8(ascii: ":") { colon += 1 }
            var valueStart = colon + 1
            var valueEnd = lineEnd
            while valueStart < valueEnd, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
            while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            out.append((
                name: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<colon]), as: UTF8.self),
                value: String(decoding: UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd]), as: UTF8.self)))
            position = lineEnd + 2
        }
        return out
    }

    /// The reason phrase as text.
    public func reasonText(in bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[reason]), as: UTF8.self)
    }
}

/// Why a device's response could not be framed. Each is a way a proxy and a device could
/// disagree on where a response ends: the exchange fails and the device connection is closed.
public enum ResponseScanError: Error, Sendable, Hashable {
    case malformedStatusLine
    case unsupportedVersion
    case malformedHeader
    /// A header line continued on the next (obs-fold).
    case foldedHeader
    case headTooLarge
    case tooManyHeaders
    case contentLengthWithTransferEncoding
    case multipleContentLength
    case invalidContentLength
    case unsupportedTransferEncoding
    case malformedChunk
    /// The connection ended before the response did.
    case truncated
    /// Bytes arrived that no request asked for (after a complete response, or before any).
    case unexpectedBytes
}

/// Finds where each of a device's responses begins and ends, without decoding its body: the head
/// is parsed (status, headers, framing), the body is reported as byte counts to pass through as
/// they arrived — chunked framing included — with the payload inside them named for a client
/// that cannot take chunks.
///
/// Guarantees (strict, so that Gatehouse and the client can never disagree with the device on a
/// boundary):
/// - `Content-Length` with `Transfer-Encoding`, more than one `Content-Length`, a length that is
///   not plain decimal, a `Transfer-Encoding` other than exactly `chunked`, a malformed status or
///   header line, obs-fold, a bare LF, control bytes in a value, a bad chunk-size line or a chunk
///   not followed by CRLF, a head or trailer section over its limit: each is a failure.
/// - HEAD responses, 1xx, 204 and 304 have no body; a 101 ends the scan (the connection becomes a
///   tunnel); a response with neither length nor chunking ends when the connection does.
/// - Bytes the device sends after a complete response, before the next request, are a failure.
/// - Every response ends with ``Step/end(consumed:)`` (after its head when it has no body, after
///   its last byte otherwise; offer the remaining bytes, even none, to get it).
/// - Nothing is buffered but a head or a chunk-size line still incomplete: ``step(_:)`` answers
///   ``Step/needMore`` and the caller offers the same bytes again with more behind them.
/// A differential fuzz target (`FuzzResponseScanner`) holds it to SwiftNIO's `HTTPResponseDecoder`.
public struct ResponseFramingScanner: Sendable {
    public enum Step: Sendable {
        /// Nothing can be said until more bytes arrive (offer these again, with the next ones).
        case needMore
        /// The first `consumed` bytes are the response head.
        case head(ScannedResponseHead, consumed: Int)
        /// The first `consumed` bytes are body as framed on the wire; bytes
        /// `payloadOffset ..< payloadOffset + payloadCount` of them are the body's data.
        case body(consumed: Int, payloadOffset: Int, payloadCount: Int)
        /// The first `consumed` bytes (possibly none) end the response.
        case end(consumed: Int)
        case failure(ResponseScanError)
    }

    public struct Limits: Sendable {
        public var maxHeadBytes = 64 * 1024
        public var maxHeaders = 128
        public var maxTrailerBytes = 8 * 1024
        public init() {}
    }

    private enum State: Sendable {
        /// No response is expected (none was asked for, or the last one is complete).
        case idle
        case awaitingHead(requestWasHEAD: Bool)
        case contentLength(remaining: Int64)
        case chunkSize
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers(seen: Int)
        case untilClose
        /// The response's last byte was reported: the next step says so (``Step/end(consumed:)``).
        case ending
        /// A 101 ended the scan.
        case switched
        case failed
    }

    private var state = State.idle
    public let limits: Limits

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// A request was sent: its response is expected next.
    public mutating func expectResponse(requestWasHEAD: Bool) {
        state = .awaitingHead(requestWasHEAD: requestWasHEAD)
    }

    /// Whether a response is under way or expected.
    public var isBusy: Bool {
        switch state {
        case .idle, .switched, .failed: return false
        default: return true
        }
    }

    /// The next thing `bytes` (which begin where the last step's `consumed` ended) say.
    public mutating func step(_ bytes: UnsafeRawBufferPointer) -> Step {
        switch state {
        case .failed:
            return .failure(.unexpectedBytes)
        case .idle, .switched:
            if bytes.isEmpty { return .needMore }
            state = .failed
            return .failure(.unexpectedBytes)
        case .ending:
            state = .idle
            return .end(consumed: 0)
        case .awaitingHead(let requestWasHEAD):
            return scanHead(bytes, requestWasHEAD: requestWasHEAD)
        case .contentLength(let remaining):
            if bytes.isEmpty { return .needMore }
            let n = Int(min(Int64(bytes.count), remaining))
            let left = remaining - Int64(n)
            state = left == 0 ? .ending : .contentLength(remaining: left)
            return .body(consumed: n, payloadOffset: 0, payloadCount: n)
        case .untilClose:
            if bytes.isEmpty { return .needMore }
            return .body(consumed: bytes.count, payloadOffset: 0, payloadCount: bytes.count)
        case .chunkSize:
            return scanChunkSize(bytes)
        case .chunkData(let remaining):
            if bytes.isEmpty { return .needMore }
            let n = Int(min(Int64(bytes.count), remaining))
            state = Int64(n) == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - Int64(n))
            return .body(consumed: n, payloadOffset: 0, payloadCount: n)
        case .chunkDataEnd:
            if bytes.count < 2 {
                if bytes.count == 1 && bytes[0] != UInt8(ascii: "\r") { return fail(.malformedChunk) }
                return .needMore
            }
            guard bytes[0] == UInt8(ascii: "\r"), bytes[1] == UInt8(ascii: "\n") else { return fail(.malformedChunk) }
            state = .chunkSize
            return .body(consumed: 2, payloadOffset: 0, payloadCount: 0)
        case .trailers(let seen):
            return scanTrailers(bytes, seen: seen)
        }
    }

    /// The device closed the connection: the end of a body framed by the close, nothing when idle,
    /// or a failure when a response was cut short.
    public mutating func connectionClosed() -> Step {
        switch state {
        case .untilClose:
            state = .idle
            return .end(consumed: 0)
        case .ending:
            state = .idle
            return .end(consumed: 0)
        case .idle, .switched:
            return .needMore
        case .failed:
            return .failure(.truncated)
        default:
            state = .failed
            return .failure(.truncated)
        }
    }

    private mutating func fail(_ error: ResponseScanError) -> Step {
        state = .failed
        return .failure(error)
    }

    // MARK: Head

    private mutating func scanHead(_ bytes: UnsafeRawBufferPointer, requestWasHEAD: Bool) -> Step {
        // Find the blank line; any LF must follow a CR.
        var end: Int?
        var i = 0
        let limit = min(bytes.count, limits.maxHeadBytes)
        while i < limit {
            if bytes[i] == UInt8(ascii: "\n") {
                guard i > 0, bytes[i - 1] == UInt8(ascii: "\r") else { return fail(.malformedHeader) }
                if i >= 3, bytes[i - 2] == UInt8(ascii: "\n"), bytes[i - 3] == UInt8(ascii: "\r") {
                    end = i + 1
                    break
                }
            }
            i += 1
        }
        guard let end else {
            return bytes.count >= limits.maxHeadBytes ? fail(.headTooLarge) : .needMore
        }
        switch parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<end]), requestWasHEAD: requestWasHEAD) {
        case .failure(let error):
            return fail(error)
        case .success(let head):
            if head.isInterim {
                state = .awaitingHead(requestWasHEAD: requestWasHEAD)
            } else if head.status == 101 {
                state = .switched
            } else {
                switch head.framing {
                case .none: state = .ending
                case .contentLength(let n): state = n == 0 ? .ending : .contentLength(remaining: n)
                case .chunked: state = .chunkSize
                case .untilClose: state = .untilClose
                }
            }
            return .head(head, consumed: end)
        }
    }

    private func parseHead(_ head: UnsafeRawBufferPointer, requestWasHEAD: Bool) -> Result<ScannedResponseHead, ResponseScanError> {
        // Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF. (`scanHead` found the blank line and
        // checked that every LF follows a CR.)
        guard let statusEnd = Self.lineEnd(head, from: 0) else { return .failure(.malformedStatusLine) }
        guard statusEnd >= 12 else { return .failure(.malformedStatusLine) }
        let prefix: StaticString = "HTTP/1."
        let prefixMatches = prefix.withUTF8Buffer { wanted in (0..<7).allSatisfy { head[$0] == wanted[$0] } }
        guard prefixMatches else { return .failure(head[0] == UInt8(ascii: "H") ? .unsupportedVersion : .malformedStatusLine) }
        let minorByte = head[7]
        guard minorByte == UInt8(ascii: "0") || minorByte == UInt8(ascii: "1") else { return .failure(.unsupportedVersion) }
        let minor = Int(minorByte - UInt8(ascii: "0"))
        guard head[8] == UInt8(ascii: " ") else { return .failure(.malformedStatusLine) }
        var code = 0
        for k in 9..<12 {
            let d = head[k]
            guard d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") else { return .failure(.malformedStatusLine) }
            code = code * 10 + Int(d - UInt8(ascii: "0"))
        }
        guard code >= 100, code <= 599 else { return .failure(.malformedStatusLine) }
        // HTTP/1.0 has no 1xx: an interim answer that claims it is a device neither side can read
        // the same way (NIO's decoder ends the connection after it, a 1.1 reader waits for more).
        guard minor == 1 || code >= 200 else { return .failure(.unsupportedVersion) }
        var reason = 12..<12
        if statusEnd > 12 {
            guard head[12] == UInt8(ascii: " ") else { return .failure(.malformedStatusLine) }
            for k in 13..<statusEnd where !(head[k] == 0x09 || (head[k] >= 0x20 && head[k] != 0x7F)) { return .failure(.malformedStatusLine) }
            reason = 13..<statusEnd
        }
        // Header lines, up to the empty one.
        var fieldCount = 0
        var hopByHop = ScannedResponseHead.HopByHopLines()
        var manyHopByHop = false
        var contentLengths = 0
        var length: Int64 = 0
        var transferEncodings = 0
        var chunked = false
        var close = false
        var keepAliveToken = false
        var namesHeaders = false
        var position = statusEnd + 2
        while true {
            guard let end = Self.lineEnd(head, from: position) else { return .failure(.malformedHeader) }
            if end == position { break }
            guard fieldCount < limits.maxHeaders else { return .failure(.tooManyHeaders) }
            switch Self.parseField(head, from: position, to: end) {
            case .failure(let error): return .failure(error)
            case .success(let field):
                fieldCount += 1
                if field.name.isHopByHop, !hopByHop.append(field.lineStart..<(field.lineEnd + 2)) { manyHopByHop = true }
                let value = UnsafeRawBufferPointer(rebasing: head[field.valueStart..<field.valueEnd])
                switch field.name {
                case .contentLength:
                    contentLengths += 1
                    guard value.count > 0, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                        return .failure(.invalidContentLength)
                    }
                    length = value.reduce(0) { $0 * 10 + Int64($1 - 0x30) }
                case .transferEncoding:
                    transferEncodings += 1
                    chunked = HeaderName.foldedEquals(bytes: value, "chunked")
                case .connection:
                    let tokens = HTTPSyntax.ConnectionTokens(value)
                    close = close || tokens.close
                    keepAliveToken = keepAliveToken || tokens.keepAlive
                    namesHeaders = namesHeaders || tokens.namesHeaders
                default:
                    break
                }
            }
            position = end + 2
        }
        // Framing.
        let noBody = requestWasHEAD || (code >= 100 && code < 200) || code == 204 || code == 304
        if contentLengths > 1 { return .failure(.multipleContentLength) }
        if transferEncodings > 0 {
            if contentLengths > 0 { return .failure(.contentLengthWithTransferEncoding) }
            guard transferEncodings == 1, chunked else { return .failure(.unsupportedTransferEncoding) }
        }
        let framing: ResponseBodyFraming
        if noBody {
            framing = .none
        } else if transferEncodings > 0 {
            framing = .chunked
        } else if contentLengths > 0 {
            framing = .contentLength(length)
        } else {
            framing = .untilClose
        }
        let keepAlive: Bool
        if framing == .untilClose || code == 101 {
            keepAlive = false
        } else if minor == 0 {
            keepAlive = keepAliveToken && !close
        } else {
            keepAlive = !close
        }
        return .success(ScannedResponseHead(
            versionMinor: minor, status: code, reason: reason, hopByHop: hopByHop, framing: framing, keepAlive: keepAlive,
            needsFieldByField: namesHeaders || manyHopByHop))
    }

    /// The index of the CR of the line starting at `from`; nil when there is none or it is not
    /// followed by LF.
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        var i = from
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\r") {
                guard i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "\n") else { return nil }
                return i
            }
            if bytes[i] == UInt8(ascii: "\n") { return nil }
            i += 1
        }
        return nil
    }

    /// `name: value` on bytes `from ..< to`: a token name right before the colon, a value of
    /// visible bytes, spaces, tabs and obs-text, trimmed of spaces and tabs. A line starting with
    /// a space or tab (obs-fold) is refused.
    private static func parseField(_ bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Result<ScannedResponseHead.Field, ResponseScanError> {
        let first = bytes[from]
        if first == 0x20 || first == 0x09 { return .failure(.foldedHeader) }
        var colon = from
        while colon < to, bytes[colon] != UInt8(ascii: ":") {
            guard HTTPSyntax.isTokenByte(bytes[colon]) else { return .failure(.malformedHeader) }
            colon += 1
        }
        guard colon < to, colon > from else { return .failure(.malformedHeader) }
        var valueStart = colon + 1
        var valueEnd = to
        while valueStart < valueEnd, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        for k in valueStart..<valueEnd where !HTTPSyntax.isFieldValueByte(bytes[k]) { return .failure(.malformedHeader) }
        return .success(ScannedResponseHead.Field(
            lineStart: from, nameEnd: colon, valueStart: valueStart, valueEnd: valueEnd, lineEnd: to,
            name: HeaderName.classify(bytes: UnsafeRawBufferPointer(rebasing: bytes[from..<colon]))))
    }

    // MARK: Chunks

    /// A chunk-size line (``ChunkedFraming/sizeLine(_:)``), passed through with its extension;
    /// the last chunk (size 0) is followed by trailers.
    private mutating func scanChunkSize(_ bytes: UnsafeRawBufferPointer) -> Step {
        switch ChunkedFraming.sizeLine(bytes) {
        case .needMore: return .needMore
        case .malformed: return fail(.malformedChunk)
        case .line(let size, _, let consumed):
            state = size == 0 ? .trailers(seen: 0) : .chunkData(remaining: size)
            return .body(consumed: consumed, payloadOffset: 0, payloadCount: 0)
        }
    }

    /// Trailer fields after the last chunk, each passed through as it completes, then CRLF: the
    /// response ends.
    private mutating func scanTrailers(_ bytes: UnsafeRawBufferPointer, seen: Int) -> Step {
        switch ChunkedFraming.trailerLine(bytes, seen: seen, limit: limits.maxTrailerBytes) {
        case .needMore: return .needMore
        case .malformed: return fail(.malformedChunk)
        case .end:
            state = .idle
            return .end(consumed: 2)
        case .field(let consumed):
            state = .trailers(seen: seen + consumed)
            return .body(consumed: consumed, payloadOffset: 0, payloadCount: 0)
        }
    }
}
