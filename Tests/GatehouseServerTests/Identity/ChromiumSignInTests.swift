import Foundation
import GatehouseTestSupport
import XCTest

/// The sign-in page in a real browser: headless Chromium (Debian's package) opens a protected
/// page, is sent to Gatehouse's sign-in, signs in through the form and lands on the proxied page.
/// Screenshots of the sign-in page (desktop and phone sizes) are kept in `.build/test-artifacts/`.
final class ChromiumSignInTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    private func chromium() throws -> String {
        for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        XCTFail("headless Chromium is needed: apt-get install chromium (.ci/run does it)")
        throw CocoaError(.fileNoSuchFile)
    }

    func testSignInThroughTheFormLandsOnTheProxiedPage() async throws {
        let chromium = try chromium()
        try await IdentityFixture.with { fx in
            let artifacts = Self.root.appendingPathComponent(".build/test-artifacts").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "python3", Self.root.appendingPathComponent("Tests/Browser/sign_in.py").path, chromium, "http://127.0.0.1:\(fx.port)",
                "alice", IdentityFixture.password, artifacts,
            ]
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            let output = PipeDrain(out.fileHandleForReading)
            let errors = PipeDrain(err.fileHandleForReading)
            try process.run()
            let stdout = output.wait()
            let stderr = String(decoding: errors.wait(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, stderr)
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: stdout) as? [String: Any], stderr)

            XCTAssertEqual(report["landed"] as? String, "/_gatehouse/login", "a browser without a session is sent to sign in")
            let form = try XCTUnwrap(report["form"] as? [String: Any])
            XCTAssertEqual(form["user"] as? Bool, true)
            XCTAssertEqual(form["password"] as? Bool, true)
            XCTAssertEqual(form["scripts"] as? Int, 0, "the sign-in page runs no script")
            let after = try XCTUnwrap(report["after"] as? [String: Any])
            XCTAssertEqual(after["path"] as? String, "/", "back where the browser wanted to go")
            XCTAssertTrue((after["text"] as? String ?? "").contains(#""path":"/""#), "the device's page: \(after)")
            let seen = try XCTUnwrap(fx.upstream.requests.last { $0.uri == "/" })
            XCTAssertEqual(seen.values("X-Remote-User"), ["alice"])
            XCTAssertEqual(seen.values("X-Remote-Auth"), ["session"])
            let cookies = try XCTUnwrap(report["cookies"] as? [[String: Any]])
            let session = try XCTUnwrap(cookies.first { $0["name"] as? String == "gatehouse_session" }, "\(cookies)")
            XCTAssertEqual(session["httpOnly"] as? Bool, true)
            XCTAssertEqual(session["sameSite"] as? String, "Lax")
            for shot in report["screenshots"] as? [String] ?? [] {
                let png = try Data(contentsOf: URL(fileURLWithPath: shot))
                XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "\(shot) is a PNG")
                XCTAssertGreaterThan(png.count, 2000, "\(shot) is not blank")
            }
        }
    }
}
