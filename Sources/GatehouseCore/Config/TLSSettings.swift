/// `tls:` — HTTPS on Gatehouse's own listener.
///
/// Guarantees: exactly one certificate source (files, or a self-signed certificate Gatehouse
/// makes once and keeps beside the store); a redirect listener, when set, never forwards
/// anything — it only answers with a redirect to the HTTPS listener.
public struct ListenerTLSSettings: Sendable, Hashable {
    public enum CertificateSource: Sendable, Hashable {
        /// `cert_file` (PEM, the leaf first, then any intermediates) and `key_file` (PEM).
        case files(certificate: String, key: String)
        /// `self_signed: true`: made on first start, kept in `directory`, reused afterwards.
        case selfSigned(directory: String)
    }

    public var certificate: CertificateSource
    /// `redirect_http`: a plain-HTTP listener that answers every request with a redirect to HTTPS.
    public var redirectHTTP: ListenAddress?
    /// `https_port`: the port clients reach HTTPS on, for the redirect's `Location`, when it is
    /// not the listen port (a container publishing 8443 for its 8080); nil: the listen port.
    public var httpsPort: Int?
    /// `names`: more DNS names or IP addresses for a self-signed certificate (`printer.lan`,
    /// `192.168.1.50`), beside localhost, the host name and the loopback addresses.
    public var selfSignedNames: [String] = []

    public init(certificate: CertificateSource, redirectHTTP: ListenAddress? = nil, httpsPort: Int? = nil, selfSignedNames: [String] = []) {
        self.certificate = certificate
        self.redirectHTTP = redirectHTTP
        self.httpsPort = httpsPort
        self.selfSignedNames = selfSignedNames
    }
}

/// `upstream_tls:` — how an `https://` upstream's certificate is checked.
///
/// Guarantees: verification (chain to a trusted CA, and the upstream's host name or IP) is on
/// unless `insecure_skip_verify` is set explicitly; `ca_file` replaces the system's trust roots.
public struct UpstreamTLSSettings: Sendable, Hashable {
    /// PEM file of the CAs to trust instead of the system's.
    public var caFile: String?
    /// Accept any certificate (a self-signed device); logged as a warning at start.
    public var insecureSkipVerify: Bool
    /// The name to send as SNI and to check the certificate against, when it differs from the
    /// upstream's host (e.g. an IP upstream with a certificate for `printer.local`).
    public var serverName: String?

    public init(caFile: String? = nil, insecureSkipVerify: Bool = false, serverName: String? = nil) {
        self.caFile = caFile
        self.insecureSkipVerify = insecureSkipVerify
        self.serverName = serverName
    }

    public var isDefault: Bool { self == UpstreamTLSSettings() }
}

extension ListenerTLSSettings {
    /// `tls:`; `listen` is the address the redirect listener must differ from.
    static func read(_ value: ConfigValue, listen: ListenAddress, _ reader: ConfigReader) throws(ConfigError) -> ListenerTLSSettings {
        let m = try reader.mapping(value, known: ["cert_file", "key_file", "self_signed", "self_signed_dir", "redirect_http", "https_port", "names"])
        let selfSigned = try m["self_signed"].map { v throws(ConfigError) in try reader.bool(v) } ?? false
        let source: ListenerTLSSettings.CertificateSource
        switch (m["cert_file"], m["key_file"], selfSigned) {
        case (let c?, let k?, false):
            source = .files(certificate: try reader.filePath(c), key: try reader.filePath(k))
        case (nil, nil, true):
            // Without self_signed_dir: resolved beside the store file by ConfigLoader.load(path:).
            source = .selfSigned(directory: try m["self_signed_dir"].map { v throws(ConfigError) in try reader.filePath(v) } ?? "")
        case (_, _, true):
            throw reader.fail(value, "set either cert_file and key_file, or self_signed: true, not both")
        case (nil, _, false), (_, nil, false):
            throw reader.fail(value, "needs cert_file and key_file, or self_signed: true")
        }
        var settings = ListenerTLSSettings(certificate: source)
        if let r = m["redirect_http"] {
            guard let address = ListenAddress(parsing: try reader.string(r)) else {
                throw reader.fail(r, "expected host:port or [v6]:port, like 0.0.0.0:80")
            }
            guard address != listen || listen.port == 0 else { throw reader.fail(r, "must differ from listen") }
            settings.redirectHTTP = address
        }
        if let p = m["https_port"] {
            guard settings.redirectHTTP != nil else { throw reader.fail(p, "only means something with redirect_http") }
            settings.httpsPort = Int(try reader.int(p, min: 1, max: 65535))
        }
        if let d = m["self_signed_dir"], !selfSigned { throw reader.fail(d, "only means something with self_signed: true") }
        if let n = m["names"] {
            guard selfSigned else { throw reader.fail(n, "only means something with self_signed: true (a certificate file names its own hosts)") }
            for item in try reader.list(n) {
                let name = try reader.string(item)
                guard IPAddress(name) != nil || DNSName.isValid(name) else { throw reader.fail(item, "expected a host name or an IP address, like printer.lan or 192.168.1.50") }
                settings.selfSignedNames.append(name)
            }
        }
        return settings
    }

}

extension UpstreamTLSSettings {
    /// `upstream_tls:`.
    static func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> UpstreamTLSSettings {
        let m = try reader.mapping(value, known: ["ca_file", "insecure_skip_verify", "server_name"])
        var settings = UpstreamTLSSettings()
        if let x = m["ca_file"] { settings.caFile = try reader.filePath(x) }
        if let x = m["insecure_skip_verify"] { settings.insecureSkipVerify = try reader.bool(x) }
        if let x = m["server_name"] {
            let name = try reader.string(x)
            guard DNSName.isValid(name) else { throw reader.fail(x, "expected a DNS name, like printer.local") }
            settings.serverName = name
        }
        if settings.insecureSkipVerify && (settings.caFile != nil || settings.serverName != nil) {
            throw reader.fail(value, "insecure_skip_verify checks nothing, so ca_file and server_name would be ignored; remove one or the other")
        }
        return settings
    }
}
