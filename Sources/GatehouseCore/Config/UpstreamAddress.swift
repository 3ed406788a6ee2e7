/// The device API behind Gatehouse: `http://host[:port]` or `unix:/path/to.sock`.
///
/// Guarantees: only these two forms are accepted (an `https://` upstream comes with TLS support);
/// a path, query or credentials in the URL are refused rather than silently dropped.
public enum UpstreamAddress: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unixSocket(path: String)

    public init?(parsing text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard path.hasPrefix("/") || path.hasPrefix("./"), path.utf8.count < 104 else { return nil }
            self = .unixSocket(path: path)
            return
        }
        guard text.hasPrefix("http://") else { return nil }
        var authority = String(text.dropFirst("http://".count))
        if authority.hasSuffix("/") { authority.removeLast() }
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@"),
            !authority.contains("?"), !authority.contains("#")
        else { return nil }
        if let (host, port) = splitHostPort(authority) {
            self = .tcp(host: host, port: port)
        } else if !authority.contains(":") || (authority.hasPrefix("[") && authority.hasSuffix("]")) {
            let host = authority.hasPrefix("[") ? String(authority.dropFirst().dropLast()) : authority
            guard !host.isEmpty else { return nil }
            self = .tcp(host: host, port: 80)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port):
            return host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
        case .unixSocket(let path):
            return "unix:\(path)"
        }
    }
}
