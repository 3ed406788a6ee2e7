/// Cleans a device response's headers before they go back to the client.
///
/// Guarantees: hop-by-hop headers — `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding` and, except on a `101 Switching
/// Protocols`, `Upgrade` — never pass; the forwarder re-frames the body itself. `Content-Length`
/// is kept so a response keeps its length.
public enum DownstreamResponseHeaders {
    private static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    public static func clean(_ incoming: [(name: String, value: String)], isSwitchingProtocols: Bool) -> [(name: String, value: String)] {
        var named: Set<String> = []
        for (name, value) in incoming where name.equalsCaseInsensitive("connection") {
            for token in value.split(separator: ",") {
                named.insert(UpstreamHeaderPolicy.canonicalName(token.trimmingASCIIWhitespace()))
            }
        }
        return incoming.filter { header in
            let canonical = UpstreamHeaderPolicy.canonicalName(header.name)
            if isSwitchingProtocols && canonical == "upgrade" { return true }
            return !hopByHop.contains(canonical) && !named.contains(canonical)
        }
    }
}
