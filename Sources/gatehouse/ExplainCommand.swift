import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseServer

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
        let accounts = try? await explainAccounts(cfg)
        let explanation = await RequestExplainer(config: cfg, accounts: accounts, storeBacked: true).explain(
            method: method, uri: url, headers: headers, peer: peer, now: Date())
        for line in explanation.lines { print(line) }
    }

    /// Read-only access to the store, when it exists: a missing store file is never created here,
    /// and no bookkeeping (a key's `last_used`, a session's last use) is written.
    private func explainAccounts(_ cfg: GatehouseConfig) async throws -> AccountService? {
        guard cfg.sharedStore != nil || FileManager.default.fileExists(atPath: cfg.storePath),
            FileManager.default.fileExists(atPath: cfg.jwt.secretFile)
        else {
            return nil
        }
        return try makeAccounts(cfg, store: try await ConfiguredStore.open(cfg), recordUse: false)
    }
}
