/// How a request's body is delimited.
public enum RequestBodyFraming: Sendable, Hashable {
    case none
    case contentLength(Int64)
    case chunked
}

/// One request head as it arrived, scanned once (``RequestHeadScanner``): the request line, and
/// each header field as byte ranges of ``bytes`` with its name classified (``HeaderName``), so
/// that every later step — admission, the gate, the header policy, the head written for the
/// device — reads an index instead of scanning strings again, and forwarding a field copies bytes.
///
/// Guarantees: a value of this type passed every check of ``RequestHeadScanner``: a request line
/// of an upper-case method, an origin-form target of visible ASCII without `#`, and
/// `HTTP/1.0` or `HTTP/1.1`; token names right before their colon; values without control bytes
/// (no obs-fold, bare CR or LF, NUL); at most one well-formed `Content-Length` xor a single
/// `Transfer-Encoding: chunked` (never in HTTP/1.0); exactly one `Host` in HTTP/1.1, at most one
/// in HTTP/1.0. Only the exact spelling of a name counts for what Gatehouse reads (`X_Api_Key` is
/// not `X-Api-Key`); ``Field/hasUnderscore`` says which fields the header policy must drop.
public struct RequestHead: Sendable {
    /// One header field: offsets into ``RequestHead/bytes``.
    public struct Field: Sendable, Hashable {
        public let nameStart: Int32
        public let nameEnd: Int32
        public let valueStart: Int32
        public let valueEnd: Int32
        /// The name's class, with ASCII case folded and `_` read as `-` (what a WSGI device reads).
        public let kind: HeaderName
        /// The name holds `_`: it is not the header its folded name says, and is not forwarded
        /// unless `forward_underscore_headers` names it.
        public let hasUnderscore: Bool

        public var nameRange: Range<Int> { Int(nameStart)..<Int(nameEnd) }
        public var valueRange: Range<Int> { Int(valueStart)..<Int(valueEnd) }

        /// The header Gatehouse reads as `kind`: that kind, spelled with `-` as the name says.
        @inline(__always)
        public func reads(_ kind: HeaderName) -> Bool { self.kind == kind && !hasUnderscore }
    }

    /// The head as received: the request line through the blank line.
    public let bytes: [UInt8]
    public let method: String
    /// The request target exactly as sent.
    public let uri: String
    /// 0 or 1 (`HTTP/1.0`, `HTTP/1.1`).
    public let versionMinor: Int
    public let fields: [Field]
    public let framing: RequestBodyFraming
    /// The client will keep the connection open after this exchange (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    public let keepAlive: Bool
    /// Bits (``HeaderName/bit``) of the names read here, in their exact spelling.
    let present: UInt64
    /// Some field's name holds `_`.
    public let hasUnderscoreName: Bool

    init(
        bytes: [UInt8], method: String, uri: String, versionMinor: Int, fields: [Field], framing: RequestBodyFraming, keepAlive: Bool,
        present: UInt64, hasUnderscoreName: Bool
    ) {
        self.bytes = bytes
        self.method = method
        self.uri = uri
        self.versionMinor = versionMinor
        self.fields = fields
        self.framing = framing
        self.keepAlive = keepAlive
        self.present = present
        self.hasUnderscoreName = hasUnderscoreName
    }

    /// A head built from parts (`gatehouse explain`, tests): written out as it would arrive and
    /// scanned like any other, so it passes exactly the checks a received one does. A name or
    /// value holding CR, LF or NUL is refused as such (it would otherwise split the line).
    public init(method: String, uri: String, versionMinor: Int = 1, headers: [(name: String, value: String)]) throws(RequestHeadError) {
        func clean(_ text: String) -> Bool { !text.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 } }
        guard clean(method), clean(uri), !method.utf8.contains(0x20), !uri.utf8.contains(0x20) else { throw .malformedRequestLine }
        var wire = Array("\(method) \(uri) HTTP/1.\(versionMinor)\r\n".utf8)
        for (name, value) in headers {
            guard clean(name), !name.isEmpty, name.utf8.allSatisfy(HTTPSyntax.isTokenByte) else { throw .invalidHeaderName }
            guard clean(value) else { throw .invalidHeaderValue(name: String(name.prefix(64))) }
            wire += name.utf8
            wire += ": ".utf8
            wire += value.utf8
            wire += "\r\n".utf8
        }
        wire += "\r\n".utf8
        var scanner = RequestHeadScanner(limits: .unlimited)
        let step = wire.withUnsafeBytes { scanner.scan($0) }
        switch step {
        case .head(let head, _): self = head
        case .failure(let error): throw error
        case .needMore: throw .malformedRequestLine
        }
    }

    // MARK: Reading

    /// Whether a field Gatehouse reads as `kind` is present.
    @inline(__always)
    public func has(_ kind: HeaderName) -> Bool { present & kind.bit != 0 }

    /// The value of the first field read as `kind`.
    public func value(_ kind: HeaderName) -> String? {
        guard has(kind) else { return nil }
        for field in fields where field.reads(kind) { return value(of: field) }
        return nil
    }

    /// Every value of fields read as `kind`, in order.
    public func values(_ kind: HeaderName) -> [String] {
        guard has(kind) else { return [] }
        return fields.filter { $0.reads(kind) }.map(value(of:))
    }

    /// How many fields are read as `kind`.
    public func count(_ kind: HeaderName) -> Int {
        guard has(kind) else { return 0 }
        return fields.reduce(0) { $0 + ($1.reads(kind) ? 1 : 0) }
    }

    public func name(of field: Field) -> String { String(decoding: bytes[field.nameRange], as: UTF8.self) }
    public func value(of field: Field) -> String { String(decoding: bytes[field.valueRange], as: UTF8.self) }

    /// Whether `field`'s name, folded (case, `_` as `-`), is `canonical` (lower case, `-`).
    public func nameFolded(_ field: Field, equals canonical: [UInt8]) -> Bool {
        guard field.nameEnd - field.nameStart == canonical.count else { return false }
        var i = Int(field.nameStart)
        for b in canonical {
            if HeaderName.fold(bytes[i]) != b { return false }
            i += 1
        }
        return true
    }

    /// Every field as strings, in order (own endpoints, `gatehouse explain`).
    public var headerStrings: [(name: String, value: String)] {
        fields.map { (name: name(of: $0), value: value(of: $0)) }
    }

    /// The request announces a body.
    public var hasBody: Bool {
        switch framing {
        case .none: return false
        case .contentLength(let n): return n > 0
        case .chunked: return true
        }
    }

    /// The request asks to switch protocols (`Upgrade`, in any form).
    public var asksUpgrade: Bool { has(.upgrade) }
}

/// Why a request head was refused before anything was decided. Each is answered (400, or 431
/// for a head over its limits) and the connection closed.
public enum RequestHeadError: Error, Sendable, Hashable {
    case malformedRequestLine
    /// Another version than HTTP/1.0 or HTTP/1.1.
    case unsupportedVersion
    /// The request line is longer than ``RequestHeadScanner/Limits/maxRequestLineBytes``.
    case requestLineTooLong
    case headTooLarge
    case tooManyHeaders
    case invalidHeaderName
    case invalidHeaderValue(name: String)
    /// A header line continued on the next (obs-fold).
    case foldedHeader
    /// A line ended by LF alone, or a CR not followed by LF.
    case bareLineBreak
    case framing(FramingViolation)

    /// 431 for a head over its limits, 414 for an overlong request line, else 400.
    public var status: Int {
        switch self {
        case .headTooLarge, .tooManyHeaders: return 431
        case .requestLineTooLong: return 414
        default: return 400
        }
    }

    public var detail: String {
        switch self {
        case .malformedRequestLine: return "The request line is not METHOD /target HTTP/1.x."
        case .unsupportedVersion: return "Only HTTP/1.0 and HTTP/1.1 are spoken here."
        case .requestLineTooLong: return "The request target is longer than allowed."
        case .headTooLarge, .tooManyHeaders: return "The request head is larger than allowed."
        case .invalidHeaderName: return FramingViolation.invalidHeaderName.detail
        case .invalidHeaderValue(let name): return FramingViolation.invalidHeaderValue(name: name).detail
        case .foldedHeader: return "A header line is continued on the next line (obs-fold), which is not accepted."
        case .bareLineBreak: return "A line of the request head does not end in CRLF."
        case .framing(let violation): return violation.detail
        }
    }
}
