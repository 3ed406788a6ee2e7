/// Why a request path is refused (400) instead of being normalized.
public enum PathRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not an absolute path (`/…`).
    case notAbsolute
    /// A `%` not followed by two hex digits.
    case malformedEscape
    /// `%2F`: a slash the device might or might not treat as a separator.
    case encodedSlash
    /// A backslash or `%5C`: a separator on some servers.
    case backslash
    /// A control byte (NUL, CR, LF, TAB, DEL, …), raw or percent-encoded.
    case controlCharacter
    /// `%25` followed by an escape of `.`, `/`, `;`, `\` or a control byte: a second decoding by
    /// the device would turn it into one.
    case doubleEncoding
    /// Percent-encoded bytes that are not UTF-8 (overlong forms such as `%C0%AE` included).
    case invalidUTF8
    /// More `..` segments than there are segments above them.
    case aboveRoot
    /// A segment that is `.`, `..` or empty once its `;` parameters are cut (`..;`, `.;x=1`,
    /// `%2e%2e;`, `..%3B`, `;x`): servlet containers and many embedded servers strip the
    /// parameter and then walk up (or merge the empty segment), past the rules.
    case dotSegmentWithParameters

    public var description: String {
        switch self {
        case .notAbsolute: return "the path must start with /"
        case .malformedEscape: return "a % is not followed by two hex digits"
        case .encodedSlash: return "the path holds an encoded slash (%2F)"
        case .backslash: return "the path holds a backslash"
        case .controlCharacter: return "the path holds a control character"
        case .doubleEncoding: return "the path holds a double-encoded character"
        case .invalidUTF8: return "the path's escapes are not UTF-8"
        case .aboveRoot: return "the path climbs above the root"
        case .dotSegmentWithParameters: return "the path holds a dot segment with ; parameters"
        }
    }
}

/// Brings a request path to the one form that access rules are checked on and that is forwarded
/// to the device, so that what was checked is exactly what the device receives.
///
/// Guarantees of ``normalize(_:)``:
/// - Percent-escapes of unreserved characters (letters, digits, `-`, `.`, `_`, `~`) are decoded;
///   every other escape is kept, its hex digits in upper case.
/// - Dot segments are removed after that decoding (so `%2e%2e` is `..`), repeated slashes are
///   merged, a trailing slash is kept.
/// - Refused, never repaired: an encoded slash, a backslash raw or encoded, control bytes raw or
///   encoded, double-encoded dots, slashes, backslashes and control bytes, escapes that do not
///   decode to UTF-8 (overlong forms included), malformed escapes, paths that climb above
///   the root, and segments that are `.`, `..` or empty once their `;` parameters (`;` or `%3B`)
///   are cut.
/// - The result is itself normalized: normalizing it again changes nothing.
public enum PathNormalizer {
    /// Whether `path` is already in the one form (normalizing it changes nothing, and it is not refused).
    public static func isNormal(_ path: String) -> Bool {
        guard case .success(let normal) = normalize(path) else { return false }
        return normal == path
    }

    public static func normalize(_ path: String) -> Result<String, PathRefusal> {
        if isPlainlyNormal(path) { return .success(path) }
        let bytes = Array(path.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return .failure(.notAbsolute) }
        var kept: [UInt8] = []
        kept.reserveCapacity(bytes.count)
        var decoded: [UInt8] = []  // every escape decoded, to check that the device would see UTF-8
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let value = hexPair(bytes[i + 1], bytes[i + 2]) else { return .failure(.malformedEscape) }
                if value == UInt8(ascii: "/") { return .failure(.encodedSlash) }
                if let refusal = refusal(forDecoded: value) { return .failure(refusal) }
                decoded.append(value)
                if isUnreserved(value) {
                    kept.append(value)
                } else {
                    kept.append(UInt8(ascii: "%"))
                    kept.append(upperHex(value >> 4))
                    kept.append(upperHex(value & 0xF))
                }
                i += 3
                continue
            }
            if let refusal = refusal(forDecoded: b) { return .failure(refusal) }
            kept.append(b)
            decoded.append(b)
            i += 1
        }
        guard String(validating: decoded, as: UTF8.self) != nil else { return .failure(.invalidUTF8) }
        // Checked on what is forwarded, after unreserved escapes were decoded: `%25%32%65`
        // becomes `%252e` there, which a device decoding twice reads as `.`.
        if holdsDoubleEncoding(kept) { return .failure(.doubleEncoding) }
        return removingDotSegments(kept)
    }

    /// `%25` followed by the hex digits of `.`, `/`, `;`, `\` or a control byte.
    private static func holdsDoubleEncoding(_ bytes: [UInt8]) -> Bool {
        var i = 0
        while i + 4 < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), bytes[i + 1] == UInt8(ascii: "2"), bytes[i + 2] == UInt8(ascii: "5"),
                let inner = hexPair(bytes[i + 3], bytes[i + 4]),
                inner == UInt8(ascii: ".") || inner == UInt8(ascii: "/") || inner == UInt8(ascii: ";") || refusal(forDecoded: inner) != nil
            {
                return true
            }
            i += 1
        }
        return false
    }

    /// The common case, without copying: starts with `/`, and holds no `%`, `\`, control byte,
    /// `//` or segment starting with `.` or `;`.
    private static func isPlainlyNormal(_ path: String) -> Bool {
        var previous: UInt8 = 0
        var first = true
        for b in path.utf8 {
            if first {
                guard b == UInt8(ascii: "/") else { return false }
                first = false
                previous = b
                continue
            }
            if b == UInt8(ascii: "%") || b == UInt8(ascii: "\\") || b < 0x20 || b == 0x7F { return false }
            if previous == UInt8(ascii: "/") && (b == UInt8(ascii: "/") || b == UInt8(ascii: ".") || b == UInt8(ascii: ";")) { return false }
            previous = b
        }
        return !first
    }

    /// Segments of `bytes` (which start with `/`) with `.` and `..` resolved and empty ones merged.
    private static func removingDotSegments(_ bytes: [UInt8]) -> Result<String, PathRefusal> {
        var segments: [ArraySlice<UInt8>] = []
        let parts = bytes.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var trailingSlash = false
        for (index, part) in parts.enumerated() {
            let last = index == parts.count - 1
            if isDotSegmentWithParameters(part) { return .failure(.dotSegmentWithParameters) }
            switch part.count {
            case 0:
                if last { trailingSlash = true }
            case 1 where part.first == UInt8(ascii: "."):
                if last { trailingSlash = true }
            case 2 where part.elementsEqual("..".utf8):
                guard !segments.isEmpty else { return .failure(.aboveRoot) }
                segments.removeLast()
                if last { trailingSlash = true }
            default:
                segments.append(part)
                trailingSlash = false
            }
        }
        var out: [UInt8] = [UInt8(ascii: "/")]
        for (index, segment) in segments.enumerated() {
            if index > 0 { out.append(UInt8(ascii: "/")) }
            out.append(contentsOf: segment)
        }
        if trailingSlash && !segments.isEmpty { out.append(UInt8(ascii: "/")) }
        return .success(String(decoding: out, as: UTF8.self))
    }

    /// Whether a segment is empty, `.` or `..` once its `;` parameters are cut (at `;` or `%3B`,
    /// which a server that decodes before it cuts reads as `;`) although it holds some: what a
    /// server that strips parameters then walks up, or merges, is not what the rules saw.
    static func isDotSegmentWithParameters(_ segment: ArraySlice<UInt8>) -> Bool {
        guard let cut = parameterStart(segment) else { return false }
        let name = segment[segment.startIndex..<cut]
        return name.isEmpty || name.elementsEqual(".".utf8) || name.elementsEqual("..".utf8)
    }

    /// Where a segment's `;` parameters begin: its first `;` or `%3B` (either case).
    public static func parameterStart(_ segment: ArraySlice<UInt8>) -> ArraySlice<UInt8>.Index? {
        var i = segment.startIndex
        while i < segment.endIndex {
            let b = segment[i]
            if b == UInt8(ascii: ";") { return i }
            if b == UInt8(ascii: "%"), segment.endIndex - i >= 3, segment[i + 1] == UInt8(ascii: "3"),
                segment[i + 2] | 0x20 == UInt8(ascii: "b")
            {
                return i
            }
            i += 1
        }
        return nil
    }

    private static func refusal(forDecoded b: UInt8) -> PathRefusal? {
        if b == UInt8(ascii: "/") { return nil }
        if b == UInt8(ascii: "\\") { return .backslash }
        if b < 0x20 || b == 0x7F { return .controlCharacter }
        return nil
    }

    private static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }

    private static func hexPair(_ high: UInt8, _ low: UInt8) -> UInt8? {
        guard let h = hexValue(high), let l = hexValue(low) else { return nil }
        return h << 4 | l
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }

    private static func upperHex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? 0x30 + nibble : 0x41 + nibble - 10
    }
}
