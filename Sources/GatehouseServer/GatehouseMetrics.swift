import CoreMetrics
import GatehouseCore
import NIOConcurrencyHelpers
import NIOCore
import Prometheus

/// What `GET /_gatehouse/metrics` reports, in Prometheus text format: requests by status class
/// and authentication method, refusals by reason, the upstream's response-head latency, open
/// connections and tunnels, lockouts started, request headers dropped for a `_` in their name.
///
/// Guarantees: metrics are created through swift-metrics with a factory over this instance's
/// own Prometheus registry — nothing is bootstrapped globally, so several servers in one process
/// (the tests) keep separate counts. Label values come from fixed sets (status classes,
/// ``AuthenticationMethod``, ``AuthenticationFailure/code``), never from what a client sent, so
/// the number of series is bounded. The request path's cost is an array index and an atomic add
/// (no string is built per request).
final class GatehouseMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    /// One counter per (status class, auth method), at `statusIndex * authMethods.count + authIndex`.
    private let requests: [CoreMetrics.Counter]
    private let failures = NIOLockedValueBox<[String: CoreMetrics.Counter]>([:])
    private let upstreamLatency: CoreMetrics.Timer
    let openConnections: Meter
    let openTunnels: Meter
    private let lockouts: Meter
    /// Request headers not forwarded because their name holds `_` (`forward_underscore_headers`).
    private let underscoreHeaders: CoreMetrics.Counter
    /// When a dropped `_` header was last logged (at most once a minute).
    private let underscoreLogged = NIOLockedValueBox<NIODeadline?>(nil)

    static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"]
    /// `nil` (anonymous) first, then every method.
    static let authMethods: [AuthenticationMethod?] = [nil] + AuthenticationMethod.allCases

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        self.factory = factory
        requests = Self.statusClasses.flatMap { status in
            Self.authMethods.map { auth in
                CoreMetrics.Counter(
                    label: "gatehouse_requests_total", dimensions: [("status_class", status), ("auth", auth?.rawValue ?? "none")],
                    factory: factory)
            }
        }
        upstreamLatency = CoreMetrics.Timer(label: "gatehouse_upstream_response_seconds", factory: factory)
        openConnections = Meter(label: "gatehouse_open_connections", factory: factory)
        openTunnels = Meter(label: "gatehouse_open_tunnels", factory: factory)
        lockouts = Meter(label: "gatehouse_lockouts_started", factory: factory)
        underscoreHeaders = CoreMetrics.Counter(label: "gatehouse_dropped_headers_total", dimensions: [("reason", "underscore")], factory: factory)
    }

    /// Counts `count` request headers dropped for a `_` in their name; true when the caller
    /// should log it (the first time, then at most once a minute).
    func droppedUnderscoreHeaders(_ count: Int) -> Bool {
        underscoreHeaders.increment(by: Int64(count))
        let now = NIODeadline.now()
        return underscoreLogged.withLockedValue { last in
            if let previous = last, now - previous < .seconds(60) { return false }
            last = now
            return true
        }
    }

    /// Counts one finished request; `failure` when Gatehouse refused it.
    func request(status: Int, auth: AuthenticationMethod?, failure: AuthenticationFailure?) {
        let statusIndex = min(max(status / 100, 1), 5) - 1
        let authIndex = Self.authMethods.firstIndex(of: auth) ?? 0
        requests[statusIndex * Self.authMethods.count + authIndex].increment()
        if let failure {
            let code = failure.code
            let counter = failures.withLockedValue { table in
                if let existing = table[code] { return existing }
                let made = CoreMetrics.Counter(label: "gatehouse_auth_failures_total", dimensions: [("reason", code)], factory: factory)
                table[code] = made
                return made
            }
            counter.increment()
        }
    }

    func upstreamResponded(after nanoseconds: Int64) { upstreamLatency.recordNanoseconds(nanoseconds) }

    /// The registry in Prometheus text format; `lockoutsStarted` is read from the login throttle.
    func render(lockoutsStarted: Int) -> [UInt8] {
        lockouts.set(Double(lockoutsStarted))
        return registry.emitToBuffer()
    }
}
