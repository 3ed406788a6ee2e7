/// Where Gatehouse listens: `host:port` or `[v6]:port`.
///
/// Guarantees: the port is 0...65535 and the host is non-empty; IPv6 hosts must be bracketed so
/// `::1:8080` can never be misread.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(parsing text: String) {
        guard let (host, port) = splitHostPort(text) else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Splits `host:port` / `[v6]:port`; nil when malformed.
func splitHostPort(_ text: String) -> (String, Int)? {
    let host: Substring
    let portText: Substring
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else { return nil }
        host = text[text.index(after: text.startIndex)..<close]
        let rest = text[text.index(after: close)...]
        guard rest.hasPrefix(":") else { return nil }
        portText = rest.dropFirst()
    } else {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        host = text[..<colon]
        portText = text[text.index(after: colon)...]
        if host.contains(":") { return nil }
    }
    guard !host.isEmpty, !portText.isEmpty, portText.count <= 5,
        portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), port <= 65535
    else { return nil }
    return (String(host), port)
}

extension ListenAddress {
    /// `listen:`.
    static func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> ListenAddress {
        guard let listen = ListenAddress(parsing: try reader.string(value)) else {
            throw reader.fail(value, "expected host:port or [v6]:port, like 0.0.0.0:8080")
        }
        return listen
    }
}
