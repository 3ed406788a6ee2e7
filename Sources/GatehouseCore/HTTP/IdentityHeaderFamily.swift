/// The request headers through which authentication proxies tell a device who is calling, in
/// every product a device might have been set up to trust: whatever its name, a client's copy
/// of one of these is never forwarded (only the values Gatehouse sets itself reach the device).
///
/// Guarantees: names are compared in ``UpstreamHeaderPolicy/canonicalName(_:)`` form (ASCII case
/// folded, `_` read as `-`), so `Remote_User`, `REMOTE-USER` and `remote-user` are one name, as a
/// WSGI server or PHP reads them. The family is fixed; the configured `identity_headers` are
/// added to it by ``UpstreamHeaderPolicy``.
public enum IdentityHeaderFamily {
    /// Exact names (canonical form).
    public static let names: Set<String> = [
        // Authelia, and OctoPrint's default `REMOTE_USER`
        "remote-user", "remote-groups", "remote-email", "remote-name",
        // Gatehouse's own defaults and other X-Remote-* proxies
        "x-remote-user", "x-remote-roles", "x-remote-groups", "x-remote-email", "x-remote-name", "x-remote-auth",
        // oauth2-proxy (headers mode)
        "x-forwarded-user", "x-forwarded-groups", "x-forwarded-email", "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        // Grafana-style auth proxies
        "x-webauth-user", "x-webauth-email", "x-webauth-name", "x-webauth-groups", "x-webauth-role",
        // Generic
        "x-authenticated-user", "x-authenticated-groups", "x-authenticated-email", "x-auth-user", "x-user", "x-email",
        "x-username", "x-preferred-username",
    ]

    /// Name prefixes (canonical form) whose every header is identity: oauth2-proxy's
    /// `X-Auth-Request-*`, Authelia/Grafana's `Remote-*`, `X-Remote-*`, `X-WEBAUTH-*`,
    /// authentik's `X-Authentik-*`, Pomerium's `X-Pomerium-*`, Cloudflare Access's `Cf-Access-*`,
    /// Tailscale's `Tailscale-User-*`.
    public static let prefixes: [String] = [
        "x-auth-request-", "remote-", "x-remote-", "x-webauth-", "x-authentik-", "x-pomerium-", "cf-access-",
        "tailscale-user-",
    ]

    /// Whether `canonical` (a name in ``UpstreamHeaderPolicy/canonicalName(_:)`` form) is one of the family.
    public static func contains(canonical: String) -> Bool {
        names.contains(canonical) || prefixes.contains { canonical.utf8.starts(with: $0.utf8) }
    }

    private static let foldedNames: [[UInt8]] = names.map { Array($0.utf8) }

    /// The same as ``contains(canonical:)`` for a name as received, without allocating.
    public static func contains(name: String) -> Bool { contains(bytes: name.utf8) }

    /// ``contains(name:)`` for the bytes of a name as received.
    public static func contains<C: Collection<UInt8>>(bytes name: C) -> Bool {
        guard let first = name.first.map(HeaderName.fold) else { return false }
        switch first {
        case UInt8(ascii: "x"):
            if HeaderName.foldedHasPrefix(bytes: name, "x-remote-") || HeaderName.foldedHasPrefix(bytes: name, "x-auth-request-")
                || HeaderName.foldedHasPrefix(bytes: name, "x-webauth-") || HeaderName.foldedHasPrefix(bytes: name, "x-authentik-")
                || HeaderName.foldedHasPrefix(bytes: name, "x-pomerium-")
            {
                return true
            }
        case UInt8(ascii: "r"):
            if HeaderName.foldedHasPrefix(bytes: name, "remote-") { return true }
        case UInt8(ascii: "c"):
            return HeaderName.foldedHasPrefix(bytes: name, "cf-access-")
        case UInt8(ascii: "t"):
            return HeaderName.foldedHasPrefix(bytes: name, "tailscale-user-")
        default:
            return false
        }
        return foldedNames.contains { HeaderName.foldedEquals(bytes: name, folded: $0) }
    }
}
