import Foundation

/// What Gatehouse would do with one request, said in lines for a person and as a verdict for a
/// program.
public struct RequestExplanation: Sendable {
    public enum Verdict: Sendable, Hashable {
        /// Gatehouse answers with this status (a refusal, or 302 to the sign-in page); the device sees nothing.
        case refused(status: Int, reason: String)
        /// Gatehouse answers itself (its own endpoints, a device path it claims, a CORS
        /// preflight); the device sees nothing.
        case answeredByGatehouse(String)
        /// Sent to the device as `uri` with these headers.
        case forwarded(uri: String, headers: [HeaderField])
    }

    public let lines: [String]
    public let verdict: Verdict
}

/// `gatehouse explain`: the decision `serve` would take on one request, sent nowhere.
///
/// Guarantees: it runs the very code `serve` runs — ``RequestHeadScanner`` (the head is written
/// out as it would arrive and scanned), ``AdmissionPolicy/admit(_:peer:)``,
/// ``RequestGate/decideFully(_:accounts:now:)``, ``LoginRedirect/redirects(_:method:_:signInServed:)``
/// and ``UpstreamHeaderPolicy`` — so the two cannot disagree; the test suite runs the security
/// suite's requests through both. Store lookups are read-only when the accounts given are
/// (no `last_used`, no session touch). The one thing it cannot know is in-memory state of a
/// running server: its one-shot tokens and lockout counters.
public struct RequestExplainer: Sendable {
    public let config: GatehouseConfig
    public let admission: AdmissionPolicy
    public let gate: RequestGate
    public let headerPolicy: UpstreamHeaderPolicy
    public let accounts: AccountService?

    /// The server whose decisions are explained; without a store behind it, only config-file
    /// credentials count and no sign-in page or own endpoint is served.
    public let storeBacked: Bool

    /// - Parameters:
    ///   - accounts: the store, read-only; nil when it cannot be opened (a credential that needs
    ///     it is then 503, as a running server would answer without its store).
    ///   - storeBacked: whether the server being explained has a store (`serve` always does).
    public init(config: GatehouseConfig, accounts: AccountService?, storeBacked: Bool? = nil) {
        let storeBacked = storeBacked ?? (accounts != nil)
        self.config = config
        self.accounts = accounts
        self.storeBacked = storeBacked
        self.admission = AdmissionPolicy(config: config, storeBacked: storeBacked)
        self.gate = RequestGate(config: config, storeBacked: storeBacked)
        self.headerPolicy = UpstreamHeaderPolicy(config: config)
    }

    public func explain(
        method: String, uri: String, version: (major: Int, minor: Int) = (1, 1), headers: [(name: String, value: String)],
        peer: IPAddress?, now: Date
    ) async -> RequestExplanation {
        var lines = ["request:    \(method) \(uri)"]
        func done(_ verdict: RequestExplanation.Verdict, _ line: String) -> RequestExplanation {
            RequestExplanation(lines: lines + ["decision:   " + line], verdict: verdict)
        }
        let head: RequestHead
        do throws(RequestHeadError) {
            guard version.major == 1 else { throw .unsupportedVersion }
            head = try RequestHead(method: method, uri: uri, versionMinor: version.minor, headers: headers)
        } catch {
            return done(.refused(status: error.status, reason: error.detail), "\(error.status) from Gatehouse — \(error.detail)")
        }
        let admitted = admission.admit(head, peer: peer)
        if let target = admitted.target, target.path != RequestTarget(uri).path {
            lines.append("normalized: \(target.path)  (what the rules see and the device would receive)")
        }
        switch admitted.outcome {
        case .refuse(let refusal):
            return done(.refused(status: refusal.status, reason: refusal.detail), "\(refusal.status) from Gatehouse — \(refusal.detail)")
        case .preflight:
            return done(.answeredByGatehouse("CORS preflight"), "answered by Gatehouse (a CORS preflight); never forwarded")
        case .healthz, .readyz:
            return done(.answeredByGatehouse("own endpoint"), "answered by Gatehouse's own endpoint; never forwarded")
        case .ownEndpoint, .deviceEndpoint:
            if let refusal = OwnEndpointGuard.refusal(
                method: method, path: admitted.target?.path ?? "", head: head, hasBody: head.hasBody,
                peerIsTrustedProxy: gate.clientAddresses.isTrustedProxy(peer), cors: config.cors)
            {
                return done(.refused(status: refusal.status, reason: refusal.detail), "\(refusal.status) from Gatehouse — \(refusal.detail)")
            }
            guard case .deviceEndpoint = admitted.outcome else {
                return done(.answeredByGatehouse("own endpoint"), "answered by Gatehouse's own endpoint; never forwarded")
            }
            let setting = (admitted.target?.path ?? "").hasPrefix(DevicePaths.appKeysPrefix) ? "octoprint_appkeys" : "moonraker_oneshot"
            return done(.answeredByGatehouse(setting), "answered by Gatehouse itself (\(setting)); never forwarded to the device")
        case .gate(let facts):
            lines.append(ruleLine(facts))
            let decision = await gate.decideFully(facts, accounts: accounts, now: now)
            switch decision {
            case .refuse(.storeUnavailable) where accounts == nil:
                return done(.refused(status: 503, reason: "store_unavailable"), "503 — the credential needs the store, which cannot be opened")
            case .refuse(let failure):
                if LoginRedirect.redirects(failure, method: method, head, signInServed: storeBacked) {
                    return done(.refused(status: 302, reason: failure.code), "302 to the sign-in page (\(failure.code) — \(failure.detail))")
                }
                return done(.refused(status: failure.status, reason: failure.code), "\(failure.status) \(failure.code) — \(failure.detail)")
            case .lookUp:
                return done(.refused(status: 503, reason: "store_unavailable"), "503 — the store did not answer")
            case .forward(let plan):
                if let identity = plan.identity {
                    let roles = identity.roles.isEmpty ? "no roles" : "roles \(identity.roles.joined(separator: ","))"
                    lines.append("identity:   \(identity.user) (\(roles)) by \(identity.method.rawValue) '\(identity.source)'\(identity.readOnly ? ", read-only" : "")")
                } else {
                    lines.append("identity:   none (public path)")
                }
                let target = headerPolicy.target(facts.target, plan: plan)
                let scheme = config.tls == nil ? "http" : "https"
                let csrf = config.octoPrintCSRF && DeviceCSRFPolicy.applies(to: plan, method: method) ? Self.deviceCSRFPlaceholder : nil
                var sent = headerPolicy.headers(
                    from: head, plan: plan, isWebSocketUpgrade: facts.isWebSocketUpgrade, scheme: scheme, peer: peer, deviceCSRFToken: csrf)
                if let framing = UpstreamHeaderPolicy.framing(of: head) { sent.append((name: framing.name, value: framing.value)) }
                for header in sent { lines.append("header:     \(header.name): \(header.value)") }
                return done(
                    .forwarded(uri: target.uri, headers: sent.map { HeaderField($0.name, $0.value) }),
                    "forward to \(config.upstream) as \(method) \(target.uri)")
            }
        }
    }

    /// Stands for OctoPrint's CSRF pair, which only the running server has (fetched from the device).
    public static let deviceCSRFPlaceholder = "(OctoPrint's CSRF pair, fetched from the device)"

    /// Which rule decides, and where it was written.
    private func ruleLine(_ facts: RequestFacts) -> String {
        let host = facts.head.value(.host)
        guard let (index, rule) = config.accessPolicy.rule(method: facts.method, host: host, path: facts.target.path) else {
            return "rule:       none matches → authenticated (the default)"
        }
        let origin: String
        if index < config.accessRules.count {
            origin = "access_rules #\(index + 1)\(rule.line.map { ", line \($0)" } ?? "")"
        } else if index < config.accessRules.count + config.publicPaths.count {
            origin = "public_paths"
        } else {
            origin = "preset \(config.preset?.rawValue ?? "")"
        }
        return "rule:       \(rule)  [\(origin)]"
    }
}
