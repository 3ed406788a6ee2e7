import Foundation
import Yams

/// Reads `config.yml` into a ``GatehouseConfig``.
///
/// Guarantees: the YAML is parsed by Yams; every key is checked against the known ones (a typo
/// is an error, never silently ignored); every error is a ``ConfigError`` naming file, line and
/// key path; nothing is half-applied — either a whole valid config comes back or an error does.
public enum ConfigLoader {
    public static func load(path: String) throws(ConfigError) -> GatehouseConfig {
        let name = (path as NSString).lastPathComponent
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: nil, keyPath: "", message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: name, line: nil, keyPath: "", message: "the file is not UTF-8 text")
        }
        var config = try parse(yaml: text, fileName: name)
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        if !config.storePath.hasPrefix("/") {
            config.storePath = directory.appendingPathComponent(config.storePath).standardizedFileURL.path
        }
        if !["stdout", "off"].contains(config.auditLog) && !config.auditLog.hasPrefix("/") {
            config.auditLog = directory.appendingPathComponent(config.auditLog).standardizedFileURL.path
        }
        func resolved(_ file: String) -> String {
            file.hasPrefix("/") ? file : directory.appendingPathComponent(file).standardizedFileURL.path
        }
        switch config.tls?.certificate {
        case .files(let certificate, let key)?:
            config.tls?.certificate = .files(certificate: resolved(certificate), key: resolved(key))
        case .selfSigned?:
            config.tls?.certificate = .selfSigned(directory: URL(fileURLWithPath: config.storePath).deletingLastPathComponent().path)
        case nil:
            break
        }
        config.upstreamTLS.caFile = config.upstreamTLS.caFile.map(resolved)
        if !config.jwt.secretFile.hasPrefix("/") {
            config.jwt.secretFile = directory.appendingPathComponent(config.jwt.secretFile).standardizedFileURL.path
        }
        return config
    }

    public static func parse(yaml: String, fileName: String = "config.yml") throws(ConfigError) -> GatehouseConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(file: fileName, line: yamlErrorLine(error), keyPath: "", message: "not valid YAML: \(yamlProblem(error))")
        } catch {
            throw ConfigError(file: fileName, line: nil, keyPath: "", message: "not valid YAML")
        }
        guard let root else { throw ConfigError(file: fileName, line: nil, keyPath: "", message: "the file is empty") }
        return try ConfigReader(file: fileName).read(ConfigValue(node: root, path: ""))
    }

    private static func yamlErrorLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        case .duplicatedKeysInMapping(_, let context): return context.mark.line
        case .reader(_, let offset?, _, let yaml):
            return yaml.utf8.prefix(offset).reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
        default: return nil
        }
    }

    private static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): return problem
        case .reader(let problem, _, _, _): return problem
        case .duplicatedKeysInMapping(let duplicates, _): return "duplicated keys \(duplicates.joined(separator: ", "))"
        // Never Yams's full description: it quotes the offending line, which may hold a secret.
        default: return "the YAML cannot be read"
        }
    }
}

/// A YAML node and the key path that led to it.
struct ConfigValue {
    let node: Node
    let path: String

    var line: Int? { node.mark?.line }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    var isNull: Bool {
        guard case .scalar(let s) = node else { return false }
        return s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string)
    }
}

/// Walks the YAML tree, turning each node into a typed value or a located ``ConfigError``.
struct ConfigReader {
    let file: String

    func fail(_ value: ConfigValue, _ message: String) -> ConfigError {
        ConfigError(file: file, line: value.line, keyPath: value.path, message: message)
    }

    /// The entries of a mapping, refusing keys not in `known`.
    func mapping(_ value: ConfigValue, known: [String]) throws(ConfigError) -> [String: ConfigValue] {
        guard case .mapping(let mapping) = value.node else {
            throw fail(value, "expected a mapping of keys (\(known.joined(separator: ", ")))")
        }
        var out: [String: ConfigValue] = [:]
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let key) = keyNode else {
                throw ConfigError(file: file, line: keyNode.mark?.line, keyPath: value.path, message: "a key must be a plain name")
            }
            let path = value.child(key.string)
            guard known.contains(key.string) else {
                throw ConfigError(file: file, line: keyNode.mark?.line, keyPath: path,
                    message: "unknown key (known keys here: \(known.joined(separator: ", ")))")
            }
            guard out[key.string] == nil else {
                throw ConfigError(file: file, line: keyNode.mark?.line, keyPath: path, message: "the key is given twice")
            }
            out[key.string] = ConfigValue(node: valueNode, path: path)
        }
        return out
    }

    func string(_ value: ConfigValue) throws(ConfigError) -> String {
        guard case .scalar(let s) = value.node, !value.isNull else { throw fail(value, "expected a text value") }
        return s.string
    }

    func bool(_ value: ConfigValue) throws(ConfigError) -> Bool {
        guard case .scalar(let s) = value.node else { throw fail(value, "expected true or false") }
        switch s.string {
        case "true": return true
        case "false": return false
        default: throw fail(value, "expected true or false")
        }
    }

    func int(_ value: ConfigValue, min: Int64, max: Int64 = Int64.max) throws(ConfigError) -> Int64 {
        guard case .scalar(let s) = value.node, let n = Int64(s.string), n >= min, n <= max else {
            let upper = max == Int64.max ? "" : " and at most \(max)"
            throw fail(value, "expected a whole number of at least \(min)\(upper)")
        }
        return n
    }

    func duration(_ value: ConfigValue) throws(ConfigError) -> ConfigDuration {
        guard case .scalar(let s) = value.node, let d = ConfigDuration(parsing: s.string) else {
            throw fail(value, "expected a duration like 30s, 5m, 1h or 7d")
        }
        return d
    }

    func list(_ value: ConfigValue) throws(ConfigError) -> [ConfigValue] {
        if value.isNull { return [] }
        guard case .sequence(let seq) = value.node else { throw fail(value, "expected a list") }
        return seq.enumerated().map { ConfigValue(node: $1, path: "\(value.path)[\($0)]") }
    }

    func name(_ value: ConfigValue, what: String) throws(ConfigError) -> String {
        let text = try string(value)
        guard Identity.isValidName(text) else {
            throw fail(value, "a \(what) must be 1-64 characters of A-Z a-z 0-9 . _ @ -")
        }
        return text
    }

    func names(_ value: ConfigValue?, what: String) throws(ConfigError) -> [String] {
        guard let value else { return [] }
        var out: [String] = []
        for item in try list(value) { out.append(try name(item, what: what)) }
        return out
    }

    func headerName(_ value: ConfigValue) throws(ConfigError) -> String {
        let text = try string(value)
        guard !text.isEmpty, text.utf8.count <= 128, text.utf8.allSatisfy(RequestFramingValidator.isTokenByte) else {
            throw fail(value, "expected an HTTP header name")
        }
        return text
    }

    func cidr(_ value: ConfigValue) throws(ConfigError) -> CIDR {
        let text = try string(value)
        do {
            return try CIDR(parsing: text)
        } catch {
            switch error {
            case .badAddress: throw fail(value, "'\(text)' is not an IPv4 or IPv6 address or CIDR block")
            case .badPrefix: throw fail(value, "'\(text)' has a prefix length out of range")
            case .hostBitsSet: throw fail(value, "'\(text)' has host bits set; did you mean the network address?")
            }
        }
    }

    static let topLevelKeys = [
        "listen", "upstream", "identity_headers", "strip_headers", "forward_credentials", "query_api_key", "basic_auth",
        "public_paths", "api_keys", "trusted_networks", "trusted_proxies", "timeouts", "limits", "access_log",
        "store", "passwords", "sessions", "jwt", "login", "access_rules", "cors", "audit_log", "log", "octoprint_csrf", "metrics",
        "tls", "upstream_tls", "preset", "forward_client_address", "moonraker_oneshot", "octoprint_appkeys",
        "methods_allowed", "forward_underscore_headers", "forward_identity_family",
    ]

    func read(_ root: ConfigValue) throws(ConfigError) -> GatehouseConfig {
        let top = try mapping(root, known: Self.topLevelKeys)
        var config = GatehouseConfig()
        if let v = top["preset"] {
            let names = DevicePreset.allCases.map(\.rawValue).joined(separator: ", ")
            guard let preset = DevicePreset(rawValue: try string(v)) else { throw fail(v, "expected one of \(names)") }
            preset.apply(to: &config)
        }
        if let v = top["listen"] {
            guard let listen = ListenAddress(parsing: try string(v)) else {
                throw fail(v, "expected host:port or [v6]:port, like 0.0.0.0:8080")
            }
            config.listen = listen
        }
        if let v = top["upstream"] {
            guard let upstream = UpstreamAddress(parsing: try string(v)) else {
                throw fail(v, "expected http://host:port, https://host:port or unix:/path/to.sock")
            }
            config.upstream = upstream
        }
        if let v = top["tls"] { config.tls = try listenerTLS(v, listen: config.listen) }
        if let v = top["upstream_tls"] {
            config.upstreamTLS = try upstreamTLS(v)
            guard config.upstream.usesTLS else { throw fail(v, "is set, but upstream is not an https:// address") }
        }
        if let v = top["identity_headers"] {
            let m = try mapping(v, known: ["user", "roles", "method"])
            if let u = m["user"] { config.identityHeaders.user = try headerName(u) }
            if let r = m["roles"] { config.identityHeaders.roles = try headerName(r) }
            if let x = m["method"] { config.identityHeaders.method = try headerName(x) }
            let canonical = Set(config.identityHeaders.all.map(UpstreamHeaderPolicy.canonicalName))
            guard canonical.count == 3 else { throw fail(v, "the three identity headers must have different names") }
        }
        if let v = top["strip_headers"] {
            for item in try list(v) { config.stripHeaders.append(try headerName(item)) }
        }
        if let v = top["forward_credentials"] { config.forwardCredentials = try bool(v) }
        if let v = top["query_api_key"] { config.queryAPIKey = try bool(v) }
        if let v = top["basic_auth"] { config.basicAuth = try bool(v) }
        if let v = top["octoprint_csrf"] { config.octoPrintCSRF = try bool(v) }
        if let v = top["octoprint_appkeys"] { config.octoPrintAppKeys = try bool(v) }
        if let v = top["moonraker_oneshot"] { config.moonrakerOneshot = try bool(v) }
        if let v = top["forward_client_address"] { config.forwardClientAddress = try bool(v) }
        if let v = top["access_log"] { config.accessLog = try bool(v) }
        if let v = top["audit_log"] {
            let where_ = try string(v)
            guard !where_.isEmpty, !where_.utf8.contains(0) else { throw fail(v, "expected stdout, off, or a file path") }
            config.auditLog = where_
        }
        if let v = top["metrics"] {
            let m = try mapping(v, known: ["roles"])
            if let r = m["roles"] {
                var roles: [String] = []
                for item in try list(r) {
                    let role = try string(item)
                    guard Identity.isValidName(role) else { throw fail(item, "expected a role name (1-64 characters of A-Z a-z 0-9 . _ @ -)") }
                    roles.append(role)
                }
                guard !roles.isEmpty else { throw fail(r, "name at least one role") }
                config.metricsRoles = roles
            }
        }
        if let v = top["log"] {
            let m = try mapping(v, known: ["format"])
            if let f = m["format"] {
                guard let format = GatehouseConfig.LogFormat(rawValue: try string(f)) else { throw fail(f, "expected text or json") }
                config.logFormat = format
            }
        }
        if let v = top["public_paths"] {
            for item in try list(v) {
                let p = try string(item)
                // The same form as an access rule's prefix: what the rules match is normalized.
                guard PathNormalizer.isNormal(p) else {
                    throw fail(item, "expected a path starting with / in normal form (no dot segments, //, %2F or lower-case escapes)")
                }
                config.publicPaths.append(p)
            }
        }
        if let v = top["access_rules"] { config.accessRules = try accessRules(v) }
        if let v = top["cors"] { config.cors = try cors(v) }
        if let v = top["api_keys"] { config.apiKeys = try apiKeys(v) }
        if let v = top["trusted_networks"] {
            for item in try list(v) {
                let m = try mapping(item, known: ["cidr", "user", "roles"])
                guard let c = m["cidr"], let u = m["user"] else { throw fail(item, "needs cidr and user") }
                config.trustedNetworks.append(
                    TrustedNetwork(cidr: try cidr(c), user: try name(u, what: "user name"), roles: try names(m["roles"], what: "role")))
            }
        }
        if let v = top["trusted_proxies"] {
            for item in try list(v) { config.trustedProxies.append(try cidr(item)) }
        }
        if let v = top["timeouts"] {
            let m = try mapping(v, known: ["upstream_connect", "upstream_response", "client_header", "client_body", "idle", "drain", "tunnel_recheck"])
            if let x = m["upstream_connect"] { config.timeouts.upstreamConnect = try positive(duration(x), x) }
            if let x = m["upstream_response"] { config.timeouts.upstreamResponse = try positive(duration(x), x) }
            if let x = m["client_header"] { config.timeouts.clientHeader = try positive(duration(x), x) }
            if let x = m["client_body"] { config.timeouts.clientBody = try positive(duration(x), x) }
            if let x = m["idle"] { config.timeouts.idle = try positive(duration(x), x) }
            if let x = m["drain"] { config.timeouts.drain = try duration(x) }
            if let x = m["tunnel_recheck"] { config.timeouts.tunnelRecheck = try positive(duration(x), x) }
        }
        if let v = top["limits"] {
            let m = try mapping(v, known: ["max_head_bytes", "max_headers", "max_uri_bytes", "max_body_bytes", "max_connections", "max_connections_per_client"])
            if let x = m["max_head_bytes"] { config.limits.maxHeadBytes = Int(try int(x, min: 1024, max: 1 << 24)) }
            if let x = m["max_headers"] { config.limits.maxHeaders = Int(try int(x, min: 8, max: 10000)) }
            if let x = m["max_uri_bytes"] { config.limits.maxURIBytes = Int(try int(x, min: 256, max: 1 << 24)) }
            if let x = m["max_body_bytes"] { config.limits.maxBodyBytes = try int(x, min: 0) }
            if let x = m["max_connections"] { config.limits.maxConnections = Int(try int(x, min: 1, max: 1_000_000)) }
            if let x = m["max_connections_per_client"] { config.limits.maxConnectionsPerClient = Int(try int(x, min: 1, max: 1_000_000)) }
        }
        if let v = top["store"] {
            let m = try mapping(v, known: ["path"])
            if let x = m["path"] {
                let path = try string(x)
                guard !path.isEmpty, !path.hasSuffix("/") else { throw fail(x, "expected a file path, like ./gatehouse.db") }
                config.storePath = path
            }
        }
        if let v = top["passwords"] {
            let m = try mapping(v, known: ["min_length"])
            if let x = m["min_length"] { config.passwordPolicy.minimumLength = Int(try int(x, min: 1, max: 256)) }
        }
        if let v = top["sessions"] {
            let m = try mapping(v, known: ["idle_timeout", "lifetime", "short_lifetime"])
            if let x = m["idle_timeout"] { config.sessions.idleTimeout = try positive(duration(x), x) }
            if let x = m["lifetime"] { config.sessions.rememberLifetime = try positive(duration(x), x) }
            if let x = m["short_lifetime"] { config.sessions.shortLifetime = try positive(duration(x), x) }
        }
        if let v = top["jwt"] {
            let m = try mapping(v, known: ["secret_file", "issuer", "audience", "access_expiry", "refresh_expiry"])
            if let x = m["secret_file"] {
                let path = try string(x)
                guard !path.isEmpty, !path.hasSuffix("/") else { throw fail(x, "expected a file path, like ./jwt.secret") }
                config.jwt.secretFile = path
            }
            if let x = m["issuer"] { config.jwt.issuer = try nonEmpty(x) }
            if let x = m["audience"] { config.jwt.audience = try nonEmpty(x) }
            if let x = m["access_expiry"] { config.jwt.accessExpiry = try duration(x) }
            if let x = m["refresh_expiry"] { config.jwt.refreshExpiry = try duration(x) }
        }
        if let v = top["methods_allowed"] {
            for item in try list(v) {
                let text = try string(item)
                guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D }) else {
                    throw fail(item, "expected an upper-case method name like PROPFIND")
                }
                guard text != "CONNECT" else { throw fail(item, "CONNECT asks a proxy for a tunnel to anywhere; Gatehouse never allows it") }
                config.methodsAllowed.append(text)
            }
        }
        try readHeaderExceptions(top, into: &config)
        if let v = top["login"] {
            let m = try mapping(v, known: ["max_failures", "window", "lockout"])
            if let x = m["max_failures"] { config.loginThrottle.maxFailures = Int(try int(x, min: 1, max: 1000)) }
            if let x = m["window"] { config.loginThrottle.window = try positive(duration(x), x) }
            if let x = m["lockout"] { config.loginThrottle.lockout = try positive(duration(x), x) }
        }
        return config
    }

    /// `forward_underscore_headers` and `forward_identity_family`, checked against the identity
    /// and stripped headers read before them.
    private func readHeaderExceptions(_ top: [String: ConfigValue], into config: inout GatehouseConfig) throws(ConfigError) {
        let own = Set((config.identityHeaders.all + config.stripHeaders).map(UpstreamHeaderPolicy.canonicalName))
        if let v = top["forward_underscore_headers"] {
            for item in try list(v) {
                let name = try headerName(item)
                guard name.contains("_") else { throw fail(item, "\(name) holds no _; it is forwarded anyway") }
                let folded = UpstreamHeaderPolicy.canonicalName(name)
                if UpstreamHeaderPolicy.readOrSet.contains(folded) || folded.hasPrefix("x-forwarded-") || own.contains(folded)
                    || IdentityHeaderFamily.contains(canonical: folded)
                {
                    throw fail(item, "\(name) reads as \(folded), a header Gatehouse reads or sets; it is never forwarded")
                }
                config.forwardUnderscoreHeaders.append(name)
            }
        }
        if let v = top["forward_identity_family"] {
            for item in try list(v) {
                let name = try headerName(item)
                let folded = UpstreamHeaderPolicy.canonicalName(name)
                guard IdentityHeaderFamily.contains(canonical: folded) else {
                    throw fail(item, "\(name) is not one of the identity headers Gatehouse removes; it is forwarded anyway")
                }
                guard !own.contains(folded) else { throw fail(item, "\(name) is one of identity_headers or strip_headers, which Gatehouse sets or removes") }
                guard !name.contains("_") || config.forwardUnderscoreHeaders.contains(where: { $0.lowercased() == name.lowercased() }) else {
                    throw fail(item, "\(name) holds _; name the - spelling (headers with _ are dropped unless forward_underscore_headers names them)")
                }
                config.forwardIdentityFamily.append(name)
            }
        }
    }

    private func listenerTLS(_ value: ConfigValue, listen: ListenAddress) throws(ConfigError) -> ListenerTLSSettings {
        let m = try mapping(value, known: ["cert_file", "key_file", "self_signed", "redirect_http", "https_port", "names"])
        let selfSigned = try m["self_signed"].map { v throws(ConfigError) in try bool(v) } ?? false
        let source: ListenerTLSSettings.CertificateSource
        switch (m["cert_file"], m["key_file"], selfSigned) {
        case (let c?, let k?, false):
            source = .files(certificate: try filePath(c), key: try filePath(k))
        case (nil, nil, true):
            // Resolved beside the store by ConfigLoader.load(path:).
            source = .selfSigned(directory: ".")
        case (_, _, true):
            throw fail(value, "set either cert_file and key_file, or self_signed: true, not both")
        case (nil, _, false), (_, nil, false):
            throw fail(value, "needs cert_file and key_file, or self_signed: true")
        }
        var settings = ListenerTLSSettings(certificate: source)
        if let r = m["redirect_http"] {
            guard let address = ListenAddress(parsing: try string(r)) else {
                throw fail(r, "expected host:port or [v6]:port, like 0.0.0.0:80")
            }
            guard address != listen || listen.port == 0 else { throw fail(r, "must differ from listen") }
            settings.redirectHTTP = address
        }
        if let p = m["https_port"] {
            guard settings.redirectHTTP != nil else { throw fail(p, "only means something with redirect_http") }
            settings.httpsPort = Int(try int(p, min: 1, max: 65535))
        }
        if let n = m["names"] {
            guard selfSigned else { throw fail(n, "only means something with self_signed: true (a certificate file names its own hosts)") }
            for item in try list(n) {
                let name = try string(item)
                guard IPAddress(name) != nil || DNSName.isValid(name) else { throw fail(item, "expected a host name or an IP address, like printer.lan or 192.168.1.50") }
                settings.selfSignedNames.append(name)
            }
        }
        return settings
    }

    private func upstreamTLS(_ value: ConfigValue) throws(ConfigError) -> UpstreamTLSSettings {
        let m = try mapping(value, known: ["ca_file", "insecure_skip_verify", "server_name"])
        var settings = UpstreamTLSSettings()
        if let x = m["ca_file"] { settings.caFile = try filePath(x) }
        if let x = m["insecure_skip_verify"] { settings.insecureSkipVerify = try bool(x) }
        if let x = m["server_name"] {
            let name = try string(x)
            guard DNSName.isValid(name) else { throw fail(x, "expected a DNS name, like printer.local") }
            settings.serverName = name
        }
        if settings.insecureSkipVerify && (settings.caFile != nil || settings.serverName != nil) {
            throw fail(value, "insecure_skip_verify checks nothing, so ca_file and server_name would be ignored; remove one or the other")
        }
        return settings
    }

    private func filePath(_ value: ConfigValue) throws(ConfigError) -> String {
        let path = try string(value)
        guard !path.isEmpty, !path.hasSuffix("/"), !path.utf8.contains(0) else { throw fail(value, "expected a file path") }
        return path
    }

    private func nonEmpty(_ value: ConfigValue) throws(ConfigError) -> String {
        let text = try string(value)
        guard !text.isEmpty, text.utf8.count <= 256 else { throw fail(value, "expected a non-empty text of at most 256 bytes") }
        return text
    }

    private func positive(_ d: ConfigDuration, _ value: ConfigValue) throws(ConfigError) -> ConfigDuration {
        guard d.seconds > 0 else { throw fail(value, "must be longer than 0") }
        return d
    }

    private func cors(_ value: ConfigValue) throws(ConfigError) -> CORSPolicy {
        let m = try mapping(value, known: ["allowed_origins", "paths", "max_age"])
        var origins: [String] = []
        for item in try m["allowed_origins"].map({ v throws(ConfigError) in try list(v) }) ?? [] {
            let text = try string(item)
            guard text == "*" || Self.isOrigin(text) else {
                throw fail(item, "expected an origin like https://app.example.com (scheme, host, optional port; no path) or *")
            }
            origins.append(text)
        }
        var paths: [String] = []
        for item in try m["paths"].map({ v throws(ConfigError) in try list(v) }) ?? [] {
            let text = try string(item)
            guard PathNormalizer.isNormal(text) else {
                throw fail(item, "expected a path prefix starting with / in normal form")
            }
            paths.append(text)
        }
        let maxAge = try m["max_age"].map { v throws(ConfigError) in try duration(v).seconds } ?? 600
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

    private func accessRules(_ value: ConfigValue) throws(ConfigError) -> [AccessRule] {
        var out: [AccessRule] = []
        for item in try list(value) {
            let m = try mapping(item, known: ["path", "prefix", "glob", "methods", "host", "case_insensitive", "access", "roles", "query_credentials"])
            let patterns = ["path", "prefix", "glob"].compactMap { key in m[key].map { (key, $0) } }
            guard patterns.count == 1, let (kind, patternValue) = patterns.first else {
                throw fail(item, "a rule needs exactly one of path (exact), prefix or glob")
            }
            let text = try string(patternValue)
            let pattern: PathPattern
            switch kind {
            case "glob":
                guard !text.contains("***"), PathNormalizer.isNormal(text) else {
                    throw fail(patternValue, "expected a path starting with / in normal form, with * (one segment) or ** (any depth)")
                }
                pattern = .glob(text)
            default:
                guard PathNormalizer.isNormal(text), !text.contains("*") else {
                    throw fail(patternValue, "expected a path starting with / in normal form (no dot segments, //, %2F or lower-case escapes)")
                }
                pattern = kind == "path" ? .exact(text) : .prefix(text)
            }
            let decision: AccessDecision
            switch (m["access"], m["roles"]) {
            case (let a?, nil):
                switch try string(a) {
                case "public": decision = .open
                case "authenticated": decision = .authenticated
                case "deny": decision = .deny
                default: throw fail(a, "expected public, authenticated or deny (or roles: [...] instead of access)")
                }
            case (nil, let r?):
                let roles = try names(r, what: "role")
                guard !roles.isEmpty else { throw fail(r, "name at least one role") }
                decision = .roles(roles)
            default:
                throw fail(item, "a rule needs exactly one of access (public, authenticated, deny) or roles")
            }
            var methods: Set<String>?
            if let v = m["methods"] {
                var set: Set<String> = []
                for method in try list(v) {
                    let text = try string(method)
                    guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D }) else {
                        throw fail(method, "expected an upper-case method name like GET")
                    }
                    set.insert(text)
                }
                guard !set.isEmpty else { throw fail(v, "name at least one method, or leave methods out for all") }
                methods = set
            }
            var host: String?
            if let v = m["host"] {
                let text = try string(v)
                guard !text.isEmpty, !text.contains(":"),
                    text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x2E })
                else {
                    throw fail(v, "expected a host name without port, like printer.local")
                }
                host = text
            }
            var query: Set<QueryCredential> = []
            if let v = m["query_credentials"] {
                for credential in try list(v) {
                    guard let c = QueryCredential(rawValue: try string(credential)) else {
                        throw fail(credential, "expected apikey (?token= one-shot tokens are accepted everywhere)")
                    }
                    query.insert(c)
                }
            }
            let caseInsensitive = try m["case_insensitive"].map { v throws(ConfigError) in try bool(v) } ?? false
            out.append(AccessRule(
                pattern: pattern, methods: methods, host: host, caseInsensitive: caseInsensitive, decision: decision,
                queryCredentials: query, line: item.line))
        }
        return out
    }

    private func apiKeys(_ value: ConfigValue) throws(ConfigError) -> [APIKeyRecord] {
        var out: [APIKeyRecord] = []
        var keyNames: Set<String> = []
        var digests: Set<SecretDigest> = []
        for item in try list(value) {
            let m = try mapping(item, known: ["name", "user", "roles", "hash", "read_only", "expires", "disabled"])
            guard let n = m["name"], let u = m["user"], let h = m["hash"] else {
                throw fail(item, "an API key needs name, user and hash")
            }
            let keyName = try name(n, what: "key name")
            guard keyNames.insert(keyName).inserted else { throw fail(n, "another key already has the name '\(keyName)'") }
            guard let digest = SecretDigest(parsing: try string(h)) else {
                throw fail(h, "expected sha256: and 64 hex digits (gatehouse key generate prints one; never put the key itself here)")
            }
            guard digests.insert(digest).inserted else { throw fail(h, "another key already has this hash") }
            var expires: Date?
            if let e = m["expires"], !e.isNull {
                guard let date = InternetDate.parse(try string(e)) else {
                    throw fail(e, "expected a date like 2027-01-31T00:00:00Z")
                }
                expires = date
            }
            out.append(
                APIKeyRecord(
                    name: keyName, user: try name(u, what: "user name"), roles: try names(m["roles"], what: "role"),
                    digest: digest, readOnly: try m["read_only"].map { v throws(ConfigError) in try bool(v) } ?? false,
                    expires: expires, disabled: try m["disabled"].map { v throws(ConfigError) in try bool(v) } ?? false))
        }
        return out
    }
}
