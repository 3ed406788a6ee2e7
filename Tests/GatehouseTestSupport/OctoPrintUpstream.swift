import Foundation
import XCTest

/// A real OctoPrint (from PyPI, in a virtualenv under `.build/`) running on loopback, configured
/// to call nothing outside and announce nothing (`../shared/upstreams/octoprint.md`), and to
/// trust `X-Remote-User` — which only Gatehouse can set, since only Gatehouse reaches it.
///
/// The virtualenv is made on first use (`python3 -m venv`, `pip install octoprint==VERSION`,
/// about a minute) and kept in `.build/octoprint-venv`; a missing `python3` or an install that
/// fails is a test failure, never a skip.
public final class OctoPrintUpstream: @unchecked Sendable {
    public static let version = "1.11.8"
    public let port: Int
    public let baseDirectory: URL
    private let process: Process
    private let output: PipeDrain

    /// Users OctoPrint knows: `alice` (admin) and `bob`, both with this password (only OctoPrint's
    /// own login would use it; through Gatehouse the identity header decides).
    public static let password = "octoprint-test-password"

    public static func start(file: StaticString = #filePath, line: UInt = #line) throws -> OctoPrintUpstream {
        let octoprint = try installed().appendingPathComponent("bin/octoprint").path
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-octoprint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        try """
            accessControl:
              trustRemoteUser: true
              remoteUserHeader: X-Remote-User
              addRemoteUsers: false
            server:
              firstRun: false
              onlineCheck: {enabled: false}
              pythonEolCheck: {enabled: false}
              pluginBlacklist: {enabled: false}
            plugins:
              _disabled: [announcements, tracking, softwareupdate, pluginmanager, firmware_check, pi_support,
                          discovery, achievements, health_check]
            """.write(to: base.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
        for (name, admin) in [("alice", true), ("bob", false)] {
            let result = try run(octoprint, ["--basedir", base.path, "user", "add", "--password", password] + (admin ? ["--admin"] : []) + [name])
            guard result.status == 0 else { throw setupFailure("adding OctoPrint user \(name) failed: \(result.output)", file: file, line: line) }
        }
        let port = try StreamTest.unusedPort()
        let (process, drain) = try spawn(
            octoprint, ["serve", "--iknowwhatimdoing", "--host", "127.0.0.1", "--port", String(port), "--basedir", base.path])
        let upstream = OctoPrintUpstream(port: port, baseDirectory: base, process: process, output: drain)
        // The port opens about a second before OctoPrint answers: wait for any HTTP status.
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            if let response = try? RawClient(port: port, timeoutSeconds: 5).request("GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
                response.status > 0
            {
                return upstream
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.25)
        }
        upstream.stop()
        throw setupFailure("OctoPrint did not start on port \(port): \(String(decoding: drain.wait(), as: UTF8.self).suffix(3000))", file: file, line: line)
    }

    private init(port: Int, baseDirectory: URL, process: Process, output: PipeDrain) {
        self.port = port
        self.baseDirectory = baseDirectory
        self.process = process
        self.output = output
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: baseDirectory)
    }

    /// The virtualenv with OctoPrint, made when missing.
    private static func installed() throws -> URL {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let venv = root.appendingPathComponent(".build/octoprint-venv-\(version)")
        if FileManager.default.isExecutableFile(atPath: venv.appendingPathComponent("bin/octoprint").path) { return venv }
        let made = try run("/usr/bin/env", ["python3", "-m", "venv", venv.path])
        guard made.status == 0 else { throw setupFailure("python3 -m venv failed (Debian: apt-get install python3-venv): \(made.output)") }
        let pip = try run(venv.appendingPathComponent("bin/pip").path, ["install", "--disable-pip-version-check", "-q", "octoprint==\(version)"])
        guard pip.status == 0 else {
            try? FileManager.default.removeItem(at: venv)
            throw setupFailure("pip install octoprint==\(version) failed: \(pip.output.suffix(3000))")
        }
        return venv
    }

    /// Starts `executable`; its stdout and stderr together are read into the drain.
    private static func spawn(_ executable: String, _ arguments: [String]) throws -> (Process, PipeDrain) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let drain = PipeDrain(pipe.fileHandleForReading)
        try process.run()
        return (process, drain)
    }

    private static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let (process, drain) = try spawn(executable, arguments)
        let data = drain.wait()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private static func setupFailure(_ message: String, file: StaticString = #filePath, line: UInt = #line) -> Error {
        XCTFail(message, file: file, line: line)
        return CocoaError(.executableLoad)
    }
}
