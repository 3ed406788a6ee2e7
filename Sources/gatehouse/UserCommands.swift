import ArgumentParser
import Foundation
import GatehouseCore
import GatehouseStore

#if canImport(Glibc)
import Glibc
#endif

/// A command that failed for a reason other than its arguments: printed as `Error: …`, exit 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Where a command finds the store: `--store PATH`, or `store.path` of `--config F`.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The YAML configuration file whose store to use.")
    var config: String = "config.yml"

    @Option(name: .long, help: "An SQLite store file (instead of the config's store).")
    var store: String?

    func open() async throws -> (any CredentialStore, PasswordPolicy) {
        try checkAuditLog()
        if let store {
            var cfg = GatehouseConfig()
            cfg.storePath = store
            return (try await ConfiguredStore.open(cfg).inline, PasswordPolicy())
        }
        let cfg = try loadConfig(config)
        return (try await ConfiguredStore.open(cfg).inline, cfg.passwordPolicy)
    }

    /// Records a change in the config's `audit_log` (actor: the command line). Without a
    /// readable config (`--store` alone) nothing is recorded; a log that cannot be opened fails
    /// the command before anything changes (``checkAuditLog()``).
    func audit(_ action: AuditAction, user: String? = nil, name: String? = nil) {
        guard let cfg = try? ConfigLoader.load(path: config), let log = try? openAuditLog(cfg) else { return }
        log.record(action, user: user, actor: "command line", name: name, at: Date())
    }

    /// Fails when the config names an audit log that cannot be opened.
    func checkAuditLog() throws {
        guard let cfg = try? ConfigLoader.load(path: config) else { return }
        _ = try openAuditLog(cfg)
    }
}

/// Reads a password: from standard input when it is not a terminal (or `--password-stdin`),
/// otherwise from a prompt that does not echo, asked twice. Never from an argument.
struct PasswordReader {
    var fromStdin: Bool

    func read(prompt: String, confirm: Bool) throws -> String {
        if fromStdin || isatty(STDIN_FILENO) == 0 {
            guard let line = readLine(strippingNewline: true) else { throw ValidationError("no password on standard input") }
            return line.hasSuffix("\r") ? String(line.dropLast()) : line
        }
        let first = try promptWithoutEcho(prompt)
        if confirm {
            let second = try promptWithoutEcho("Again: ")
            guard first == second else { throw CommandFailure("the two passwords differ") }
        }
        return first
    }

    private func promptWithoutEcho(_ prompt: String) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { throw ValidationError("cannot switch off the terminal's echo") }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        guard tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0 else { throw ValidationError("cannot switch off the terminal's echo") }
        defer {
            var restore = saved
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &restore)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = readLine(strippingNewline: true) else { throw ValidationError("no password entered") }
        return line
    }
}

func validUsername(_ name: String) throws -> String {
    guard Identity.isValidName(name) else { throw ValidationError("user name: 1-64 characters of A-Z a-z 0-9 . _ @ -") }
    return name
}

func storeCall<T>(doing what: String = "working on the store", _ body: () async throws(StoreError) -> T) async throws -> T {
    try await SlowWorkNotice().run(what) { () async throws -> T in
        do { return try await body() } catch { throw CommandFailure("\(error)") }
    }
}

func newPasswordHash(_ password: String, policy: PasswordPolicy) throws -> PasswordHash {
    do {
        try policy.check(password)
        return try SlowWorkNotice().run("hashing the password (scrypt)") { try PasswordHash.make(password) }
    } catch {
        throw CommandFailure("\(error)")
    }
}

/// Applies one change to a named user and reports it; fails when there is no such user.
func changeUser(
    _ username: String, in options: StoreOptions, done: String, audit: AuditAction,
    _ change: (any CredentialStore, String) async throws(StoreError) -> Bool
) async throws {
    let (db, _) = try await options.open()
    guard try await storeCall({ () async throws(StoreError) in try await change(db, username) }) else {
        throw CommandFailure("no user named '\(username)'")
    }
    options.audit(audit, user: username)
    print("\(done) user \(username)")
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Manage the users in the store.",
        subcommands: [Add.self, List.self, Delete.self, Passwd.self, Disable.self, Enable.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user; the password is read from a prompt or standard input.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user name.") var username: String
        @Option(name: .long, parsing: .upToNextOption, help: "Roles of the user.") var roles: [String] = []
        @Flag(name: .long, help: "Read the password from standard input even on a terminal.") var passwordStdin = false

        func run() async throws {
            let name = try validUsername(username)
            for role in roles where !Identity.isValidName(role) { throw ValidationError("--roles: '\(role)' is not a valid role name") }
            let (db, policy) = try await store.open()
            let password = try PasswordReader(fromStdin: passwordStdin).read(prompt: "Password for \(name): ", confirm: true)
            let hash = try newPasswordHash(password, policy: policy)
            try await storeCall { () async throws(StoreError) in try await db.addUser(UserRecord(username: name, passwordHash: hash, roles: roles, created: Date())) }
            store.audit(.userCreated, user: name)
            print("added user \(name)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users (never their passwords).")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let (db, _) = try await store.open()
            let users = try await storeCall { () async throws(StoreError) in try await db.users() }
            print("USER\tROLES\tCREATED\tSTATE")
            for user in users {
                print("\(user.username)\t\(user.roles.joined(separator: ","))\t\(InternetDate.format(user.created))\t\(user.disabled ? "disabled" : "enabled")")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user and everything issued to them.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user name.") var username: String

        func run() async throws {
            try await changeUser(username, in: store, done: "deleted", audit: .userDeleted) { db, name async throws(StoreError) in try await db.deleteUser(named: name) }
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password (read from a prompt or standard input); their sessions and signed-in tokens end.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user name.") var username: String
        @Flag(name: .long, help: "Read the password from standard input even on a terminal.") var passwordStdin = false

        func run() async throws {
            let (db, policy) = try await store.open()
            guard try await storeCall({ () async throws(StoreError) in try await db.user(named: username) }) != nil else {
                throw CommandFailure("no user named '\(username)'")
            }
            let password = try PasswordReader(fromStdin: passwordStdin).read(prompt: "New password for \(username): ", confirm: true)
            let hash = try newPasswordHash(password, policy: policy)
            guard try await storeCall({ () async throws(StoreError) in try await db.changePassword(hash, forUser: username) }) else {
                throw CommandFailure("no user named '\(username)'")
            }
            store.audit(.passwordChanged, user: username)
            print("password changed for \(username); their sessions and signed-in tokens have ended")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a user from signing in (nothing is deleted).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user name.") var username: String

        func run() async throws {
            try await changeUser(username, in: store, done: "disabled", audit: .userDisabled) { db, name async throws(StoreError) in try await db.setDisabled(true, forUser: name) }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a disabled user sign in again.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user name.") var username: String

        func run() async throws {
            try await changeUser(username, in: store, done: "enabled", audit: .userEnabled) { db, name async throws(StoreError) in try await db.setDisabled(false, forUser: name) }
        }
    }
}
