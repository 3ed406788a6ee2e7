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
