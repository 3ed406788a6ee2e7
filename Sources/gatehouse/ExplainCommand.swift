import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseServer
import GatehouseStore

/// `gatehouse explain`: what Gatehouse would do with one request, sent nowhere.
struct Explain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which credential, access rule and decision a request would get, without sending anything.",
        discussion: """
            Example: gatehouse explain --config config.yml GET '/api/files/local?apikey=…' --header 'X-Api-Key: …' --from 192.168.1.20
            Credentials kept in the store (sessions, tokens, run-time keys) are looked up read-only when the store exists.
            """)

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String = "config.yml"

    @Option(name: .long, help: "A request header, as 'Name: value' (repeat for more).")
    var header: [String] = []

    @Option(name: .long, help: "The client address the request comes from (default 127.0.0.1).")
    var from: String = "127.0.0.1"

    @Argument(help: "The request method, like GET.")
    var method: String

    @Argument(help: "The request target: a path with an optional query, like /api/job?x=1.")
    var url: String

    func run() async throws {
        let cfg = try loadConfig(config)
        guard let peer = IPAddress(from) else { throw ValidationError("--from: expected an IPv4 or IPv6 address") }
        var headers: [(name: String, value: String)] = []
        for line in header {
            guard let colon = line.firstIndex(of: ":"), !line[..<colon].isEmpty else {
                throw ValidationError("--header: expected 'Name: value', got '\(line.prefix(40))'")
            }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
        if !headers.contains(where: { $0.name.lowercased() == "host" }) { headers.append(("Host", "\(cfg.listen.host)")) }
        let method = self.method.uppercased()
        let received = RequestTarget(url)
        print("request:    \(method) \(url)")
        let target: RequestTarget
        switch PathNormalizer.normalize(received.path) {
        case .failure(let refusal):
            print("decision:   400 Bad Request — the request path is refused: \(refusal)")
            return
        case .success(let path):
            target = RequestTarget(path: path, query: received.query)
            if path != received.path { print("normalized: \(path)  (what the rules see and the device would receive)") }
        }
        let host = headers.first { $0.name.lowercased() == "host" }?.value
        let rules = cfg.accessPolicy
        if let (index, rule) = rules.rule(method: method, host: host, path: target.path) {
            let origin: String
            if index < cfg.accessRules.count {
                origin = "access_rules #\(index + 1)\(rule.line.map { ", line \($0)" } ?? "")"
            } else if index < cfg.accessRules.count + cfg.publicPaths.count {
                origin = "public_paths"
            } else {
                origin = "preset \(cfg.preset?.rawValue ?? "")"
            }
            print("rule:       \(rule)  [\(origin)]")
        } else {
            print("rule:       none matches → authenticated (the default)")
        }
        let devicePaths = DevicePaths(moonrakerOneshot: cfg.moonrakerOneshot, octoPrintAppKeys: cfg.octoPrintAppKeys)
        if devicePaths.claims(target.path) {
            if headers.contains(where: { $0.name.lowercased() == "upgrade" }) {
                return print("decision:   400 Bad Request from Gatehouse — a device path Gatehouse answers itself is not a WebSocket endpoint; never forwarded")
            }
            if rules.decide(method: method, host: host, path: target.path).decision != .deny {
                let setting = target.path.hasPrefix(DevicePaths.appKeysPrefix) ? "octoprint_appkeys" : "moonraker_oneshot"
                return print("decision:   answered by Gatehouse itself (\(setting)); never forwarded to the device")
            }
        }

        let accounts = try? explainAccounts(cfg)
        let gate = RequestGate(config: cfg, storeBacked: accounts != nil)
        let facts = RequestFacts(method: method, target: target, headers: headers, peer: peer)
        var decision = gate.decide(facts, now: Date())
        if case .lookUp(let pending) = decision {
            guard let accounts else { return print("decision:   503 — the credential needs the store, which cannot be opened") }
            print("credential: looked up in the store (\(pending.kind))")
            decision = gate.complete(pending, with: await accounts.identify(pending, now: Date()))
        }
        switch decision {
        case .refuse(let failure):
            print("decision:   \(failure.status) \(failure.code) — \(failure.detail)")
        case .forward(let plan):
            if let identity = plan.identity {
                let roles = identity.roles.isEmpty ? "no roles" : "roles \(identity.roles.joined(separator: ","))"
                print("identity:   \(identity.user) (\(roles)) by \(identity.method.rawValue) '\(identity.source)'\(identity.readOnly ? ", read-only" : "")")
            } else {
                print("identity:   none (public path)")
            }
            let policy = UpstreamHeaderPolicy(
                identityHeaders: cfg.identityHeaders, stripHeaders: cfg.stripHeaders, forwardCredentials: cfg.forwardCredentials)
            let upstream = policy.target(target, plan: plan)
            print("decision:   forward to \(cfg.upstream) as \(method) \(upstream.uri)")
        case .lookUp:
            print("decision:   503 — the store did not answer")
        }
    }

    /// Read-only access to the store, when it exists: a missing store is never created here, and
    /// no bookkeeping (a key's `last_used`, a session's last use) is written.
    private func explainAccounts(_ cfg: GatehouseConfig) throws -> AccountService? {
        guard FileManager.default.fileExists(atPath: cfg.storePath), FileManager.default.fileExists(atPath: cfg.jwt.secretFile) else {
            return nil
        }
        return try makeAccounts(cfg, store: try SQLiteStore(path: cfg.storePath), executor: InlineStoreExecutor(), recordUse: false)
    }
}
