import Foundation
import XCTest

/// A real OctoPrint (from PyPI, in a virtualenv under `.build/`) running on loopback, configured
/// to call nothing outside and announce nothing (`../shared/upstreams/octoprint.md`), and to
/// trust `X-Remote-User` — which only Gatehouse can set, since only Gatehouse reaches it.
///
/// The virtualenv is made on first use (`python3 -m venv`, `pip install octoprint==VERSION`,
/// about a minute) and kept in `.build/octoprint-venv`; a missing `python3` or an install that
/// fails is a test failure, never a skip.
public enum OctoPrintUpstream {
    public static let version = "1.11.8"

    /// Users OctoPrint knows: `alice` (admin) and `bob`, both with this password (only OctoPrint's
    /// own login would use it; through Gatehouse the identity header decides).
    public static let password = "octoprint-test-password"

    public static func start(file: StaticString = #filePath, line: UInt = #line) throws -> PythonUpstream {
        let octoprint = try PythonUpstreamProcess.virtualenv(package: "octoprint", version: version, executable: "octoprint")
            .appendingPathComponent("bin/octoprint").path
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
            let result = try PythonUpstreamProcess.run(octoprint, ["--basedir", base.path, "user", "add", "--password", password] + (admin ? ["--admin"] : []) + [name])
            guard result.status == 0 else { throw PythonUpstreamProcess.setupFailure("adding OctoPrint user \(name) failed: \(result.output)", file: file, line: line) }
        }
        let port = try StreamTest.unusedPort()
        return try PythonUpstream.launch(
            "OctoPrint", executable: octoprint,
            arguments: ["serve", "--iknowwhatimdoing", "--host", "127.0.0.1", "--port", String(port), "--basedir", base.path],
            port: port, baseDirectory: base, readyPath: "/api/version", seconds: 90, file: file, line: line)
    }
}
