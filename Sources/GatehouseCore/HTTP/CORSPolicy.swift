/// `cors:` — which other sites' pages may call Gatehouse's own API and, when listed, proxied
/// paths from a browser.
///
/// Guarantees:
/// - Only an origin in ``allowedOrigins`` (compared without case) gets CORS headers; with `*`
///   any origin does, but then `Access-Control-Allow-Credentials` is never sent, so a browser
///   never attaches cookies for a wildcard (OctoPrint's `allowCrossOrigin` is likewise for API-key
///   clients only).
/// - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) on a CORS path is
///   answered by Gatehouse (204, or 403 for an origin not allowed) and never reaches the device.
/// - On CORS paths the device's own `Access-Control-*` headers are replaced by these, so the two
///   can never disagree.
public struct CORSPolicy: Sendable, Hashable {
    /// Exact origins (`scheme://host[:port]`, lower case), or `*`.
    public var allowedOrigins: [String]
    /// Proxied path prefixes (whole segments) that get CORS; Gatehouse's own API always does.
    public var proxiedPaths: [String]
    /// How long a browser may keep a preflight's answer.
    public var maxAgeSeconds: Int

    public init(allowedOrigins: [String] = [], proxiedPaths: [String] = [], maxAgeSeconds: Int = 600) {
        self.allowedOrigins = allowedOrigins.map { $0.lowercased() }
        self.proxiedPaths = proxiedPaths
        self.maxAgeSeconds = maxAgeSeconds
    }

    public var isEnabled: Bool { !allowedOrigins.isEmpty }

    private var allowsAnyOrigin: Bool { allowedOrigins.contains("*") }

    /// Whether CORS applies on `path` (normalized).
    public func applies(toPath path: String) -> Bool {
        guard isEnabled else { return false }
        if path.hasBytePrefix("/_gatehouse/api/") { return true }
        return proxiedPaths.contains { prefix in
            PathBytes.isUnder(path, prefix: prefix)
        }
    }

    /// Whether `origin` is named in ``allowedOrigins`` itself (the `*` wildcard names nobody).
    public func namesExplicitly(origin: String?) -> Bool {
        guard let origin = origin?.trimmingASCIIWhitespace().lowercased(), !origin.isEmpty, origin != "*" else { return false }
        return allowedOrigins.contains(origin)
    }

    /// A browser's preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    public static func isPreflight(method: String, _ head: RequestHead) -> Bool {
        method == "OPTIONS" && head.has(.origin) && head.has(.accessControlRequestMethod)
    }

    /// The headers that let `origin` read a response; nil when the origin is not allowed.
    public func responseHeaders(origin: String?) -> [(name: String, value: String)]? {
        guard let origin = origin?.trimmingASCIIWhitespace().lowercased(), !origin.isEmpty, origin != "null" else { return nil }
        if allowedOrigins.contains(origin) {
            return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"), ("Vary", "Origin")]
        }
        if allowsAnyOrigin { return [("Access-Control-Allow-Origin", "*")] }
        return nil
    }

    /// The answer to a preflight: its headers, or nil (then 403) when the origin is not allowed or
    /// the requested headers are not header names.
    public func preflightHeaders(_ head: RequestHead) -> [(name: String, value: String)]? {
        guard var out = responseHeaders(origin: head.value(.origin)) else { return nil }
        let requested = head.values(.accessControlRequestHeaders)
            .flatMap { $0.split(separator: ",") }.map { $0.trimmingASCIIWhitespace().lowercased() }.filter { !$0.isEmpty }
        guard requested.allSatisfy(Self.isToken) else { return nil }
        out.append(("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"))
        if !requested.isEmpty { out.append(("Access-Control-Allow-Headers", requested.joined(separator: ", "))) }
        out.append(("Access-Control-Max-Age", String(maxAgeSeconds)))
        return out
    }

    /// A header name: RFC 9110 token characters only.
    private static func isToken(_ text: String) -> Bool {
        text.utf8.count <= 64 && text.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F || b == 0x2E
        }
    }
}

extension CORSPolicy {
    /// `cors:`.
    static func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> CORSPolicy {
        let m = try reader.mapping(value, known: ["allowed_origins", "paths", "max_age"])
        var origins: [String] = []
        for item in try m["allowed_origins"].map({ v throws(ConfigError) in try reader.list(v) }) ?? [] {
            let text = try reader.string(item)
            guard text == "*" || isOrigin(text) else {
                throw reader.fail(item, "expected an origin like https://app.example.com (scheme, host, optional port; no path) or *")
            }
            origins.append(text)
        }
        var paths: [String] = []
        for item in try m["paths"].map({ v throws(ConfigError) in try reader.list(v) }) ?? [] {
            let text = try reader.string(item)
            guard PathNormalizer.isNormal(text) else {
                throw reader.fail(item, "expected a path prefix starting with / in normal form")
            }
            paths.append(text)
        }
        let maxAge = try m["max_age"].map { v throws(ConfigError) in try reader.duration(v).seconds } ?? 600
        return CORSPolicy(allowedOrigins: origins, proxiedPaths: paths, maxAgeSeconds: Int(maxAge))
    }

    private static func isOrigin(_ text: String) -> Bool {
        let lower = text.lowercased()
        guard let scheme = ["https://", "http://"].first(where: { lower.hasPrefix($0) }) else { return false }
        let rest = lower.dropFirst(scheme.count)
        return !rest.isEmpty && !rest.contains("/") && rest.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x2E || b == 0x3A || b == 0x5B || b == 0x5D
        }
    }
}
