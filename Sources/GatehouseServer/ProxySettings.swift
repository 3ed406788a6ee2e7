import GatehouseCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Everything a connection needs from the configuration, derived once per config.
///
/// Guarantees: immutable and `Sendable` (a class: a request takes it with one reference, not
/// two dozen); a connection keeps the settings it started with even
/// if the server is later given new ones.
final class ProxySettings: Sendable {
    let gate: RequestGate
    /// What is decided from a request's head alone (the same sequence `gatehouse explain` runs).
    let admission: AdmissionPolicy
    let headerPolicy: UpstreamHeaderPolicy
    let limits: GatehouseConfig.Limits
    let upstreamResponseTimeout: TimeAmount
    let cors: CORSPolicy
    /// How often a WebSocket tunnel's credential is asked again.
    let tunnelRecheck: TimeAmount
    let accessLog: Bool
    /// Device paths Gatehouse answers itself (`moonraker_oneshot`, `octoprint_appkeys`).
    let devicePaths: DevicePaths
    /// `https` when Gatehouse terminates TLS itself, else `http` (`X-Forwarded-Proto`, `Secure` cookies).
    let clientScheme: String
    let logger: Logger
    /// The sign-in page and JSON API; nil without a store (then only `healthz` is served).
    let endpoints: OwnEndpoints?
    /// Counters behind `/_gatehouse/metrics` (shared by every settings of one server); nil in handler tests.
    let metrics: GatehouseMetrics?
    /// OctoPrint's CSRF pair for header-authenticated requests; nil unless `octoprint_csrf`.
    let octoPrintCSRF: OctoPrintCSRFToken?
    /// What `GET /_gatehouse/readyz` checks.
    let readiness: ReadinessProbe
    /// Looks up stored credentials and passwords; nil without a store.
    let accounts: AccountService?
    var credentials: StoredCredentialAuthenticator? { accounts?.credentials }

    init(
        config: GatehouseConfig, logger: Logger, accounts: AccountService? = nil, octoPrintCSRF: OctoPrintCSRFToken? = nil,
        metrics: GatehouseMetrics? = nil, upstream: UpstreamConnector, appKeys: (any AppKeyRequestBook)? = nil
    ) {
        self.metrics = metrics
        self.octoPrintCSRF = config.octoPrintCSRF ? octoPrintCSRF : nil
        let gate = RequestGate(config: config, storeBacked: accounts != nil)
        self.gate = gate
        let devicePaths = DevicePaths(moonrakerOneshot: config.moonrakerOneshot, octoPrintAppKeys: config.octoPrintAppKeys)
        self.devicePaths = accounts == nil ? DevicePaths(moonrakerOneshot: false, octoPrintAppKeys: false) : devicePaths
        self.endpoints = accounts.map {
            OwnEndpoints(
                accounts: $0, gate: gate, metrics: metrics, metricsRoles: config.metricsRoles, devicePaths: devicePaths, appKeys: appKeys,
                cors: config.cors)
        }
        self.accounts = accounts
        // The connector the server made at start (the upstream is start-bound).
        self.readiness = ReadinessProbe(upstream: upstream, credentials: accounts?.credentials)
        self.clientScheme = config.tls == nil ? "http" : "https"
        self.headerPolicy = UpstreamHeaderPolicy(config: config)
        self.admission = AdmissionPolicy(config: config, storeBacked: accounts != nil)
        self.limits = config.limits
        self.upstreamResponseTimeout = .seconds(config.timeouts.upstreamResponse.seconds)
        self.tunnelRecheck = .seconds(config.timeouts.tunnelRecheck.seconds)
        self.cors = config.cors
        self.accessLog = config.accessLog
        self.logger = logger
    }
}

/// The settings new requests are decided with; replaced as a whole when the config is reloaded.
///
/// Guarantees: a request reads the settings once, when its head arrives, and is decided,
/// forwarded and logged under them to its end; the request after it on the same connection
/// reads them again, so a key removed from the file stops working on kept-alive connections too.
final class SettingsSource: Sendable {
    private let box: NIOLockedValueBox<ProxySettings>
    init(_ settings: ProxySettings) { box = NIOLockedValueBox(settings) }
    var current: ProxySettings { box.withLockedValue { $0 } }
    func replace(with settings: ProxySettings) { box.withLockedValue { $0 = settings } }
}
