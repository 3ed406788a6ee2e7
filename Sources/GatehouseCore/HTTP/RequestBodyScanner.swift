/// Finds where a request's body ends and what of it goes to the device, without decoding it: a
/// `Content-Length` body passes as it arrived; a chunked body passes with its chunk framing,
/// except that chunk extensions and the trailer section never reach the device (parsers disagree
/// on both, and a trailer could carry a header Gatehouse sets).
///
/// Guarantees: chunk-size lines and trailers are read as strictly as ``ChunkedFraming`` says; a
/// chunk not followed by CRLF, or a line over its limit, is a failure, after which nothing more
/// is read. Every body ends with ``Step/end(consumed:forward:)``. Nothing is buffered but a
/// chunk-size or trailer line still incomplete (``Step/needMore``: offer the same bytes again with
/// more behind them).
public struct RequestBodyScanner: Sendable {
    public enum Step: Sendable, Equatable {
        case needMore
        /// The first `consumed` bytes are body on the wire; the first `forward` of them go to the
        /// device, followed by CRLF when `thenCRLF` (a chunk-size line whose extension was cut);
        /// `payload` of them are body data (what `limits.max_body_bytes` counts).
        case body(consumed: Int, forward: Int, thenCRLF: Bool, payload: Int)
        /// The body ends after the first `consumed` bytes, the first `forward` of which go to the
        /// device.
        case end(consumed: Int, forward: Int)
        case failure
    }

    private enum State: Sendable {
        case contentLength(remaining: Int64)
        case chunkSize
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers(seen: Int)
        case ending
        case done
        case failed
    }

    public static let maxTrailerBytes = 8 * 1024
    private var state: State

    public init(_ framing: RequestBodyFraming) {
        switch framing {
        case .none, .contentLength(0): state = .ending
        case .contentLength(let n): state = .contentLength(remaining: n)
        case .chunked: state = .chunkSize
        }
    }

    /// The body ended (or failed): nothing more belongs to it.
    public var isDone: Bool {
        switch state {
        case .done, .failed: return true
        default: return false
        }
    }

    public mutating func step(_ bytes: UnsafeRawBufferPointer) -> Step {
        switch state {
        case .done, .failed:
            return .failure
        case .ending:
            state = .done
            return .end(consumed: 0, forward: 0)
        case .contentLength(let remaining):
            if bytes.isEmpty { return .needMore }
            let n = Int(min(Int64(bytes.count), remaining))
            state = Int64(n) == remaining ? .ending : .contentLength(remaining: remaining - Int64(n))
            return .body(consumed: n, forward: n, thenCRLF: false, payload: n)
        case .chunkData(let remaining):
            if bytes.isEmpty { return .needMore }
            let n = Int(min(Int64(bytes.count), remaining))
            state = Int64(n) == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - Int64(n))
            return .body(consumed: n, forward: n, thenCRLF: false, payload: n)
        case .chunkDataEnd:
            if bytes.count < 2 {
                if bytes.count == 1 && bytes[0] != UInt8(ascii: "\r") { return fail() }
                return .needMore
            }
            guard bytes[0] == UInt8(ascii: "\r"), bytes[1] == UInt8(ascii: "\n") else { return fail() }
            state = .chunkSize
            return .body(consumed: 2, forward: 2, thenCRLF: false, payload: 0)
        case .chunkSize:
            switch ChunkedFraming.sizeLine(bytes) {
            case .needMore: return .needMore
            case .malformed: return fail()
            case .line(let size, let digits, let consumed):
                state = size == 0 ? .trailers(seen: 0) : .chunkData(remaining: size)
                let plain = consumed == digits + 2
                return .body(consumed: consumed, forward: plain ? consumed : digits, thenCRLF: !plain, payload: 0)
            }
        case .trailers(let seen):
            switch ChunkedFraming.trailerLine(bytes, seen: seen, limit: Self.maxTrailerBytes) {
            case .needMore: return .needMore
            case .malformed: return fail()
            case .field(let consumed):
                state = .trailers(seen: seen + consumed)
                return .body(consumed: consumed, forward: 0, thenCRLF: false, payload: 0)
            case .end:
                state = .done
                return .end(consumed: 2, forward: 2)
            }
        }
    }

    private mutating func fail() -> Step {
        state = .failed
        return .failure
    }
}
