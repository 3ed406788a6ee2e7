/// The header names Gatehouse acts on, recognized without allocating: names are compared byte by
/// byte with ASCII case folded and `_` read as `-` (the way a WSGI or PHP device merges them).
///
/// Guarantees: ``classify(_:)`` gives the same answer as comparing
/// ``UpstreamHeaderPolicy/canonicalName(_:)`` with the canonical spelling, for every name;
/// ``foldedEquals(_:_:)`` likewise for any canonical (lower case, `-`) spelling.
public enum HeaderName: UInt8, Sendable, Hashable {
    case host, contentLength, transferEncoding, connection, keepAlive, proxyConnection, te, trailer, upgrade, http2Settings
    case xForwardedFor, xForwardedProto, xForwardedHost, forwarded, xRealIP
    case cookie, xCSRFToken, xAPIKey, authorization, origin, secFetchSite, contentType, accept
    case secWebSocketKey, secWebSocketAccept, setCookie
    case accessControlRequestMethod, accessControlRequestHeaders
    case other

    /// This name's bit in a set of names (``RequestHead``'s index).
    @inline(__always)
    public var bit: UInt64 { 1 << UInt64(rawValue) }

    /// One byte of a name as compared: ASCII lower case, `_` as `-`.
    @inline(__always)
    public static func fold(_ b: UInt8) -> UInt8 {
        if b == UInt8(ascii: "_") { return UInt8(ascii: "-") }
        return (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b
    }

    /// Whether `name`, folded, is `canonical` (which must be lower case with `-`).
    @inline(__always)
    public static func foldedEquals(_ name: String, _ canonical: StaticString) -> Bool { foldedEquals(bytes: name.utf8, canonical) }

    /// Whether the bytes of a name, folded, are `canonical` (lower case with `-`).
    @inline(__always)
    public static func foldedEquals<C: Collection<UInt8>>(bytes name: C, _ canonical: StaticString) -> Bool {
        guard name.count == canonical.utf8CodeUnitCount else { return false }
        return canonical.withUTF8Buffer { wanted in
            var i = 0
            for b in name {
                if fold(b) != wanted[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// Whether `name`, folded, equals the folded bytes `canonical`.
    @inline(__always)
    public static func foldedEquals(_ name: String, bytes canonical: [UInt8]) -> Bool { foldedEquals(bytes: name.utf8, folded: canonical) }

    /// Whether the bytes of a name, folded, equal the folded bytes `canonical`.
    @inline(__always)
    public static func foldedEquals<C: Collection<UInt8>>(bytes name: C, folded canonical: [UInt8]) -> Bool {
        guard name.count == canonical.count else { return false }
        var i = 0
        for b in name {
            if fold(b) != canonical[i] { return false }
            i += 1
        }
        return true
    }

    /// Whether `name`, folded, starts with `prefix` (lower case, `-`).
    @inline(__always)
    public static func foldedHasPrefix(_ name: String, _ prefix: StaticString) -> Bool { foldedHasPrefix(bytes: name.utf8, prefix) }

    /// Whether the bytes of a name, folded, start with `prefix` (lower case, `-`).
    @inline(__always)
    public static func foldedHasPrefix<C: Collection<UInt8>>(bytes name: C, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard name.count >= count else { return false }
        return prefix.withUTF8Buffer { wanted in
            var i = 0
            for b in name {
                if i == count { return true }
                if fold(b) != wanted[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// The folded bytes of a name (for names from the config, computed once).
    public static func foldedBytes(_ name: String) -> [UInt8] { name.utf8.map(fold) }

    /// ``classify(_:)`` for a name given as bytes.
    public static func classify(bytes: UnsafeRawBufferPointer) -> HeaderName { classify(utf8: bytes) }

    /// Which of the names Gatehouse acts on `name` is, if any.
    public static func classify(_ name: String) -> HeaderName { classify(utf8: name.utf8) }

    @inline(__always)
    private static func equals<C: Collection>(_ name: C, _ canonical: StaticString) -> Bool where C.Element == UInt8 {
        guard name.count == canonical.utf8CodeUnitCount else { return false }
        return canonical.withUTF8Buffer { wanted in
            var i = 0
            for b in name {
                if fold(b) != wanted[i] { return false }
                i += 1
            }
            return true
        }
    }

    static func classify<C: Collection>(utf8 name: C) -> HeaderName where C.Element == UInt8 {
        let n = name.count
        guard let first = name.first.map(fold) else { return .other }
        switch (n, first) {
        case (2, UInt8(ascii: "t")): return equals(name, "te") ? .te : .other
        case (4, UInt8(ascii: "h")): return equals(name, "host") ? .host : .other
        case (6, UInt8(ascii: "c")): return equals(name, "cookie") ? .cookie : .other
        case (6, UInt8(ascii: "o")): return equals(name, "origin") ? .origin : .other
        case (6, UInt8(ascii: "a")): return equals(name, "accept") ? .accept : .other
        case (7, UInt8(ascii: "t")): return equals(name, "trailer") ? .trailer : .other
        case (7, UInt8(ascii: "u")): return equals(name, "upgrade") ? .upgrade : .other
        case (9, UInt8(ascii: "x")): return equals(name, "x-api-key") ? .xAPIKey : (equals(name, "x-real-ip") ? .xRealIP : .other)
        case (9, UInt8(ascii: "f")): return equals(name, "forwarded") ? .forwarded : .other
        case (10, UInt8(ascii: "c")): return equals(name, "connection") ? .connection : .other
        case (10, UInt8(ascii: "k")): return equals(name, "keep-alive") ? .keepAlive : .other
        case (10, UInt8(ascii: "s")): return equals(name, "set-cookie") ? .setCookie : .other
        case (12, UInt8(ascii: "c")): return equals(name, "content-type") ? .contentType : .other
        case (12, UInt8(ascii: "x")): return equals(name, "x-csrf-token") ? .xCSRFToken : .other
        case (13, UInt8(ascii: "a")): return equals(name, "authorization") ? .authorization : .other
        case (14, UInt8(ascii: "c")): return equals(name, "content-length") ? .contentLength : .other
        case (14, UInt8(ascii: "h")): return equals(name, "http2-settings") ? .http2Settings : .other
        case (14, UInt8(ascii: "s")): return equals(name, "sec-fetch-site") ? .secFetchSite : .other
        case (15, UInt8(ascii: "x")): return equals(name, "x-forwarded-for") ? .xForwardedFor : .other
        case (16, UInt8(ascii: "x")): return equals(name, "x-forwarded-host") ? .xForwardedHost : .other
        case (16, UInt8(ascii: "p")): return equals(name, "proxy-connection") ? .proxyConnection : .other
        case (17, UInt8(ascii: "t")): return equals(name, "transfer-encoding") ? .transferEncoding : .other
        case (17, UInt8(ascii: "x")): return equals(name, "x-forwarded-proto") ? .xForwardedProto : .other
        case (17, UInt8(ascii: "s")): return equals(name, "sec-websocket-key") ? .secWebSocketKey : .other
        case (20, UInt8(ascii: "s")): return equals(name, "sec-websocket-accept") ? .secWebSocketAccept : .other
        case (29, UInt8(ascii: "a")): return equals(name, "access-control-request-method") ? .accessControlRequestMethod : .other
        case (30, UInt8(ascii: "a")): return equals(name, "access-control-request-headers") ? .accessControlRequestHeaders : .other
        default: return .other
        }
    }

    /// Hop-by-hop on a request or response: never forwarded as received.
    public var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .proxyConnection, .te, .trailer, .transferEncoding, .upgrade, .http2Settings: return true
        default: return false
        }
    }
}
