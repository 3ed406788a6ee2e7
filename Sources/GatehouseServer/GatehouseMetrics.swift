import GatehouseCore
import NIOConcurrencyHelpers
import NIOCore

/// Counters of one event loop, touched only on that loop: no lock, no atomic, an array index
/// and an add per request.
final class LoopMetrics {
    /// One counter per (status class, auth method), at `statusIndex * authMethods.count + authIndex`.
    var requests = [Int](repeating: 0, count: GatehouseMetrics.statusClasses.count * GatehouseMetrics.authMethods.count)
    /// By ``AuthenticationFailure/code`` (a fixed set of names).
    var failures: [String: Int] = [:]
    /// Upstream response-head latency: counts per bucket of ``GatehouseMetrics/latencyBuckets`` (and +Inf last).
    var latency = [Int](repeating: 0, count: GatehouseMetrics.latencyBuckets.count + 1)
    var latencySum = 0.0
    var openConnections = 0
    var openTunnels = 0
    var droppedUnderscoreHeaders = 0

    /// Counts one finished request; `failure` when Gatehouse refused it.
    func request(status: Int, auth: AuthenticationMethod?, failure: AuthenticationFailure?) {
        let statusIndex = min(max(status / 100, 1), 5) - 1
        let authIndex = GatehouseMetrics.authMethods.firstIndex(of: auth) ?? 0
        requests[statusIndex * GatehouseMetrics.authMethods.count + authIndex] += 1
        if let failure { failures[failure.code, default: 0] += 1 }
    }

    func upstreamResponded(after nanoseconds: Int64) {
        let seconds = Double(nanoseconds) / 1e9
        latencySum += seconds
        let index = GatehouseMetrics.latencyBuckets.firstIndex { seconds <= $0 } ?? GatehouseMetrics.latencyBuckets.count
        latency[index] += 1
    }

    fileprivate func snapshot() -> Snapshot {
        Snapshot(
            requests: requests, failures: failures, latency: latency, latencySum: latencySum, openConnections: openConnections,
            openTunnels: openTunnels, droppedUnderscoreHeaders: droppedUnderscoreHeaders)
    }

    struct Snapshot: Sendable {
        var requests: [Int]
        var failures: [String: Int]
        var latency: [Int]
        var latencySum: Double
        var openConnections: Int
        var openTunnels: Int
        var droppedUnderscoreHeaders: Int
    }
}

/// What `GET /_gatehouse/metrics` reports, in Prometheus text format: requests by status class
/// and authentication method, refusals by reason, the upstream's response-head latency, open
/// connections and tunnels, lockouts started, request headers dropped for a `_` in their name.
///
/// Guarantees: each event loop counts in its own ``LoopMetrics`` (no shared lock or atomic on the
/// request path); a scrape asks every loop for a snapshot on that loop and adds them up, so the
/// numbers are exact per loop at the moment each was asked. Nothing is global: several servers
/// in one process (the tests) keep separate counts. Label values come from fixed sets (status
/// classes, ``AuthenticationMethod``, ``AuthenticationFailure/code``), never from what a client
/// sent, so the number of series is bounded.
final class GatehouseMetrics: Sendable {
    static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"]
    /// `nil` (anonymous) first, then every method.
    static let authMethods: [AuthenticationMethod?] = [nil] + AuthenticationMethod.allCases
    /// Upper bounds (seconds) of the latency histogram's buckets.
    static let latencyBuckets: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    private struct Registered: Sendable {
        let eventLoop: EventLoop
        /// Only touched on `eventLoop` (read there by `render`).
        let counters: NIOLoopBound<LoopMetrics>
    }

    private let loops = NIOLockedValueBox<[Registered]>([])
    /// When a dropped `_` header was last logged (at most once a minute).
    private let underscoreLogged = NIOLockedValueBox<NIODeadline?>(nil)

    init() {}

    /// The counters of `eventLoop` (made on first use; only ever touched on that loop).
    func counters(on eventLoop: EventLoop) -> LoopMetrics {
        loops.withLockedValue { loops in
            if let found = loops.first(where: { $0.eventLoop === eventLoop }) { return found.counters.value }
            let made = LoopMetrics()
            loops.append(Registered(eventLoop: eventLoop, counters: NIOLoopBound(made, eventLoop: eventLoop)))
            return made
        }
    }

    /// Whether a dropped `_` header should be logged now (the first time, then at most once a minute).
    func shouldLogDroppedHeader() -> Bool {
        let now = NIODeadline.now()
        return underscoreLogged.withLockedValue { last in
            if let previous = last, now - previous < .seconds(60) { return false }
            last = now
            return true
        }
    }

    /// Every loop's counters added up, in Prometheus text format; `lockoutsStarted` is read from the login throttle.
    func render(lockoutsStarted: Int) async -> [UInt8] {
        let registered = loops.withLockedValue { $0 }
        var total = LoopMetrics.Snapshot(
            requests: [Int](repeating: 0, count: Self.statusClasses.count * Self.authMethods.count), failures: [:],
            latency: [Int](repeating: 0, count: Self.latencyBuckets.count + 1), latencySum: 0, openConnections: 0, openTunnels: 0,
            droppedUnderscoreHeaders: 0)
        for loop in registered {
            let counters = loop.counters
            guard let part = try? await loop.eventLoop.submit({ counters.value.snapshot() }).get() else { continue }
            for i in total.requests.indices { total.requests[i] += part.requests[i] }
            for (code, n) in part.failures { total.failures[code, default: 0] += n }
            for i in total.latency.indices { total.latency[i] += part.latency[i] }
            total.latencySum += part.latencySum
            total.openConnections += part.openConnections
            total.openTunnels += part.openTunnels
            total.droppedUnderscoreHeaders += part.droppedUnderscoreHeaders
        }
        return Array(Self.text(total, lockoutsStarted: lockoutsStarted).utf8)
    }

    private static func text(_ s: LoopMetrics.Snapshot, lockoutsStarted: Int) -> String {
        var out = "# TYPE gatehouse_requests_total counter\n"
        for (si, status) in statusClasses.enumerated() {
            for (ai, auth) in authMethods.enumerated() {
                out += "gatehouse_requests_total{status_class=\"\(status)\",auth=\"\(auth?.rawValue ?? "none")\"} \(s.requests[si * authMethods.count + ai])\n"
            }
        }
        out += "# TYPE gatehouse_auth_failures_total counter\n"
        for (code, n) in s.failures.sorted(by: { $0.key < $1.key }) {
            out += "gatehouse_auth_failures_total{reason=\"\(code)\"} \(n)\n"
        }
        out += "# TYPE gatehouse_upstream_response_seconds histogram\n"
        var cumulative = 0
        for (i, bound) in latencyBuckets.enumerated() {
            cumulative += s.latency[i]
            out += "gatehouse_upstream_response_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += s.latency[latencyBuckets.count]
        out += "gatehouse_upstream_response_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
        out += "gatehouse_upstream_response_seconds_sum \(s.latencySum)\n"
        out += "gatehouse_upstream_response_seconds_count \(cumulative)\n"
        out += "# TYPE gatehouse_open_connections gauge\ngatehouse_open_connections \(s.openConnections)\n"
        out += "# TYPE gatehouse_open_tunnels gauge\ngatehouse_open_tunnels \(s.openTunnels)\n"
        out += "# TYPE gatehouse_lockouts_started gauge\ngatehouse_lockouts_started \(lockoutsStarted)\n"
        out += "# TYPE gatehouse_dropped_headers_total counter\ngatehouse_dropped_headers_total{reason=\"underscore\"} \(s.droppedUnderscoreHeaders)\n"
        return out
    }
}
