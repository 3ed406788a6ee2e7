import Foundation
import XCTest

/// A real Python device server (OctoPrint, Moonraker) started for a test on loopback; `stop()`
/// ends it and removes its folder.
public final class PythonUpstream: @unchecked Sendable {
    // @unchecked: every stored property is a constant; Process and PipeDrain are only waited on.
    public let port: Int
    public let baseDirectory: URL
    private let process: Process
    private let output: PipeDrain

    /// Starts `executable` and waits until `GET readyPath` gets any HTTP status; a process that
    /// exits or does not answer within `seconds` is a test failure showing its output.
    static func launch(
        _ name: String, executable: String, arguments: [String], port: Int, baseDirectory: URL, readyPath: String, seconds: Double,
        file: StaticString, line: UInt
    ) throws -> PythonUpstream {
        let (process, drain) = try PythonUpstreamProcess.spawn(executable, arguments)
        let upstream = PythonUpstream(port: port, baseDirectory: baseDirectory, process: process, output: drain)
        if PythonUpstreamProcess.waitUntilAnswering(port: port, path: readyPath, process: process, seconds: seconds) { return upstream }
        upstream.stop()
        throw PythonUpstreamProcess.setupFailure(
            "\(name) did not start on port \(port): \(String(decoding: drain.wait(), as: UTF8.self).suffix(3000))", file: file, line: line)
    }

    private init(port: Int, baseDirectory: URL, process: Process, output: PipeDrain) {
        self.port = port
        self.baseDirectory = baseDirectory
        self.process = process
        self.output = output
    }

    public func stop() {
        PythonUpstreamProcess.terminate(process)
        try? FileManager.default.removeItem(at: baseDirectory)
    }
}

/// What the real Python upstreams (OctoPrint, Moonraker) share: a virtualenv under `.build/`
/// made on first use from PyPI, a child process whose output is drained, and a stop that waits.
///
/// Guarantees: a missing `python3`, a failed install or a device that does not answer is a test
/// failure (``setupFailure(_:file:line:)`` records it), never a skip.
enum PythonUpstreamProcess {
    /// `.build/<name>-venv-<version>` with `pip install <package>==<version>`, made when
    /// `bin/<executable>` is missing.
    static func virtualenv(package: String, version: String, executable: String) throws -> URL {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let venv = root.appendingPathComponent(".build/\(package.lowercased())-venv-\(version)")
        if FileManager.default.isExecutableFile(atPath: venv.appendingPathComponent("bin/\(executable)").path) { return venv }
        let made = try run("/usr/bin/env", ["python3", "-m", "venv", venv.path])
        guard made.status == 0 else { throw setupFailure("python3 -m venv failed (Debian: apt-get install python3-venv): \(made.output)") }
        let pip = try run(venv.appendingPathComponent("bin/pip").path, ["install", "--disable-pip-version-check", "-q", "\(package)==\(version)"])
        guard pip.status == 0 else {
            try? FileManager.default.removeItem(at: venv)
            throw setupFailure("pip install \(package)==\(version) failed: \(pip.output.suffix(3000))")
        }
        return venv
    }

    /// Starts `executable`; its stdout and stderr together are read into the drain.
    ///
    /// A child inherits the signal mask of the thread that starts it, and the test process's
    /// threads block most signals: Moonraker and OctoPrint would never see SIGTERM (and be
    /// killed after 10 s). So the child is started through Python, which clears the mask and
    /// then becomes `executable`.
    static func spawn(_ executable: String, _ arguments: [String]) throws -> (Process, PipeDrain) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
            executable,
        ] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let drain = PipeDrain(pipe.fileHandleForReading)
        try process.run()
        return (process, drain)
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let (process, drain) = try spawn(executable, arguments)
        let data = drain.wait()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// SIGTERM, up to 10 s to exit, then SIGKILL; returns once the process is gone.
    static func terminate(_ process: Process) {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }

    /// Polls `GET path` until any HTTP status answers (the port opens before the app does).
    static func waitUntilAnswering(port: Int, path: String, process: Process, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let response = try? RawClient(port: port, timeoutSeconds: 5).request("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
                response.status > 0
            {
                return true
            }
            guard process.isRunning else { return false }
            Thread.sleep(forTimeInterval: 0.25)
        }
        return false
    }

    static func setupFailure(_ message: String, file: StaticString = #filePath, line: UInt = #line) -> Error {
        XCTFail(message, file: file, line: line)
        return CocoaError(.executableLoad)
    }
}
