/// The device API behind Gatehouse: `http://host[:port]`, `https://host[:port]` or
/// `unix:/path/to.sock`.
///
/// Guarantees: only these three forms are accepted; a path, query or credentials in the URL are
/// refused rather than silently dropped. An `https` upstream is reached over TLS with the
/// certificate checked unless `upstream_tls.insecure_skip_verify` says otherwise.
public enum UpstreamAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case https(host: String, port: Int)
    case unixSocket(path: String)

    public init?(parsing text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard path.hasPrefix("/") || path.hasPrefix("./"), path.utf8.count < 104 else { return nil }
            self = .unixSocket(path: path)
            return
        }
        let secure: Bool
        var authority: String
        if text.hasPrefix("http://") {
            secure = false
            authority = String(text.dropFirst("http://".count))
        } else if text.hasPrefix("https://") {
            secure = true
            authority = String(text.dropFirst("https://".count))
        } else {
            return nil
        }
        if authority.hasSuffix("/") { authority.removeLast() }
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@"),
            !authority.contains("?"), !authority.contains("#")
        else { return nil }
        let host: String
        let port: Int
        if let (h, p) = splitHostPort(authority) {
            (host, port) = (h, p)
        } else if !authority.contains(":") || (authority.hasPrefix("[") && authority.hasSuffix("]")) {
            host = authority.hasPrefix("[") ? String(authority.dropFirst().dropLast()) : authority
            guard !host.isEmpty else { return nil }
            port = secure ? 443 : 80
        } else {
            return nil
        }
        self = secure ? .https(host: host, port: port) : .tcp(host: host, port: port)
    }

    /// The host and port of a TCP upstream (plain or TLS); nil for a unix socket.
    public var hostAndPort: (host: String, port: Int)? {
        switch self {
        case .tcp(let host, let port), .https(let host, let port): return (host, port)
        case .unixSocket: return nil
        }
    }

    /// Whether requests to this upstream travel over TLS.
    public var usesTLS: Bool {
        if case .https = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port):
            return host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
        case .https(let host, let port):
            return host.contains(":") ? "https://[\(host)]:\(port)" : "https://\(host):\(port)"
        case .unixSocket(let path):
            return "unix:\(path)"
        }
    }
}

extension UpstreamAddress {
    /// `upstream:`.
    static func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> UpstreamAddress {
        guard let upstream = UpstreamAddress(parsing: try reader.string(value)) else {
            throw reader.fail(value, "expected http://host:port, https://host:port or unix:/path/to.sock")
        }
        return upstream
    }
}
