import Foundation
import Synchronization

/// A real PostgreSQL server for the tests: the server programs of Debian's `postgresql` package,
/// a cluster made by `initdb` in a temporary folder and started by `pg_ctl` on a free loopback
/// port (and a socket in that folder), with `fsync` off (test data only). One per test process
/// (``shared()``), stopped and removed when the process exits; each test makes its own database
/// (``makeDatabase(_:)``) so tests never see each other's rows. As root (CI) the programs run
/// as the `postgres` user (through `setpriv`), since `initdb` refuses root.
///
/// Guarantees: missing server programs are an error that says what to install, never a skip;
/// a server that does not start is an error that carries its log.
public final class PostgresTestServer: Sendable {
    public let host = "127.0.0.1"
    public let port: Int
    /// The cluster's superuser (no password: `trust` on loopback and the socket).
    public let username = "gatehouse"
    let directory: URL
    let binaries: URL
    let runAs: String?

    public enum SetupError: Error, CustomStringConvertible {
        case notInstalled(searched: String)
        case noServerUser
        case failed(step: String, output: String)

        public var description: String {
            switch self {
            case .notInstalled(let searched):
                return "PostgreSQL's server programs (initdb, pg_ctl) were not found in \(searched); install them: apt-get install -y postgresql"
            case .noServerUser:
                return "running as root, but there is no postgres user to run initdb as (initdb refuses root); install Debian's postgresql package, which makes it"
            case .failed(let step, let output): return "PostgreSQL test server: \(step) failed: \(output.suffix(3000))"
            }
        }
    }

    private static let instance = Mutex<Result<PostgresTestServer, SetupError>?>(nil)

    /// The server of this test process, started on first use; a failure to start is reported to
    /// every test that asks, not retried.
    public static func shared() throws(SetupError) -> PostgresTestServer {
        let result = instance.withLock { current in
            if let current { return current }
            let made = Result { () throws(SetupError) in try PostgresTestServer() }
            if case .success = made { atexit { PostgresTestServer.stopShared() } }
            current = made
            return made
        }
        return try result.get()
    }

    private static func stopShared() {
        if case .success(let server)? = instance.withLock({ $0 }) { server.stop() }
    }

    /// Where the server programs are: `GATEHOUSE_POSTGRES_BIN`, else the newest
    /// `/usr/lib/postgresql/N/bin` (Debian puts them there, not on PATH).
    public static func findBinaries(environment: [String: String] = ProcessInfo.processInfo.environment) throws(SetupError) -> URL {
        if let given = environment["GATEHOUSE_POSTGRES_BIN"] {
            let url = URL(fileURLWithPath: given)
            guard FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("initdb").path) else {
                throw .notInstalled(searched: given)
            }
            return url
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted(by: >)
        for version in versions {
            let bin = URL(fileURLWithPath: "\(root)/\(version)/bin")
            if FileManager.default.isExecutableFile(atPath: bin.appendingPathComponent("initdb").path) { return bin }
        }
        throw .notInstalled(searched: "\(root)/*/bin")
    }

    private init() throws(SetupError) {
        binaries = try Self.findBinaries()
        if geteuid() == 0 {
            guard getpwnam("postgres") != nil else { throw .noServerUser }
            runAs = "postgres"
        } else {
            runAs = nil
        }
        let made: URL
        do {
            made = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-postgres-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: made, withIntermediateDirectories: false)
            if let runAs, let user = getpwnam(runAs) {
                guard chown(made.path, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                    throw SetupError.failed(step: "chown \(made.path)", output: String(cString: strerror(errno)))
                }
            }
            port = try StreamTest.unusedPort()
        } catch let error as SetupError {
            throw error
        } catch {
            throw .failed(step: "making its folder", output: "\(error)")
        }
        directory = made
        let data = directory.appendingPathComponent("data").path
        do {
            try run("initdb", ["-D", data, "-U", username, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])
            try start()
        } catch {
            let log = (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(at: directory)
            throw .failed(step: "starting the server", output: "\(error)\n\(log)")
        }
    }

    /// Creates an empty database owned by ``username`` and returns its name.
    public func makeDatabase(_ prefix: String = "test") throws(SetupError) -> String {
        let name = "\(prefix)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        try run("createdb", ["-h", host, "-p", "\(port)", "-U", username, name])
        return name
    }

    /// Runs SQL with `psql` (tests that set up or inspect a database beside the code under test)
    /// and returns what it printed, unaligned and without headers, trimmed of the final line break.
    @discardableResult
    public func psql(_ database: String, _ sql: String) throws(SetupError) -> String {
        let psql = FileManager.default.isExecutableFile(atPath: binaries.appendingPathComponent("psql").path)
            ? binaries.appendingPathComponent("psql").path : "/usr/bin/psql"
        return try execute(psql, ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", "\(port)", "-U", username, "-d", database, "-c", sql])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server (fast shutdown) and removes its folder.
    /// A server of the caller's own, for tests that stop and restart it (the shared one must
    /// stay up for everyone else); ``stop()`` it at the end.
    public static func own() throws(SetupError) -> PostgresTestServer { try PostgresTestServer() }

    /// Starts the stopped server again, on the same port with the same data.
    public func start() throws(SetupError) {
        try run("pg_ctl", [
            "-D", directory.appendingPathComponent("data").path, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "60",
            "-o", "-c listen_addresses=\(host) -p \(port) -k \(directory.path) -c fsync=off -c full_page_writes=off", "start",
        ])
    }

    /// Stops the server, cutting its connections (`-m fast`), and keeps its data.
    public func halt() throws(SetupError) {
        try run("pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-m", "fast", "-w", "stop"])
    }

    /// `pg_ctl restart -m fast`: connections are cut and the server is back on the same port.
    public func restart() throws(SetupError) {
        try run("pg_ctl", [
            "-D", directory.appendingPathComponent("data").path, "-l", directory.appendingPathComponent("server.log").path, "-m", "fast", "-w",
            "-t", "60", "-o", "-c listen_addresses=\(host) -p \(port) -k \(directory.path) -c fsync=off -c full_page_writes=off", "restart",
        ])
    }

    public func stop() {
        try? halt()
        try? FileManager.default.removeItem(at: directory)
    }

    @discardableResult
    private func run(_ program: String, _ arguments: [String]) throws(SetupError) -> String {
        try execute(binaries.appendingPathComponent(program).path, arguments)
    }

    private func execute(_ path: String, _ arguments: [String]) throws(SetupError) -> String {
        // setpriv becomes the program (runuser would stay as its parent).
        let (executable, args) = runAs.map {
            ("/usr/bin/setpriv", ["--reuid=\($0)", "--regid=\($0)", "--init-groups", "--", path] + arguments)
        } ?? (path, arguments)
        let output = directory.appendingPathComponent("command-\(UUID().uuidString).out")
        defer { try? FileManager.default.removeItem(at: output) }
        let status = Self.spawnAndWait(executable, args, output: output.path)
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw .failed(step: "\(URL(fileURLWithPath: path).lastPathComponent) \(arguments.joined(separator: " "))", output: "exit status \(status): \(text)")
        }
        return text
    }

    /// Runs a program to its end with its output in a file, and returns its exit status (-1 when
    /// it could not be started). posix_spawn and waitpid, not Foundation's Process, which was
    /// seen waiting for ever for `pg_ctl start` to end (pg_ctl leaves the server behind it); the
    /// child gets an empty signal mask and default handlers (the test process's threads block
    /// signals, and the server must see pg_ctl's stop signal).
    static func spawnAndWait(_ executable: String, _ arguments: [String], output: String) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, executable, &actions, &attributes, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return -1 }
        }
        // WIFEXITED / WEXITSTATUS, which Swift does not import (macros).
        return status & 0x7F == 0 ? (status >> 8) & 0xFF : -1
    }
}
