/// An origin-form request target split into its path and query.
///
/// Guarantees: ``path`` is exactly the bytes before the first `?`; ``query`` keeps the rest
/// byte for byte, so a target rebuilt from them is the one received unless a parameter was
/// removed on purpose.
public struct RequestTarget: Sendable, Hashable {
    public let path: String
    public let query: QueryString

    public init(_ uri: String) {
        if let q = uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            self.path = String(uri[..<q])
            self.query = QueryString(String(uri[uri.index(after: q)...]))
        } else {
            self.path = uri
            self.query = QueryString(nil)
        }
    }

    public init(path: String, query: QueryString) {
        self.path = path
        self.query = query
    }

    /// The target as it goes upstream.
    public var uri: String {
        guard let raw = query.raw else { return path }
        return path + "?" + raw
    }
}

/// A query string kept as received, with read and remove operations on `name=value` pairs.
///
/// Guarantees: names are compared after percent-decoding, so `%61pikey` is the same parameter as
/// `apikey` (a device's framework would decode it too); removing a parameter keeps every other
/// pair's bytes and order.
public struct QueryString: Sendable, Hashable {
    /// The text after `?`, nil when there was no `?`.
    public let raw: String?

    public init(_ raw: String?) { self.raw = raw }

    /// No parameters at all (no `?`, or nothing after it).
    public var isEmpty: Bool { raw?.isEmpty ?? true }

    private var pairs: [Substring] {
        guard let raw else { return [] }
        return raw.split(separator: "&", omittingEmptySubsequences: false)
    }

    private static func split(_ pair: Substring) -> (name: String, value: String) {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let name = percentDecode(parts[0])
        let value = parts.count > 1 ? percentDecode(parts[1]) : ""
        return (name, value)
    }

    /// Every decoded value of the parameter `name`.
    public func values(named name: String) -> [String] {
        guard raw != nil else { return [] }
        return pairs.map(Self.split).filter { $0.name == name }.map(\.value)
    }

    /// The query without any `name` parameter; nil raw when nothing is left.
    public func removing(named name: String) -> QueryString {
        guard raw != nil else { return self }
        let kept = pairs.filter { Self.split($0).name != name }
        return QueryString(kept.isEmpty ? nil : kept.joined(separator: "&"))
    }
}

/// Decodes `%XX` and `+` (as a space, the form encoding query strings use). Invalid escapes are
/// kept as they are.
func percentDecode(_ text: Substring) -> String {
    guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return String(text) }
    var out: [UInt8] = []
    let bytes = Array(text.utf8)
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        if b == UInt8(ascii: "%"), i + 2 < bytes.count, let h = hexDigit(bytes[i + 1]), let l = hexDigit(bytes[i + 2]) {
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(b == UInt8(ascii: "+") ? UInt8(ascii: " ") : b)
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

private func hexDigit(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x61...0x66: return c - 0x61 + 10
    case 0x41...0x46: return c - 0x41 + 10
    default: return nil
    }
}
