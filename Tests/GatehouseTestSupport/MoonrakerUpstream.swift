import Foundation
import XCTest

/// A real Moonraker (the Klipper API server behind Mainsail and Fluidd; from PyPI, in a virtualenv
/// under `.build/`) running on loopback without Klipper and calling nothing outside
/// (`../shared/upstreams/moonraker.md`): `/server/info`, `/access/*` and `/websocket` answer,
/// printer endpoints report Klippy disconnected (`/printer/*` is 404 until Klippy connects).
///
/// By default Moonraker trusts 127.0.0.1, so whatever reaches it through Gatehouse is trusted,
/// exactly like a printer set up with `trusted_clients` for its proxy. Moonraker still reads
/// credentials itself: `Authorization: Bearer <not a Moonraker JWT>`, `X-Access-Token`,
/// `?access_token=` or a wrong `X-Api-Key` get 401 even from a trusted address, and with
/// `use_xheaders` on (its default) `X-Forwarded-For` (last entry) and `X-Real-IP` replace the
/// peer address it checks against `trusted_clients`.
///
/// The virtualenv is made on first use (`python3 -m venv`, `pip install moonraker==VERSION`,
/// about 20 seconds) and kept in `.build/moonraker-venv-VERSION`; a missing `python3` or an install
/// that fails is a test failure, never a skip. Moonraker's JWT signing needs libsodium
/// (Debian: `libsodium23`) at run time.
public final class MoonrakerUpstream: @unchecked Sendable {
    public static let version = "0.11.0"
    public let port: Int
    public let baseDirectory: URL
    private let process: Process
    private let output: PipeDrain

    /// The password of every user made with `start(users:)`.
    public static let password = "moonraker-test-password"

    /// Starts Moonraker on a free loopback port.
    /// - trustLoopback: `trusted_clients` is 127.0.0.1 (else a documentation range nothing here uses).
    /// - forceLogins: Moonraker's `force_logins`; it takes effect only once a user exists.
    /// - users: Moonraker users to make (password `password`). They are made over HTTP while
    ///   loopback is trusted; when the final configuration trusts less, Moonraker is restarted with it.
    public static func start(
        trustLoopback: Bool = true, forceLogins: Bool = false, users: [String] = [],
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> MoonrakerUpstream {
        let moonraker = try PythonUpstreamProcess.virtualenv(package: "moonraker", version: version, executable: "moonraker").appendingPathComponent("bin/moonraker").path
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-moonraker-\(UUID().uuidString)")
        // Logs go to data/logs; an empty data/misc/usb.ids keeps Moonraker from downloading it.
        for folder in ["config", "data/logs", "data/misc"] {
            try FileManager.default.createDirectory(at: base.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        try Data().write(to: base.appendingPathComponent("data/misc/usb.ids"))
        let port = try StreamTest.unusedPort()
        let arguments = ["-d", base.appendingPathComponent("data").path, "-c", base.appendingPathComponent("config/moonraker.conf").path]

        if !users.isEmpty {
            try writeConfig(base: base, port: port, trustLoopback: true, forceLogins: false)
            let (process, drain) = try PythonUpstreamProcess.spawn(moonraker, arguments)
            guard PythonUpstreamProcess.waitUntilAnswering(port: port, path: "/server/info", process: process, seconds: 60) else {
                PythonUpstreamProcess.terminate(process)
                try? FileManager.default.removeItem(at: base)
                throw PythonUpstreamProcess.setupFailure("Moonraker did not start on port \(port): \(String(decoding: drain.wait(), as: UTF8.self).suffix(3000))", file: file, line: line)
            }
            for user in users {
                let made = try? post(port: port, path: "/access/user", json: ["username": user, "password": password])
                guard let made, made.status == 200 else {
                    PythonUpstreamProcess.terminate(process)
                    try? FileManager.default.removeItem(at: base)
                    throw PythonUpstreamProcess.setupFailure("making Moonraker user \(user) failed: \(made.map { "\($0.status) \($0.bodyText)" } ?? "no answer")", file: file, line: line)
                }
            }
            if trustLoopback && !forceLogins {
                return MoonrakerUpstream(port: port, baseDirectory: base, process: process, output: drain)
            }
            PythonUpstreamProcess.terminate(process)
            _ = drain.wait()
        }

        try writeConfig(base: base, port: port, trustLoopback: trustLoopback, forceLogins: forceLogins)
        let (process, drain) = try PythonUpstreamProcess.spawn(moonraker, arguments)
        let upstream = MoonrakerUpstream(port: port, baseDirectory: base, process: process, output: drain)
        if PythonUpstreamProcess.waitUntilAnswering(port: port, path: "/server/info", process: process, seconds: 60) { return upstream }
        upstream.stop()
        throw PythonUpstreamProcess.setupFailure("Moonraker did not start on port \(port): \(String(decoding: drain.wait(), as: UTF8.self).suffix(3000))", file: file, line: line)
    }

    private init(port: Int, baseDirectory: URL, process: Process, output: PipeDrain) {
        self.port = port
        self.baseDirectory = baseDirectory
        self.process = process
        self.output = output
    }

    /// Moonraker's own JWT for `user` (`POST /access/login`), to check what Moonraker does with it.
    public func accessToken(for user: String) throws -> String {
        let response = try Self.post(port: port, path: "/access/login", json: ["username": user, "password": Self.password, "source": "moonraker"])
        guard response.status == 200,
            let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let result = object["result"] as? [String: Any], let token = result["token"] as? String
        else { throw RawClientError.malformed("login of \(user): \(response.status) \(response.bodyText.prefix(300))") }
        return token
    }

    /// Moonraker's log file (every request, with the address it saw): readable until `stop()`.
    public var logFile: URL { baseDirectory.appendingPathComponent("data/logs/moonraker.log") }

    public func stop() {
        PythonUpstreamProcess.terminate(process)
        try? FileManager.default.removeItem(at: baseDirectory)
    }

    private static func writeConfig(base: URL, port: Int, trustLoopback: Bool, forceLogins: Bool) throws {
        try """
            [server]
            host: 127.0.0.1
            port: \(port)
            klippy_uds_address: \(base.appendingPathComponent("klippy.sock").path)

            [authorization]
            force_logins: \(forceLogins ? "True" : "False")
            trusted_clients:
                \(trustLoopback ? "127.0.0.1" : "192.0.2.0/24")

            [machine]
            provider: none
            validate_service: False

            [announcements]
            dev_mode: True

            """.write(to: base.appendingPathComponent("config/moonraker.conf"), atomically: true, encoding: .utf8)
    }

    private static func post(port: Int, path: String, json: [String: String]) throws -> RawResponse {
        let body = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
        return try RawClient(port: port, timeoutSeconds: 10).request(
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
    }
}
