import ArgumentParser
import CGatehouseMemory
import Foundation
import GatehouseCore
import GatehouseServer
import GatehouseStore
import Logging
import NIOCore
import NIOPosix

@main
struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "An authentication sidecar: lets through to a device only the requests it can attribute to someone.",
        subcommands: [Serve.self, Demo.self, CheckConfig.self, Health.self, Explain.self, Key.self, UserCommand.self, TokenCommand.self, SessionCommand.self, StoreCommand.self]
    )
}

/// `gatehouse health`: exit 0 when the running Gatehouse answers `healthz` (or `readyz`) with 200.
struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the Gatehouse running with this config whether it serves (for container health checks).")

    @Option(name: .long, help: "The configuration file the running Gatehouse uses.")
    var config: String = "config.yml"

    @Flag(name: .long, help: "Ask readyz (the upstream and the store answer) instead of healthz (the process serves).")
    var ready = false

    func run() async throws {
        let cfg = try loadConfig(config)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let path = ready ? "/_gatehouse/readyz" : "/_gatehouse/healthz"
        let outcome: Result<Int, Error>
        do {
            outcome = .success(try await LocalHealthProbe.status(of: path, config: cfg, group: group))
        } catch {
            outcome = .failure(error)
        }
        try? await group.shutdownGracefully()
        switch outcome {
        case .success(200): print("\(path): 200")
        case .success(let status): throw CommandFailure("\(path) answered \(status)")
        case .failure(let error): throw CommandFailure("\(cfg.listen) did not answer \(path): \(error)")
        }
    }
}

/// Logs to stdout, one line per event: text, or one JSON object per line (`log.format: json`).
func makeLogger(format: GatehouseConfig.LogFormat = .text) -> Logger {
    LoggingSystem.bootstrap { label in
        switch format {
        case .text:
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = .info
            return handler
        case .json:
            return JSONLogHandler(label: label)
        }
    }
    return Logger(label: "gatehouse")
}

/// Opens `audit_log` (nil for `off`); a file that cannot be opened stops the command.
func openAuditLog(_ config: GatehouseConfig) throws -> AuditLog? {
    do { return try AuditLog.named(config.auditLog) } catch { throw CommandFailure(error.description) }
}

func loadConfig(_ path: String) throws -> GatehouseConfig {
    do {
        return try ConfigLoader.load(path: path)
    } catch {
        throw ValidationError(error.description)
    }
}

/// SIGTERM, SIGINT and (for a config file) SIGHUP, caught from the moment this is made: a
/// signal that arrives while Gatehouse is still starting waits here instead of killing the process
/// (SIGHUP's default action) or skipping the drain (SIGTERM's).
final class SignalInbox {
    let signals: AsyncStream<Int32>
    private let sources: [DispatchSourceSignal]

    init(reload: Bool) {
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        self.signals = signals
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] + (reload ? [SIGHUP] : []) {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func cancel() { for source in sources { source.cancel() } }
}

/// Runs a server until SIGTERM or SIGINT, then drains and returns. With `configPath`, SIGHUP
/// reads that file again: a valid config is applied to new requests (settings that need a
/// restart are named in the log and kept); an invalid one is logged with its line and key, and
/// the running config stays. `inbox` should be made before anything slow, so no signal is lost
/// while starting. Access-log lines go to stdout in batches written off the event loops, in the
/// format of the other log lines, and are all written before this returns.
func runUntilSignalled(
    config: GatehouseConfig, logger: Logger, group: MultiThreadedEventLoopGroup, accounts: AccountService? = nil,
    configPath: String? = nil, inbox: SignalInbox? = nil
) async throws {
    let inbox = inbox ?? SignalInbox(reload: configPath != nil)
    defer { inbox.cancel() }
    let accessLog = AccessLogWriter(format: config.logFormat == .json ? .json : .text)
    defer { accessLog.drain() }
    let server = try await GatehouseServer.start(config: config, group: group, logger: logger, accounts: accounts, accessLog: accessLog)
    var drain = config.timeouts.drain
    for await sig in inbox.signals {
        if sig == SIGHUP, let configPath {
            do {
                let fresh = try ConfigLoader.load(path: configPath)
                for line in ShadowedRuleReport(config: fresh).lines { logger.warning("\(line)") }
                let kept = try server.reload(config: fresh)
                for line in kept { logger.warning("reload: \(line)") }
                drain = fresh.timeouts.drain
                accounts?.audit?.record(.configReloaded, actor: "SIGHUP", name: configPath, reason: kept.isEmpty ? nil : kept.joined(separator: "; "), at: Date())
                logger.notice("reloaded \(configPath): applied to new requests")
            } catch {
                accounts?.audit?.record(.configReloadFailed, actor: "SIGHUP", name: configPath, reason: "\(error)", at: Date())
                logger.error("reload failed, the running config stays: \(error)")
            }
            continue
        }
        logger.info("received signal \(sig), draining for up to \(drain)")
        break
    }
    await server.shutdown(drain: .seconds(drain.seconds))
}

/// Opens the store (a lost, damaged or newer store stops the start) and, when it has no users,
/// creates `admin`.
func openStoreAndBootstrapAdmin(
    _ config: GatehouseConfig, configPath: String, logger: Logger, group: any EventLoopGroup
) async throws -> ConfiguredStore {
    let opened = try await ConfiguredStore.open(config, logger: logger, group: group)
    let store = opened.inline
    let given = ProcessInfo.processInfo.environment["GATEHOUSE_ADMIN_PASSWORD"]
    let outcome: AdminBootstrap.Outcome
    do {
        outcome = try await SlowWorkNotice(logger: logger).run("checking for users, making admin if there are none") {
            try await AdminBootstrap.ensureAdmin(in: store, policy: config.passwordPolicy, givenPassword: given)
        }
    } catch {
        throw CommandFailure("\(error)")
    }
    let change = "change it with: gatehouse user passwd admin --config \(configPath)"
    switch outcome {
    case .usersExist: break
    case .createdWithGivenPassword:
        logger.notice("created user admin with the password from GATEHOUSE_ADMIN_PASSWORD; \(change)")
    case .createdWithRandomPassword(let password):
        logger.notice("created user admin with password \(password) (shown this once); \(change)")
    }
    if let purged = try? await store.purgeExpired(now: Date()), purged > 0 { logger.info("removed \(purged) expired sessions and tokens") }
    return opened
}

/// Everything sign-ins, tokens and run-time keys need, over the opened store (the server, the
/// commands). `work` (the server's thread pool) runs scrypt and SQLite's blocking calls; without
/// it they run inline. With `recordUse` false (read-only tools) neither a key's `last_used` nor a
/// session's last use is ever written.
func makeAccounts(
    _ config: GatehouseConfig, store opened: ConfiguredStore, work: (any BlockingExecutor)? = nil, recordUse: Bool = true
) throws -> AccountService {
    // Read-only tools (explain) change nothing worth an audit line.
    let audit = recordUse ? try openAuditLog(config) : nil
    let secret: [UInt8]
    do {
        secret = try JWTSecretFile.loadOrCreate(path: config.jwt.secretFile, create: config.sharedStore == nil)
    } catch {
        throw CommandFailure(error.description)
    }
    var sessions = config.sessions
    if !recordUse { sessions.touchInterval = .infinity }
    let credentials = StoredCredentialAuthenticator(
        store: work.map(opened.serving) ?? opened.inline, tokens: TokenAuthority(secret: secret, settings: config.jwt),
        sessions: sessions, oneShotTokens: opened.oneShotTokens(),
        keyTouchInterval: recordUse ? StoredCredentialAuthenticator.defaultKeyTouchInterval : .infinity)
    return AccountService(
        credentials: credentials, throttle: opened.loginGuard(config.loginThrottle), passwordPolicy: config.passwordPolicy,
        passwordWork: work ?? InlineExecutor(), audit: audit, appKeyRequests: opened.appKeyRequests())
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run Gatehouse in front of the configured upstream.")

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String = "config.yml"

    @Option(name: .long, help: "Event loop threads (default: one per core).")
    var threads: Int = System.coreCount

    func run() async throws {
        // First of all: a reload or stop sent while Gatehouse starts is held until it runs.
        let inbox = SignalInbox(reload: true)
        // Each sign-in's 16 MiB scrypt block is given back, not kept per store thread (see the header).
        gatehouse_return_large_blocks()
        let cfg = try loadConfig(config)
        let logger = makeLogger(format: cfg.logFormat)
        for line in ShadowedRuleReport(config: cfg).lines { logger.warning("\(line)") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let store = try await openStoreAndBootstrapAdmin(cfg, configPath: config, logger: logger, group: group)
        // Store calls and scrypt run here, never on an event loop.
        let threadPool = NIOThreadPool(numberOfThreads: max(2, System.coreCount))
        threadPool.start()
        let work = ThreadPoolExecutor(pool: threadPool)
        let accounts = try makeAccounts(cfg, store: store, work: work)
        try await runUntilSignalled(config: cfg, logger: logger, group: group, accounts: accounts, configPath: config, inbox: inbox)
        // The pool runs on the server's event loops: stopped before them.
        await store.shutdown()
        try await group.shutdownGracefully()
        try await threadPool.shutdownGracefully()
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run Gatehouse in front of a built-in echo upstream, with a fresh demo API key.")

    @Option(name: .long, help: "Port for Gatehouse on 127.0.0.1.")
    var port: Int = 8080

    func run() async throws {
        let logger = makeLogger()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let echo = try await EchoUpstream.start(group: group)
        let key = APIKeyGenerator.generate()
        var config = GatehouseConfig()
        config.listen = ListenAddress(host: "127.0.0.1", port: port)
        config.upstream = .tcp(host: "127.0.0.1", port: echo.port)
        config.apiKeys = [APIKeyRecord(name: "demo", user: "demo", roles: ["admin"], digest: SecretDigest.of(key))]
        config.timeouts.drain = .seconds(1)
        print("""
            Gatehouse demo: an echo upstream on 127.0.0.1:\(echo.port) that shows what the device receives.
            This demo key works until you stop the demo (Ctrl-C):

              curl -i http://127.0.0.1:\(port)/api/printer                       # 401, never reaches the device
              curl -i -H 'X-Api-Key: \(key)' http://127.0.0.1:\(port)/api/printer  # 200, identity injected

            """)
        try await runUntilSignalled(config: config, logger: logger, group: group)
        await echo.stop()
        try await group.shutdownGracefully()
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a configuration file without starting.")

    @Option(name: .long, help: "The YAML configuration file.")
    var config: String = "config.yml"

    func run() throws {
        let cfg = try loadConfig(config)
        let shadowed = ShadowedRuleReport(config: cfg).lines
        guard shadowed.isEmpty else {
            for line in shadowed { print("\(config): \(line)") }
            throw CommandFailure("\(config): \(shadowed.count) access rule(s) can never match; reorder or remove them")
        }
        var summary = "listen \(cfg.listen)"
        switch cfg.tls?.certificate {
        case .files?: summary += " (HTTPS)"
        case .selfSigned?: summary += " (HTTPS, self-signed)"
        case nil: break
        }
        summary += ", upstream \(cfg.upstream)"
        if cfg.upstreamTLS.insecureSkipVerify { summary += " (certificate not checked)" }
        if let preset = cfg.preset { summary += ", preset \(preset.rawValue)" }
        print("\(config): OK — \(summary), \(cfg.apiKeys.count) API key(s), \(cfg.trustedNetworks.count) trusted network(s), \(cfg.accessRules.count) access rule(s)")
    }
}

/// Access rules that an earlier rule covers completely, in words (for `check-config` and the
/// start-up log).
struct ShadowedRuleReport {
    let lines: [String]

    init(config: GatehouseConfig) {
        let policy = config.accessPolicy
        func name(_ index: Int) -> String {
            let rule = policy.rules[index]
            guard index < config.accessRules.count else { return "public_paths entry \(rule.pattern)" }
            return "access_rules #\(index + 1)\(rule.line.map { " (line \($0))" } ?? "") \(rule)"
        }
        lines = policy.shadowedRules().map { "\(name($0.rule)) can never match: \(name($0.by)) covers every request it would" }
    }
}

struct Key: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API keys: in the config file (generate) or in the store (create, list, revoke).",
        subcommands: [Generate.self, KeyCreate.self, KeyList.self, KeyRevoke.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new random API key once, and the YAML entry holding only its hash.")

        @Option(name: .long, help: "The user the key speaks for.")
        var user: String

        @Option(name: .long, help: "A name for the key (default: the user name).")
        var name: String?

        @Option(name: .long, parsing: .upToNextOption, help: "Roles of the key.")
        var roles: [String] = []

        @Flag(name: .long, help: "Allow only GET, HEAD and OPTIONS.")
        var readOnly = false

        @Option(name: .long, help: "Expiry, like 2027-01-31T00:00:00Z.")
        var expires: String?

        func validate() throws {
            guard Identity.isValidName(user) else { throw ValidationError("--user: 1-64 characters of A-Z a-z 0-9 . _ @ -") }
            if let name, !Identity.isValidName(name) { throw ValidationError("--name: 1-64 characters of A-Z a-z 0-9 . _ @ -") }
            for role in roles where !Identity.isValidName(role) { throw ValidationError("--roles: '\(role)' is not a valid role name") }
            if let expires {
                guard InternetDate.parse(expires) != nil else { throw ValidationError("--expires: expected a date like 2027-01-31T00:00:00Z") }
            }
        }

        func run() throws {
            let key = APIKeyGenerator.generate()
            var entry = "  - {name: \(name ?? user), user: \(user), roles: [\(roles.joined(separator: ", "))], hash: \"\(SecretDigest.of(key))\""
            if readOnly { entry += ", read_only: true" }
            if let expires { entry += ", expires: \"\(expires)\"" }
            entry += "}"
            print("""
                API key (shown once; store it now, Gatehouse keeps only its hash):
                \(key)

                Add under api_keys: in your config:
                \(entry)
                """)
        }
    }
}
