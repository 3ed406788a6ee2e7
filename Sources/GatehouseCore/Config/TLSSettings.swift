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
