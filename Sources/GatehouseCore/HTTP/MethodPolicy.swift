/// Which request methods Gatehouse lets through at all (`methods_allowed` widens the list).
///
/// Guarantees: a method outside ``allowed`` is answered 405 with an `Allow` header listing
/// ``allowed`` before anything else is decided, and never reaches the device. By default that
/// refuses `TRACE` (a device may echo the request's `Cookie` and `Authorization` back: cross-site
/// tracing), `CONNECT`, and any method a device's web API does not use; nginx refuses `TRACE` the
/// same way.
public struct MethodPolicy: Sendable, Hashable {
    /// What a device web UI or API uses.
    public static let standard: [String] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// The methods let through, in the order the `Allow` header lists them.
    public let allowed: [String]
    private let set: Set<String>

    /// - Parameter extra: `methods_allowed`, added to ``standard``.
    public init(extra: [String] = []) {
        var list = Self.standard
        for method in extra where !list.contains(method) { list.append(method) }
        allowed = list
        set = Set(list)
    }

    public func allows(_ method: String) -> Bool {
        switch method {
        case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS": return true
        default: return set.contains(method)
        }
    }

    /// The `Allow` header's value.
    public var allowHeader: String { allowed.joined(separator: ", ") }
}

extension MethodPolicy {
    /// `methods_allowed:` — upper-case method names, never CONNECT.
    static func readExtra(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> [String] {
        var methods: [String] = []
        for item in try reader.list(value) {
            let text = try reader.string(item)
            guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D }) else {
                throw reader.fail(item, "expected an upper-case method name like PROPFIND")
            }
            guard text != "CONNECT" else { throw reader.fail(item, "CONNECT asks a proxy for a tunnel to anywhere; Gatehouse never allows it") }
            methods.append(text)
        }
        return methods
    }
}
