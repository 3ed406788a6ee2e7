/// A network whose clients get an identity without presenting a credential.
public struct TrustedNetwork: Sendable, Hashable {
    public let cidr: CIDR
    public let user: String
    public let roles: [String]

    public init(cidr: CIDR, user: String, roles: [String]) {
        self.cidr = cidr
        self.user = user
        self.roles = roles
    }
}

/// Grants the identity of the first trusted network (in configured order) that holds the client.
///
/// Guarantees: with no client address (e.g. a malformed `X-Forwarded-For` from a trusted proxy,
/// or a unix-socket peer) nothing is granted.
public struct TrustedNetworkAuthenticator: Sendable {
    public let networks: [TrustedNetwork]

    public init(networks: [TrustedNetwork]) { self.networks = networks }

    public func authenticate(client: IPAddress?) -> Identity? {
        guard let client, let network = networks.first(where: { $0.cidr.contains(client) }) else { return nil }
        return Identity(user: network.user, roles: network.roles, method: .trustedNetwork, source: network.cidr.description)
    }
}

/// Works out the real client address of a request.
///
/// Guarantees: `X-Forwarded-For` is read only when the socket peer is inside `trustedProxies`;
/// it is then walked right to left, skipping trusted proxies, and the first untrusted address is
/// the client. An entry that is not an address makes the client unknown (nil) rather than falling
/// back to the proxy's own address, which may itself sit inside a trusted network.
public struct ClientAddressResolver: Sendable {
    public let trustedProxies: [CIDR]

    public init(trustedProxies: [CIDR]) { self.trustedProxies = trustedProxies }

    public func isTrustedProxy(_ address: IPAddress?) -> Bool {
        guard let address else { return false }
        return trustedProxies.contains { $0.contains(address) }
    }

    /// The client of a request with these headers: `X-Forwarded-For` counts only from a trusted proxy.
    public func clientAddress(peer: IPAddress?, head: RequestHead) -> IPAddress? {
        guard head.has(.xForwardedFor), isTrustedProxy(peer) else { return peer }
        return clientAddress(peer: peer, forwardedFor: head.values(.xForwardedFor))
    }

    /// - Parameter forwardedFor: every `X-Forwarded-For` value in the order received.
    public func clientAddress(peer: IPAddress?, forwardedFor: [String]) -> IPAddress? {
        guard let peer else { return nil }
        guard isTrustedProxy(peer), !forwardedFor.isEmpty else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
        var candidate = peer
        for hop in hops.reversed() {
            guard let address = IPAddress(hop.trimmingASCIIWhitespace()) else { return nil }
            candidate = address
            if !isTrustedProxy(address) { return address }
        }
        return candidate
    }
}

extension TrustedNetwork {
    /// One entry of `trusted_networks:`.
    static func read(_ item: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> TrustedNetwork {
        let m = try reader.mapping(item, known: ["cidr", "user", "roles"])
        guard let c = m["cidr"], let u = m["user"] else { throw reader.fail(item, "needs cidr and user") }
        return TrustedNetwork(cidr: try reader.cidr(c), user: try reader.name(u, what: "user name"), roles: try reader.names(m["roles"], what: "role"))
    }
}
