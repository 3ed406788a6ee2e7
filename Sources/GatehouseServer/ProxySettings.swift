import GatehouseCore
import Logging
import NIOCore

/// Everything a connection needs from the configuration, derived once per config.
///
/// Guarantees: immutable and `Sendable`; a connection keeps the settings it started with even
/// if the server is later given new ones.
struct ProxySettings: Sendable {
    let gate: RequestGate
    let headerPolicy: UpstreamHeaderPolicy
    let limits: GatehouseConfig.Limits
    let upstreamResponseTimeout: TimeAmount
    let accessLog: Bool
    let logger: Logger

    init(config: GatehouseConfig, logger: Logger) {
        self.gate = RequestGate(config: config)
        self.headerPolicy = UpstreamHeaderPolicy(
            identityHeaders: config.identityHeaders, stripHeaders: config.stripHeaders,
            forwardCredentials: config.forwardCredentials)
        self.limits = config.limits
        self.upstreamResponseTimeout = .seconds(config.timeouts.upstreamResponse.seconds)
        self.accessLog = config.accessLog
        self.logger = logger
    }
}
