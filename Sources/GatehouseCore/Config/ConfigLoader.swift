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
        case .selfSigned(let directory)?:
            // Beside the store file unless self_signed_dir says where (a shared store has no file).
            config.tls?.certificate = .selfSigned(
                directory: directory.isEmpty ? URL(fileURLWithPath: config.storePath).deletingLastPathComponent().path : resolved(directory))
        case nil:
            break
        }
        config.upstreamTLS.caFile = config.upstreamTLS.caFile.map(resolved)
        if var shared = config.sharedStore {
            shared.passwordFile = shared.passwordFile.map(resolved)
            shared.caFile = shared.caFile.map(resolved)
            config.sharedStore = shared
        }
        if !config.jwt.secretFile.hasPrefix("/") {
            config.jwt.secretFile = directory.appendingPathComponent(config.jwt.secretFile).standardizedFileURL.path
        }
        return config
    }

    public static func parse(yaml: String, fileName: String = "config.yml") throws(ConfigError) -> GatehouseConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml, .basic)
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
        guard !text.isEmpty, text.utf8.count <= 128, text.utf8.allSatisfy(HTTPSyntax.isTokenByte) else {
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

    /// The whole file: each section is read by its own type (next to the type), in an order
    /// where a section that depends on another comes after it.
    func read(_ root: ConfigValue) throws(ConfigError) -> GatehouseConfig {
        let top = try mapping(root, known: Self.topLevelKeys)
        var config = GatehouseConfig()
        // First: a preset's values are defaults the rest of the file may override.
        if let v = top["preset"] { try DevicePreset.read(v, self).apply(to: &config) }
        if let v = top["listen"] { config.listen = try ListenAddress.read(v, self) }
        if let v = top["upstream"] { config.upstream = try UpstreamAddress.read(v, self) }
        if let v = top["tls"] { config.tls = try ListenerTLSSettings.read(v, listen: config.listen, self) }
        if let v = top["upstream_tls"] {
            config.upstreamTLS = try UpstreamTLSSettings.read(v, self)
            guard config.upstream.usesTLS else { throw fail(v, "is set, but upstream is not an https:// address") }
        }
        if let v = top["identity_headers"] { try config.identityHeaders.read(v, self) }
        if let v = top["strip_headers"] { config.stripHeaders = try list(v).map { item throws(ConfigError) in try headerName(item) } }
        if let v = top["forward_credentials"] { config.forwardCredentials = try bool(v) }
        if let v = top["query_api_key"] { config.queryAPIKey = try bool(v) }
        if let v = top["basic_auth"] { config.basicAuth = try bool(v) }
        if let v = top["octoprint_csrf"] { config.octoPrintCSRF = try bool(v) }
        if let v = top["octoprint_appkeys"] { config.octoPrintAppKeys = try bool(v) }
        if let v = top["moonraker_oneshot"] { config.moonrakerOneshot = try bool(v) }
        if let v = top["forward_client_address"] { config.forwardClientAddress = try bool(v) }
        if let v = top["access_log"] { config.accessLog = try bool(v) }
        if let v = top["audit_log"] { config.auditLog = try auditLog(v) }
        if let v = top["metrics"] { config.metricsRoles = try metricsRoles(v) ?? config.metricsRoles }
        if let v = top["log"] { config.logFormat = try logFormat(v) ?? config.logFormat }
        if let v = top["public_paths"] { config.publicPaths = try publicPaths(v) }
        if let v = top["access_rules"] { config.accessRules = try AccessRule.read(v, self) }
        if let v = top["cors"] { config.cors = try CORSPolicy.read(v, self) }
        if let v = top["api_keys"] { config.apiKeys = try APIKeyRecord.read(v, self) }
        if let v = top["trusted_networks"] { config.trustedNetworks = try list(v).map { item throws(ConfigError) in try TrustedNetwork.read(item, self) } }
        if let v = top["trusted_proxies"] { config.trustedProxies = try list(v).map { item throws(ConfigError) in try cidr(item) } }
        if let v = top["timeouts"] { try config.timeouts.read(v, self) }
        if let v = top["limits"] { try config.limits.read(v, self) }
        if let v = top["store"] { try readStore(v, into: &config) }
        if let v = top["passwords"] { try config.passwordPolicy.read(v, self) }
        if let v = top["sessions"] { try config.sessions.read(v, self) }
        if let v = top["jwt"] { try config.jwt.read(v, self) }
        if let v = top["methods_allowed"] { config.methodsAllowed = try MethodPolicy.readExtra(v, self) }
        // After identity_headers and strip_headers, which they are checked against.
        try readHeaderExceptions(top, into: &config)
        if let v = top["login"] { try config.loginThrottle.read(v, self) }
        return config
    }

    private func auditLog(_ value: ConfigValue) throws(ConfigError) -> String {
        let destination = try string(value)
        guard !destination.isEmpty, !destination.utf8.contains(0) else { throw fail(value, "expected stdout, off, or a file path") }
        return destination
    }

    /// `metrics.roles`; nil when `metrics:` does not give it.
    private func metricsRoles(_ value: ConfigValue) throws(ConfigError) -> [String]? {
        let m = try mapping(value, known: ["roles"])
        guard let r = m["roles"] else { return nil }
        var roles: [String] = []
        for item in try list(r) {
            let role = try string(item)
            guard Identity.isValidName(role) else { throw fail(item, "expected a role name (1-64 characters of A-Z a-z 0-9 . _ @ -)") }
            roles.append(role)
        }
        guard !roles.isEmpty else { throw fail(r, "name at least one role") }
        return roles
    }

    /// `log.format`; nil when `log:` does not give it.
    private func logFormat(_ value: ConfigValue) throws(ConfigError) -> GatehouseConfig.LogFormat? {
        let m = try mapping(value, known: ["format"])
        guard let f = m["format"] else { return nil }
        guard let format = GatehouseConfig.LogFormat(rawValue: try string(f)) else { throw fail(f, "expected text or json") }
        return format
    }

    private func publicPaths(_ value: ConfigValue) throws(ConfigError) -> [String] {
        var paths: [String] = []
        for item in try list(value) {
            let p = try string(item)
            // The same form as an access rule's prefix: what the rules match is normalized.
            guard PathNormalizer.isNormal(p) else {
                throw fail(item, "expected a path starting with / in normal form (no dot segments, //, %2F or lower-case escapes)")
            }
            paths.append(p)
        }
        return paths
    }

    /// `store:`: either `path` (an SQLite file) or `url` with its settings (PostgreSQL).
    private func readStore(_ value: ConfigValue, into config: inout GatehouseConfig) throws(ConfigError) {
        let shared = ["url", "password_file", "tls", "ca_file", "pool_size"]
        let m = try mapping(value, known: ["path"] + shared)
        if let x = m["path"] {
            if m["url"] != nil { throw fail(x, "give either path (an SQLite file) or url (PostgreSQL), not both") }
            let path = try string(x)
            guard !path.isEmpty, !path.hasSuffix("/") else { throw fail(x, "expected a file path, like ./gatehouse.db") }
            config.storePath = path
        }
        guard let url = m["url"] else {
            if let stray = shared.compactMap({ m[$0] }).first { throw fail(stray, "belongs to a PostgreSQL store: add url: postgres://…") }
            return
        }
        let text = try string(url)
        var settings: SharedStoreSettings
        do { settings = try SharedStoreSettings(url: text) } catch { throw fail(url, error.message) }
        if let x = m["password_file"] {
            let file = try string(x)
            guard !file.isEmpty else { throw fail(x, "expected a file path") }
            settings.passwordFile = file
        }
        if let x = m["tls"] {
            let text = try string(x)
            guard let mode = SharedStoreSettings.TLSMode(rawValue: text) else {
                throw fail(x, "expected one of \(SharedStoreSettings.TLSMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            settings.tls = mode
        }
        if let x = m["ca_file"] {
            guard settings.tls == .verifyFull else { throw fail(x, "a CA is only checked with tls: verify-full") }
            settings.caFile = try string(x)
        }
        if let x = m["pool_size"] { settings.poolSize = Int(try int(x, min: 1, max: 100)) }
        config.sharedStore = settings
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

    func filePath(_ value: ConfigValue) throws(ConfigError) -> String {
        let path = try string(value)
        guard !path.isEmpty, !path.hasSuffix("/"), !path.utf8.contains(0) else { throw fail(value, "expected a file path") }
        return path
    }

    func nonEmpty(_ value: ConfigValue) throws(ConfigError) -> String {
        let text = try string(value)
        guard !text.isEmpty, text.utf8.count <= 256 else { throw fail(value, "expected a non-empty text of at most 256 bytes") }
        return text
    }

    func positiveDuration(_ value: ConfigValue) throws(ConfigError) -> ConfigDuration {
        let d = try duration(value)
        guard d.seconds > 0 else { throw fail(value, "must be longer than 0") }
        return d
    }
}
