import Foundation
import XCTest

/// A real Moonraker (the Klipper API server behind Mainsail and Fluidd; from PyPI, in a virtualenv
/// under `.build/`) running on loopback without Klipper and calling nothing outside
/// (`../shared/upstreams/moonraker.md`): `/server/info`, `/access/*` and `/websocket` answer,
/// printer endpoints report Klippy disconnected (`/printer/*` is 404 until Klippy connects).
///
/// Moonraker trusts 127.0.0.1 only, so whatever reaches it through Gatehouse is trusted, exactly
/// like a printer set up with `trusted_clients` for its proxy. Moonraker still reads
/// credentials itself: `Authorization: Bearer <not a Moonraker JWT>`, `X-Access-Token`,
/// `?access_token=` or a wrong `X-Api-Key` get 401 even from a trusted address, and with
/// `use_xheaders` on (its default) `X-Forwarded-For` (last entry) and `X-Real-IP` replace the
/// peer address it checks against `trusted_clients`.
///
/// The virtualenv is made on first use (`python3 -m venv`, `pip install moonraker==VERSION`,
/// about 20 seconds) and kept in `.build/moonraker-venv-VERSION`; a missing `python3` or an install
/// that fails is a test failure, never a skip. Moonraker's JWT signing needs libsodium
/// (Debian: `libsodium23`) at run time. Logs go to `data/logs`; an empty `data/misc/usb.ids`
/// keeps Moonraker from downloading it.
public enum MoonrakerUpstream {
    public static let version = "0.11.0"

    /// Starts Moonraker on a free loopback port, trusting 127.0.0.1 only, `force_logins` off.
    public static func start(file: StaticString = #filePath, line: UInt = #line) throws -> PythonUpstream {
        let moonraker = try PythonUpstreamProcess.virtualenv(package: "moonraker", version: version, executable: "moonraker")
            .appendingPathComponent("bin/moonraker").path
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-moonraker-\(UUID().uuidString)")
        for folder in ["config", "data/logs", "data/misc"] {
            try FileManager.default.createDirectory(at: base.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        try Data().write(to: base.appendingPathComponent("data/misc/usb.ids"))
        let port = try StreamTest.unusedPort()
        try """
            [server]
            host: 127.0.0.1
            port: \(port)
            klippy_uds_address: \(base.appendingPathComponent("klippy.sock").path)

            [authorization]
            force_logins: False
            trusted_clients:
                127.0.0.1

            [machine]
            provider: none
            validate_service: False

            [announcements]
            dev_mode: True

            """.write(to: base.appendingPathComponent("config/moonraker.conf"), atomically: true, encoding: .utf8)
        return try PythonUpstream.launch(
            "Moonraker", executable: moonraker,
            arguments: ["-d", base.appendingPathComponent("data").path, "-c", base.appendingPathComponent("config/moonraker.conf").path],
            port: port, baseDirectory: base, readyPath: "/server/info", seconds: 60, file: file, line: line)
    }
}
