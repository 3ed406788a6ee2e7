import Foundation
import GatehouseCore
import GatehousePostgres
import GatehouseStore
import Logging
import NIOCore

/// The store a config names, opened: the SQLite file of `store.path`, or the PostgreSQL
/// database of `store.url`.
///
/// Guarantees: opening never creates a store anywhere the config did not name; every failure
/// is a ``CommandFailure`` that names the file or `postgres://user@host:port/database` and the
/// reason, and never the database password.
enum ConfiguredStore {
    case file(SQLiteStore)
    case shared(PostgresStore)

    /// What messages call it.
    static func name(_ config: GatehouseConfig) -> String { config.sharedStore?.description ?? config.storePath }

    /// `group`: the server's event loops, for a PostgreSQL store's connections (the command line
    /// uses postgres-nio's own).
    static func open(_ config: GatehouseConfig, logger: Logger? = nil, group: (any EventLoopGroup)? = nil) async throws -> ConfiguredStore {
        let notice = SlowWorkNotice(logger: logger)
        let what = "opening and checking the store \(name(config))"
        guard let shared = config.sharedStore else {
            return .file(try notice.run(what) {
                do { return try SQLiteStore(path: config.storePath) } catch { throw CommandFailure("\(error)") }
            })
        }
        let settings = PostgresStore.Settings(
            host: shared.host, port: shared.port, username: shared.username, password: try password(shared), database: shared.database,
            tls: shared.tls, caFile: shared.caFile, poolSize: shared.poolSize)
        // The pool's own chatter (reconnects) is not the operator's business; failures reach
        // them as store errors.
        let quiet = Logger(label: "gatehouse.store", factory: { _ in SwiftLogNoOpLogHandler() })
        return .shared(try await notice.run(what) {
            do {
                return try await PostgresStore.open(settings, logger: quiet, eventLoopGroup: group)
            } catch StoreError.cannotOpen(_, let reason) {
                throw CommandFailure("cannot reach the store \(shared): \(reason)")
            } catch {
                throw CommandFailure("the store \(shared): \(error)")
            }
        })
    }

    /// `store.password_file`'s first line; nil without one.
    private static func password(_ settings: SharedStoreSettings) throws -> String? {
        guard let file = settings.passwordFile else { return nil }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw CommandFailure("store.password_file: cannot read \(file)")
        }
        let text = String(decoding: data, as: UTF8.self)
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        guard !line.isEmpty else { throw CommandFailure("store.password_file: \(file) is empty") }
        return line
    }

    /// For the command line and read-only tools: calls run on the calling task.
    var inline: any CredentialStore {
        switch self {
        case .file(let store): return store
        case .shared(let store): return store
        }
    }

    /// For the server: SQLite's blocking calls go to `work`, PostgreSQL's are asynchronous already.
    func serving(on work: any BlockingExecutor) -> any CredentialStore {
        switch self {
        case .file(let store): return OffloadedCredentialStore(store, on: work)
        case .shared(let store): return store
        }
    }

    /// Where one-shot tokens live: this process's memory, or the shared database (a token one
    /// replica issued is spent on another).
    func oneShotTokens() -> any OneShotTokenBook {
        switch self {
        case .file: return OneShotTokens()
        case .shared(let store): return PostgresOneShotTokens(store: store)
        }
    }

    /// Where failed sign-ins are counted: this process's memory, or the shared database (guesses
    /// spread over replicas count together).
    func loginGuard(_ policy: LoginThrottlePolicy) -> any LoginGuard {
        switch self {
        case .file: return LoginThrottle(policy: policy)
        case .shared(let store): return PostgresLoginThrottle(store: store, policy: policy)
        }
    }

    /// Where OctoPrint app-key requests wait: this process's memory, or the shared database (an
    /// app may poll, and a user decide, through any replica).
    func appKeyRequests() -> any AppKeyRequestBook {
        switch self {
        case .file: return AppKeyPairing()
        case .shared(let store): return PostgresAppKeyPairing(store: store)
        }
    }

    func close() {
        if case .shared(let store) = self { store.close() }
    }

    /// As ``close()``, returning once a shared store's connections are closed.
    func shutdown() async {
        if case .shared(let store) = self { await store.shutdown() }
    }
}
