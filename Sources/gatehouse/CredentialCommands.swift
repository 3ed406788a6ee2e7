import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseStore

/// Dates as the commands print and read them.
enum CommandDates {
    static func parse(_ text: String, option: String) throws -> Date {
        guard let date = InternetDate.parse(text) else { throw ValidationError("\(option): expected a date like 2027-01-31T00:00:00Z") }
        return date
    }

    static func show(_ date: Date?) -> String {
        date.map(InternetDate.format) ?? "never"
    }
}

/// Prints rows as aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
    for row in [header] + rows {
        print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
    }
}

struct KeyCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create an API key in the store for a user; the key is printed once.")
    @OptionGroup var store: StoreOptions
    @Option(name: .long, help: "The user the key speaks for (must exist in the store).") var user: String
    @Option(name: .long, help: "A unique name for the key.") var name: String
    @Option(name: .long, parsing: .upToNextOption, help: "Roles of the key (default: the user's roles at each request).") var roles: [String] = []
    @Flag(name: .long, help: "Allow only GET, HEAD and OPTIONS.") var readOnly = false
    @Option(name: .long, help: "Expiry, like 2027-01-31T00:00:00Z (default: never).") var expires: String?
    @Option(name: .long, help: "What the key is for.") var description: String = ""

    func run() async throws {
        guard Identity.isValidName(name) else { throw ValidationError("--name: 1-64 characters of A-Z a-z 0-9 . _ @ -") }
        for role in roles where !Identity.isValidName(role) { throw ValidationError("--roles: '\(role)' is not a valid role name") }
        let expiry = try expires.map { try CommandDates.parse($0, option: "--expires") }
        let (db, _) = try await store.open()
        let key = APIKeyGenerator.generate()
        let record = StoredAPIKey(
            name: name, username: user, roles: roles.isEmpty ? nil : roles, digest: .of(key), readOnly: readOnly,
            expires: expiry, created: Date(), description: description)
        try await storeCall { () async throws(StoreError) in try await db.addAPIKey(record) }
        store.audit(.keyCreated, user: user, name: name)
        print("API key \(name) for \(user) (shown once; Gatehouse keeps only its hash):\n\(key)")
    }
}

struct KeyList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the API keys in the store (never the keys themselves).")
    @OptionGroup var store: StoreOptions
    @Option(name: .long, help: "Only this user's keys.") var user: String?

    func run() async throws {
        let (db, _) = try await store.open()
        let keys = try await storeCall { () async throws(StoreError) in try await db.apiKeys(ofUser: user) }
        printTable(
            ["NAME", "USER", "ROLES", "READ_ONLY", "EXPIRES", "LAST_USED", "DESCRIPTION"],
            keys.map { [$0.name, $0.username, $0.roles?.joined(separator: ",") ?? "(user's)", $0.readOnly ? "yes" : "no",
                        CommandDates.show($0.expires), $0.lastUsed.map { CommandDates.show($0) } ?? "-", $0.description] })
    }
}

struct KeyRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke an API key in the store, at once.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The key's name.") var name: String

    func run() async throws {
        let (db, _) = try await store.open()
        guard try await storeCall({ () async throws(StoreError) in try await db.deleteAPIKey(named: name) }) else {
            throw CommandFailure("no API key named '\(name)' in the store")
        }
        store.audit(.keyRevoked, name: name)
        print("revoked API key \(name)")
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage issued JSON Web Tokens.", subcommands: [Issue.self, List.self, Revoke.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a long-lived access token for a user; printed once.")
        @Option(name: .long, help: "The YAML configuration file (for the store and jwt settings).") var config: String = "config.yml"
        @Option(name: .long, help: "The user the token speaks for.") var user: String
        @Option(name: .long, help: "How long it lasts: a duration like 30d, or 'never'.") var expires: String
        @Option(name: .long, help: "What the token is for.") var description: String = ""

        func run() async throws {
            let lifetime: TimeInterval?
            if expires == "never" {
                lifetime = nil
            } else {
                guard let d = ConfigDuration(parsing: expires), d.seconds > 0 else {
                    throw ValidationError("--expires: a duration like 30d, or never")
                }
                lifetime = TimeInterval(d.seconds)
            }
            let cfg = try loadConfig(config)
            let accounts = try makeAccounts(cfg, store: try await ConfiguredStore.open(cfg))
            do {
                let signed = try await accounts.issueLongLivedToken(for: user, lifetime: lifetime, description: description, now: Date())
                print("Token \(signed.record.jti.prefix(8)) for \(user), expires \(CommandDates.show(signed.record.expires)) (shown once):\n\(signed.token)")
            } catch {
                throw CommandFailure(error.detail)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List issued tokens (ids, never the tokens).")
        @OptionGroup var store: StoreOptions
        @Option(name: .long, help: "Only this user's tokens.") var user: String?
        @Flag(name: .long, help: "Include revoked and spent tokens.") var all = false

        func run() async throws {
            let (db, _) = try await store.open()
            let tokens = try await storeCall { () async throws(StoreError) in try await db.tokens(ofUser: user) }.filter { all || (!$0.revoked && !$0.used) }
            printTable(
                ["ID", "USER", "KIND", "CREATED", "EXPIRES", "STATE", "DESCRIPTION"],
                tokens.map { [$0.jti, $0.username, $0.kind.rawValue, CommandDates.show($0.created), CommandDates.show($0.expires),
                              $0.revoked ? "revoked" : ($0.used ? "spent" : "live"), $0.description] })
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke an issued token by its id, at once.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The token id (jti) from 'token list'.") var id: String

        func run() async throws {
            let (db, _) = try await store.open()
            guard try await storeCall({ () async throws(StoreError) in try await db.revokeToken(jti: id) }) else {
                throw CommandFailure("no token with id '\(id)'")
            }
            store.audit(.tokenRevoked, name: String(id.prefix(8)))
            print("revoked token \(id)")
        }
    }
}

struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "Manage browser sessions.", subcommands: [List.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sessions (short ids, never the cookies).")
        @OptionGroup var store: StoreOptions
        @Option(name: .long, help: "Only this user's sessions.") var user: String?

        func run() async throws {
            let (db, _) = try await store.open()
            let sessions = try await storeCall { () async throws(StoreError) in try await db.sessions(ofUser: user) }
            printTable(
                ["ID", "USER", "CREATED", "LAST_SEEN", "EXPIRES", "REMEMBER", "FROM"],
                sessions.map { [$0.publicID, $0.username, CommandDates.show($0.created), CommandDates.show($0.lastSeen),
                                CommandDates.show($0.expires), $0.remember ? "yes" : "no", $0.origin] })
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a session by its id (or a unique prefix), or all of a user's.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The session id from 'session list'.") var id: String?
        @Option(name: .long, help: "End every session of this user.") var user: String?

        func validate() throws {
            guard (id == nil) != (user == nil) else { throw ValidationError("give either a session id or --user") }
        }

        func run() async throws {
            let (db, _) = try await store.open()
            if let user {
                let n = try await storeCall { () async throws(StoreError) in try await db.deleteSessions(ofUser: user) }
                if n > 0 { store.audit(.sessionRevoked, user: user) }
                print("ended \(n) session(s) of \(user)")
                return
            }
            let prefix = (id ?? "").lowercased()
            let matches = try await storeCall { () async throws(StoreError) in try await db.sessions(publicIDPrefix: prefix) }
            guard matches.count == 1, let session = matches.first else {
                throw CommandFailure(matches.isEmpty ? "no session with id '\(prefix)'" : "'\(prefix)' matches \(matches.count) sessions; give more of the id")
            }
            _ = try await storeCall { () async throws(StoreError) in try await db.deleteSession(digest: session.digest) }
            store.audit(.sessionRevoked, user: session.username, name: session.publicID)
            print("ended session \(session.publicID) of \(session.username)")
        }
    }
}
