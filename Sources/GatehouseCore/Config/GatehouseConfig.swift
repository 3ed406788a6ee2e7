/// The whole of Gatehouse's configuration, as typed values.
///
/// Guarantees: a value of this type was either built in code or passed every check of
/// ``ConfigLoader``: every key known, every value of the right type and range, no two API keys
/// with the same hash or name, every user and role a valid header-safe name.
public struct GatehouseConfig: Sendable {
    public var listen: ListenAddress
    public var upstream: UpstreamAddress
    public var identityHeaders: IdentityHeaderNames
    public var stripHeaders: [String]
    public var forwardCredentials: Bool
    public var queryAPIKey: Bool
    /// `basic_auth` (default false): accept `Authorization: Basic` — an API key as the password,
    /// or a user's name and password (checked with scrypt, counted toward lockouts).
    public var basicAuth: Bool = false
    public var publicPaths: [String]
    public var apiKeys: [APIKeyRecord]
    public var trustedNetworks: [TrustedNetwork]
    public var trustedProxies: [CIDR]
    public var timeouts: Timeouts
    public var limits: Limits
    /// `access_rules:`, in order (the `public_paths` shorthand is kept apart in ``publicPaths``;
    /// ``accessPolicy`` puts both together).
    public var accessRules: [AccessRule] = []
    /// `cors:` (off unless `allowed_origins` is given).
    public var cors = CORSPolicy()
    /// One line per request on stdout (`access_log`, default true).
    public var accessLog: Bool = true
    /// Security events, one JSON object per line (`audit_log`): `stdout` (the default), `off`,
    /// or a file path (`ConfigLoader.load(path:)` resolves a relative one against the config file's directory).
    public var auditLog: String = "stdout"
    /// `octoprint_csrf` (default false): give OctoPrint its CSRF pair on state-changing requests
    /// authenticated by anything but the session cookie, as OctoPrint itself waives the check
    /// for API keys (needed with `trustRemoteUser`, or a slicer's upload gets 400).
    public var octoPrintCSRF: Bool = false
    /// Who may read `GET /_gatehouse/metrics` (`metrics.roles`, default `[admin]`): an identity
    /// holding one of these roles (a trusted network's identity included).
    public var metricsRoles: [String] = ["admin"]
    /// The format of the log on stdout (`log.format`): `text` (default) or `json`.
    public var logFormat: LogFormat = .text

    public enum LogFormat: String, Sendable, Hashable {
        case text, json
    }
    /// `methods_allowed`: methods let through besides GET, HEAD, POST, PUT, PATCH, DELETE and
    /// OPTIONS (``MethodPolicy``); any other is answered 405.
    public var methodsAllowed: [String] = []
    /// `forward_underscore_headers`: header names holding `_` that are forwarded anyway (every
    /// other such header is dropped); never one that folds onto a header Gatehouse reads or sets.
    public var forwardUnderscoreHeaders: [String] = []
    /// `forward_identity_family`: names of ``IdentityHeaderFamily`` that clients may still send
    /// to the device (never a configured identity header).
    public var forwardIdentityFamily: [String] = []
    /// `preset:` (nil: none); its values are already applied to the other fields.
    public var preset: DevicePreset?
    /// Access rules a preset adds; checked after ``accessRules`` and ``publicPaths``.
    public var presetRules: [AccessRule] = []
    /// `forward_client_address` (default true): tell the device the client's address in
    /// `X-Forwarded-For`. Off (the `moonraker` preset): the device sees only Gatehouse's address,
    /// and no client-sent `X-Forwarded-For`, `X-Real-IP` or `Forwarded` reaches it either.
    public var forwardClientAddress: Bool = true
    /// `moonraker_oneshot` (default false): answer Moonraker's `GET /access/oneshot_token` with a
    /// Gatehouse one-shot token, so clients that open `/websocket?token=` with it get through.
    public var moonrakerOneshot: Bool = false
    /// `octoprint_appkeys` (default false): answer OctoPrint's application-key pairing
    /// (`/plugin/appkeys/...`) with a Gatehouse key, approved by a user signed in to Gatehouse.
    public var octoPrintAppKeys: Bool = false
    /// `tls:` (nil: plain HTTP). `ConfigLoader.load(path:)` resolves relative files against the
    /// config file's directory, and puts a self-signed certificate beside the store.
    public var tls: ListenerTLSSettings?
    /// `upstream_tls:`, for an `https://` upstream.
    public var upstreamTLS = UpstreamTLSSettings()
    /// The store file (`store.path`, default `./gatehouse.db`). `ConfigLoader.load(path:)`
    /// resolves a relative path against the config file's directory.
    public var storePath: String = "./gatehouse.db"
    /// `store.url` and its settings: a PostgreSQL database shared with other Gatehouses, used
    /// instead of ``storePath``'s file (nil: the file).
    public var sharedStore: SharedStoreSettings?
    /// Rules for user passwords (`passwords.min_length`, default 10).
    public var passwordPolicy = PasswordPolicy()
    /// Browser sign-ins (`sessions:`).
    public var sessions = SessionPolicy()
    /// JSON Web Tokens (`jwt:`). `ConfigLoader.load(path:)` resolves a relative `secret_file`
    /// against the config file's directory.
    public var jwt = JWTSettings()
    /// Lockouts after failed sign-ins (`login:`).
    public var loginThrottle = LoginThrottlePolicy()

    public init(
        listen: ListenAddress = ListenAddress(host: "0.0.0.0", port: 8080),
        upstream: UpstreamAddress = .tcp(host: "127.0.0.1", port: 5000),
        identityHeaders: IdentityHeaderNames = IdentityHeaderNames(),
        stripHeaders: [String] = [],
        forwardCredentials: Bool = false,
        queryAPIKey: Bool = false,
        publicPaths: [String] = [],
        apiKeys: [APIKeyRecord] = [],
        trustedNetworks: [TrustedNetwork] = [],
        trustedProxies: [CIDR] = [],
        timeouts: Timeouts = Timeouts(),
        limits: Limits = Limits()
    ) {
        self.listen = listen
        self.upstream = upstream
        self.identityHeaders = identityHeaders
        self.stripHeaders = stripHeaders
        self.forwardCredentials = forwardCredentials
        self.queryAPIKey = queryAPIKey
        self.publicPaths = publicPaths
        self.apiKeys = apiKeys
        self.trustedNetworks = trustedNetworks
        self.trustedProxies = trustedProxies
        self.timeouts = timeouts
        self.limits = limits
    }

    /// `timeouts:`; each a ``ConfigDuration``.
    public struct Timeouts: Sendable, Hashable {
        /// Connecting to the upstream.
        public var upstreamConnect: ConfigDuration = .seconds(5)
        /// From the request head sent upstream to the response head received (504 after).
        public var upstreamResponse: ConfigDuration = .seconds(60)
        /// From a request's first byte to its complete head (slow clients are cut off).
        public var clientHeader: ConfigDuration = .seconds(10)
        /// While a request body is read: the longest wait for its next bytes.
        public var clientBody: ConfigDuration = .seconds(30)
        /// An idle keep-alive connection is closed after this.
        public var idle: ConfigDuration = .seconds(75)
        /// On SIGTERM, how long in-flight requests may take to finish.
        public var drain: ConfigDuration = .seconds(20)
        /// How often a WebSocket tunnel's credential is asked again (closed once it fails).
        public var tunnelRecheck: ConfigDuration = .seconds(2)
        public init() {}
    }

    /// `limits:`; each answered with its own status code.
    public struct Limits: Sendable, Hashable {
        /// Request line plus headers (431 beyond).
        public var maxHeadBytes: Int = 32768
        /// Header fields in one request (431 beyond).
        public var maxHeaders: Int = 100
        /// The request target (414 beyond).
        public var maxURIBytes: Int = 8192
        /// The request body; 0 is unlimited (413 beyond).
        public var maxBodyBytes: Int64 = 0
        /// Open client connections in all (503 and close beyond).
        public var maxConnections: Int = 1024
        /// Open client connections from one address (503 and close beyond); a trusted proxy is
        /// held only to ``maxConnections``.
        public var maxConnectionsPerClient: Int = 128
        public init() {}
    }

    /// The rules the gate applies: `access_rules` first, then one public prefix rule per
    /// `public_paths` entry (so an explicit rule wins over the shorthand).
    public var accessPolicy: AccessPolicy {
        AccessPolicy(rules: accessRules + publicPaths.map { AccessRule(pattern: .prefix($0), decision: .open) } + presetRules)
    }
}

extension GatehouseConfig.Timeouts {
    /// `timeouts:`.
    mutating func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) {
        let m = try reader.mapping(value, known: ["upstream_connect", "upstream_response", "client_header", "client_body", "idle", "drain", "tunnel_recheck"])
        if let x = m["upstream_connect"] { upstreamConnect = try reader.positiveDuration(x) }
        if let x = m["upstream_response"] { upstreamResponse = try reader.positiveDuration(x) }
        if let x = m["client_header"] { clientHeader = try reader.positiveDuration(x) }
        if let x = m["client_body"] { clientBody = try reader.positiveDuration(x) }
        if let x = m["idle"] { idle = try reader.positiveDuration(x) }
        if let x = m["drain"] { drain = try reader.duration(x) }
        if let x = m["tunnel_recheck"] { tunnelRecheck = try reader.positiveDuration(x) }
    }
}

extension GatehouseConfig.Limits {
    /// `limits:`.
    mutating func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) {
        let m = try reader.mapping(value, known: ["max_head_bytes", "max_headers", "max_uri_bytes", "max_body_bytes", "max_connections", "max_connections_per_client"])
        if let x = m["max_head_bytes"] { maxHeadBytes = Int(try reader.int(x, min: 1024, max: 1 << 24)) }
        if let x = m["max_headers"] { maxHeaders = Int(try reader.int(x, min: 8, max: 10000)) }
        if let x = m["max_uri_bytes"] { maxURIBytes = Int(try reader.int(x, min: 256, max: 1 << 24)) }
        if let x = m["max_body_bytes"] { maxBodyBytes = try reader.int(x, min: 0) }
        if let x = m["max_connections"] { maxConnections = Int(try reader.int(x, min: 1, max: 1_000_000)) }
        if let x = m["max_connections_per_client"] { maxConnectionsPerClient = Int(try reader.int(x, min: 1, max: 1_000_000)) }
    }
}
