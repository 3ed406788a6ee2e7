/// Which settings a reload (SIGHUP) applies to requests from then on, and which are bound when
/// the server starts and wait for a restart.
///
/// Guarantees: every field of ``GatehouseConfig`` (and of its `timeouts`, `limits` and `tls`)
/// is named in exactly one of ``restartBound`` and ``reloadable`` — a test walks the type's
/// fields — so a new setting cannot become hot-reloadable, or be silently ignored by a reload,
/// without someone deciding which it is here.
public enum ReloadPolicy {
    /// A setting read once at start: a reload keeps the running value and names the setting.
    public struct RestartBound {
        /// The config key, as the log line names it.
        public let key: String
        /// The fields of ``GatehouseConfig`` it covers, as dotted paths (`timeouts.idle`).
        public let fields: [String]
        let differs: (GatehouseConfig, GatehouseConfig) -> Bool
        let keep: (inout GatehouseConfig, GatehouseConfig) -> Void

        init<T: Equatable>(_ key: String, _ field: String, _ path: WritableKeyPath<GatehouseConfig, T>) {
            self.key = key
            self.fields = [field]
            self.differs = { $0[keyPath: path] != $1[keyPath: path] }
            self.keep = { $0[keyPath: path] = $1[keyPath: path] }
        }

        init(
            _ key: String, fields: [String], differs: @escaping (GatehouseConfig, GatehouseConfig) -> Bool,
            keep: @escaping (inout GatehouseConfig, GatehouseConfig) -> Void
        ) {
            self.key = key
            self.fields = fields
            self.differs = differs
            self.keep = keep
        }
    }

    public static var restartBound: [RestartBound] {
        [
            RestartBound("listen", "listen", \.listen),
            RestartBound("upstream", "upstream", \.upstream),
            RestartBound("upstream_tls", "upstreamTLS", \.upstreamTLS),
            RestartBound("store.path", "storePath", \.storePath),
            RestartBound("store.url", "sharedStore", \.sharedStore),
            RestartBound("sessions", "sessions", \.sessions),
            RestartBound("jwt", "jwt", \.jwt),
            RestartBound("login", "loginThrottle", \.loginThrottle),
            RestartBound("passwords", "passwordPolicy", \.passwordPolicy),
            RestartBound("audit_log", "auditLog", \.auditLog),
            RestartBound("log.format", "logFormat", \.logFormat),
            RestartBound("octoprint_csrf", "octoPrintCSRF", \.octoPrintCSRF),
            // The connection limiter reads the trusted proxies at start; the gate must agree with it.
            RestartBound("trusted_proxies", "trustedProxies", \.trustedProxies),
            RestartBound("timeouts.upstream_connect", "timeouts.upstreamConnect", \.timeouts.upstreamConnect),
            RestartBound("timeouts.idle", "timeouts.idle", \.timeouts.idle),
            RestartBound("timeouts.client_header", "timeouts.clientHeader", \.timeouts.clientHeader),
            RestartBound("timeouts.client_body", "timeouts.clientBody", \.timeouts.clientBody),
            RestartBound("limits.max_head_bytes", "limits.maxHeadBytes", \.limits.maxHeadBytes),
            RestartBound("limits.max_headers", "limits.maxHeaders", \.limits.maxHeaders),
            RestartBound("limits.max_connections", "limits.maxConnections", \.limits.maxConnections),
            RestartBound("limits.max_connections_per_client", "limits.maxConnectionsPerClient", \.limits.maxConnectionsPerClient),
            // Turning TLS on or off, or moving the redirect listener, needs new sockets; new
            // certificate files for a TLS listener do not.
            RestartBound(
                "tls", fields: ["tls", "tls.redirectHTTP", "tls.httpsPort"],
                differs: { old, new in
                    (old.tls == nil) != (new.tls == nil) || old.tls?.redirectHTTP != new.tls?.redirectHTTP || old.tls?.httpsPort != new.tls?.httpsPort
                },
                keep: { applied, old in applied.tls = old.tls }),
        ]
    }

    /// Fields a reload applies to every request whose head arrives after it.
    public static let reloadable: [String] = [
        "identityHeaders", "stripHeaders", "forwardCredentials", "queryAPIKey", "basicAuth", "publicPaths", "apiKeys",
        "trustedNetworks", "accessRules", "cors", "accessLog", "metricsRoles", "methodsAllowed", "forwardUnderscoreHeaders",
        "forwardIdentityFamily", "preset", "presetRules", "forwardClientAddress", "moonrakerOneshot", "octoPrintAppKeys",
        "timeouts.upstreamResponse", "timeouts.drain", "timeouts.tunnelRecheck",
        "limits.maxURIBytes", "limits.maxBodyBytes",
        // The certificate files are read again (a renewed certificate serves new connections).
        "tls.certificate", "tls.selfSignedNames",
    ]

    /// Fields whose own fields are classified one by one.
    public static let classifiedByPart: Set<String> = ["timeouts", "limits", "tls"]

    /// `new`, with every restart-bound setting that differs from `old` put back to `old`'s
    /// value, and one line for each such setting.
    public static func apply(_ new: GatehouseConfig, over old: GatehouseConfig) -> (applied: GatehouseConfig, kept: [String]) {
        var applied = new
        var kept: [String] = []
        for setting in restartBound where setting.differs(old, new) {
            setting.keep(&applied, old)
            kept.append("\(setting.key) changed; it takes effect after a restart")
        }
        return (applied, kept)
    }
}
