import ArgumentParser
import Foundation
import GatehouseCore
import GatehousePostgres
import GatehouseStore
import Logging

/// `gatehouse store`: moving a store to PostgreSQL, and checking either kind.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Copy an SQLite store into PostgreSQL, or check a store.", subcommands: [Copy.self, Check.self])

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy an SQLite store (users with their password hashes, keys, tokens, sessions) into an empty PostgreSQL database.",
            discussion: """
                Example: gatehouse store copy --from /var/lib/gatehouse/gatehouse.db --to postgres://gatehouse@db.lan:5432/gatehouse --password-file /run/secrets/pg
                Refuses a database that holds any user, key, token or session, so running it twice changes nothing. \
                Stop the Gatehouse using the file first: what it writes meanwhile is not copied.
                """)
        @Option(name: .long, help: "The SQLite store file to copy from (read, never changed).") var from: String
        @Option(name: .long, help: "The PostgreSQL database to copy into, as postgres://user@host:port/database.") var to: String
        @Option(name: .long, help: "A file holding the database password.") var passwordFile: String?
        @Option(name: .long, help: "disable, require or verify-full (default).") var tls: String = "verify-full"
        @Option(name: .long, help: "The CA certificate for verify-full.") var caFile: String?

        func run() async throws {
            guard FileManager.default.fileExists(atPath: from) else { throw CommandFailure("--from: \(from) does not exist") }
            var cfg = GatehouseConfig()
            do { cfg.sharedStore = try SharedStoreSettings(url: to) } catch { throw ValidationError("--to: \(error.message)") }
            guard let mode = SharedStoreSettings.TLSMode(rawValue: tls) else { throw ValidationError("--tls: expected disable, require or verify-full") }
            cfg.sharedStore?.tls = mode
            cfg.sharedStore?.caFile = caFile
            cfg.sharedStore?.passwordFile = passwordFile
            let source: SQLiteStore
            do { source = try SQLiteStore(path: from) } catch { throw CommandFailure("--from: \(error)") }
            let (users, sessions, keys, tokens) = try await storeCall(doing: "reading \(from)") { () async throws(StoreError) in
                (try source.users(), try source.sessions(ofUser: nil), try source.apiKeys(ofUser: nil), try source.tokens(ofUser: nil))
            }
            guard case .shared(let target) = try await ConfiguredStore.open(cfg) else { throw CommandFailure("--to: not a PostgreSQL database") }
            defer { target.close() }
            try await storeCall(doing: "copying into \(to)") { () async throws(StoreError) in
                try await target.importAll(users: users, sessions: sessions, keys: keys, tokens: tokens)
            }
            let copied = try await storeCall { () async throws(StoreError) in try await target.counts() }
            let expected = StoreCounts(users: users.count, sessions: sessions.count, apiKeys: keys.count, tokens: tokens.count)
            guard copied == expected else { throw CommandFailure("the database holds \(copied) after the copy, not \(expected)") }
            print("copied \(copied)")
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open the configured store (SQLite or PostgreSQL), bring its schema up to date, and count what it holds.")
        @Option(name: .long, help: "The YAML configuration file whose store to check.") var config: String = "config.yml"

        func run() async throws {
            let cfg = try loadConfig(config)
            let opened = try await ConfiguredStore.open(cfg)
            defer { opened.close() }
            let store = opened.inline
            let (counts, revision) = try await storeCall { () async throws(StoreError) in (try await store.counts(), try await store.refreshRevision()) }
            print("store: \(ConfiguredStore.name(cfg)) (\(cfg.sharedStore == nil ? "SQLite" : "PostgreSQL"))")
            print("schema: up to date")
            print("holds: \(counts)")
            print("revision: \(revision)")
        }
    }
}
