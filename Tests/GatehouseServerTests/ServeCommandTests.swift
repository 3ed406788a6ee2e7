import Foundation
import GatehouseCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import GatehouseTestSupport
import XCTest

/// End to end: the built `gatehouse serve` process in front of a recording upstream — its access
/// log and its reaction to SIGTERM.
final class ServeCommandTests: XCTestCase {
    private static let key = "serve-key-0123456789abcdef0123456789abcdef"

    /// Starts `gatehouse serve` with a config on a fresh port in front of `upstreamPort`.
    private func startServe(upstreamPort: Int, extra: String = "", environment: [String: String] = [:]) throws -> ServeProcess {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("config.yml")
        try """
            listen: "127.0.0.1:0"
            upstream: "http://127.0.0.1:\(upstreamPort)"
            query_api_key: true
            access_log: true
            timeouts: {drain: 30s}
            api_keys:
              - {name: slicer, user: alice, roles: [admin], hash: "\(SecretDigest.of(Self.key))"}
            \(extra)
            """.write(to: file, atomically: true, encoding: .utf8)
        let process = try ServeProcess(arguments: ["serve", "--threads", "1", "--config", file.path], environment: environment)
        addTeardownBlock { process.kill() }
        return process
    }

    func testNothingAtStartWaitsForADeviceThatHoldsItsFirstAnswer() async throws {
        // OctoPrint starting on a Pi: `GET /`, where Gatehouse gets its CSRF pair, takes seconds.
        try await withRecordingUpstream(holdRoot: .seconds(4)) { upstream in
            let serve = try startServe(upstreamPort: upstream.port, extra: "octoprint_csrf: true")
            let port = try XCTUnwrap(serve.waitForListeningPort(), serve.output)
            XCTAssertTrue(ProxyFixture.eventually { upstream.requests.contains { $0.uri == "/" } }, "Gatehouse asks for the pair in the background")
            XCTAssertEqual(upstream.rootAnswers, 0, "listening before the device answered")
            // A reload while the device is still silent is a reload, not the end of the process.
            serve.signal(SIGHUP)
            XCTAssertTrue(serve.waitForOutput { $0.contains("reloaded") }, serve.output)
            XCTAssertEqual(upstream.rootAnswers, 0)
            // A slicer's upload waits for the pair instead of going without it (and being refused by OctoPrint).
            let upload = try RawClient(port: port, timeoutSeconds: 30).request(
                "POST /api/files/local HTTP/1.1\r\nHost: t\r\nX-Api-Key: \(Self.key)\r\nContent-Length: 5\r\nConnection: close\r\n\r\nG28\r\n")
            XCTAssertEqual(upload.status, 200, upload.bodyText)
            let seen = upstream.requests.first { $0.method == "POST" }
            XCTAssertEqual(seen?.values("X-CSRF-Token"), [RecordingUpstream.deviceCSRFToken])
            XCTAssertEqual(upstream.rootAnswers, 1)
            serve.terminate()
            XCTAssertEqual(serve.waitForExit(seconds: 10), 0, serve.output)
        }
    }

    func testSIGTERMWhileTheDeviceIsSilentDrainsAndExits() async throws {
        try await withRecordingUpstream(holdRoot: .seconds(30)) { upstream in
            let serve = try startServe(upstreamPort: upstream.port, extra: "octoprint_csrf: true")
            _ = try XCTUnwrap(serve.waitForListeningPort(), serve.output)
            serve.terminate()
            XCTAssertEqual(serve.waitForExit(seconds: 10), 0, serve.output)
            XCTAssertTrue(serve.output.contains("draining"), serve.output)
        }
    }

    func testAccessLogHasOneLinePerRequestWithoutQueryOrCredential() async throws {
        try await withRecordingUpstream { upstream in
            let serve = try startServe(upstreamPort: upstream.port)
            let port = try XCTUnwrap(serve.waitForListeningPort(), serve.output)

            let ok = try RawClient(port: port).request(
                "GET /api/job?apikey=\(Self.key)&ref=secret-looking-ref HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(ok.status, 200)
            let denied = try RawClient(port: port).request(
                "GET /api/files HTTP/1.1\r\nHost: t\r\nX-Api-Key: wrong-key-never-to-be-logged\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(denied.status, 401)

            XCTAssertTrue(serve.waitForOutput { $0.contains("GET /api/files 401") }, serve.output)
            let log = serve.output
            XCTAssertTrue(log.contains("GET /api/job 200 user=alice auth=api_key"), log)
            XCTAssertTrue(log.contains("GET /api/files 401 user=- auth=-"), log)
            XCTAssertFalse(log.contains(Self.key), "the key was logged:\n\(log)")
            XCTAssertFalse(log.contains("wrong-key-never-to-be-logged"), "a presented credential was logged:\n\(log)")
            XCTAssertFalse(log.contains("secret-looking-ref"), "the query string was logged:\n\(log)")
            serve.terminate()
            XCTAssertEqual(serve.waitForExit(seconds: 10), 0, serve.output)
        }
    }

    func testJSONLogFormatWritesOneObjectPerLine() async throws {
        try await withRecordingUpstream { upstream in
            // Every start-up step announced as slow work (threshold 0): those notices are log
            // lines too, never plain text in a JSON stream (the admin bootstrap took over a second
            // on a loaded machine and broke the format).
            let serve = try startServe(upstreamPort: upstream.port, extra: "log: {format: json}", environment: ["GATEHOUSE_PROGRESS_AFTER": "0"])
            let port = try XCTUnwrap(serve.waitForListeningPort(), serve.output)
            let line = serve.output.split(separator: "\n").first { $0.contains("listening on") } ?? ""
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
            XCTAssertEqual(object?["level"], "info", String(line))
            XCTAssertEqual(object?["label"], "gatehouse")
            let ok = try RawClient(port: port).request("GET /api/job HTTP/1.1\r\nHost: t\r\nX-Api-Key: \(Self.key)\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(ok.status, 200)
            XCTAssertTrue(serve.waitForOutput { $0.contains("GET /api/job 200") }, serve.output)
            XCTAssertTrue(serve.output.contains("making admin if there are none: done in"), serve.output)
            for text in serve.output.split(separator: "\n") {
                XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not JSON: \(text)")
            }
            serve.terminate()
            XCTAssertEqual(serve.waitForExit(seconds: 10), 0, serve.output)
        }
    }

    /// `tls: {self_signed: true}` from the binary: the certificate beside the store, its
    /// fingerprint in the log matching what a client is served, and `gatehouse health` (the
    /// image's health check) asking over HTTPS.
    func testSelfSignedHTTPSAndTheHealthCommand() async throws {
        try await withRecordingUpstream { upstream in
            let port = try StreamTest.unusedPort()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-serve-tls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
            let file = dir.appendingPathComponent("config.yml").path
            try "listen: \"127.0.0.1:\(port)\"\nupstream: \"http://127.0.0.1:\(upstream.port)\"\ntls: {self_signed: true}\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            let serve = try ServeProcess(arguments: ["serve", "--threads", "1", "--config", file])
            addTeardownBlock { serve.kill() }
            XCTAssertEqual(serve.waitForListeningPort(), port, serve.output)
            XCTAssertTrue(serve.output.contains("clients speak HTTPS"), serve.output)
            let line = try XCTUnwrap(serve.output.split(separator: "\n").first { $0.contains("SHA-256 fingerprint") })
            let logged = try XCTUnwrap(line.split(separator: " ").last.map(String.init))
            let pem = try String(contentsOfFile: dir.appendingPathComponent("gatehouse-tls.crt").path, encoding: .utf8)
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let answer = try await TLSTestClient.get(port: port, path: "/_gatehouse/healthz", trusting: pem, group: group)
            try await group.shutdownGracefully()
            XCTAssertEqual(answer.status, 200)
            XCTAssertEqual(answer.fingerprint, logged)

            let healthy = try GatehouseBinary.run(["health", "--config", file])
            XCTAssertEqual(healthy.status, 0, healthy.output)
            XCTAssertTrue(healthy.output.contains("/_gatehouse/healthz: 200"), healthy.output)
            serve.terminate()
            XCTAssertEqual(serve.waitForExit(seconds: 10), 0, serve.output)
            let down = try GatehouseBinary.run(["health", "--config", file])
            XCTAssertNotEqual(down.status, 0, "a stopped Gatehouse is not healthy")
            XCTAssertTrue(down.output.contains("did not answer /_gatehouse/healthz"), down.output)
        }
    }

    func testSIGTERMLetsTheRequestInFlightFinishThenExitsZero() async throws {
        try await withRecordingUpstream { upstream in
            let serve = try startServe(upstreamPort: upstream.port)
            let port = try XCTUnwrap(serve.waitForListeningPort(), serve.output)
            // A 64 MiB download not read until after the signal: still in flight when it arrives,
            // held back by backpressure.
            let client = try RawClient(port: port)
            try client.send("GET /download?bytes=67108864 HTTP/1.1\r\nHost: t\r\nX-Api-Key: \(Self.key)\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(ProxyFixture.eventually { upstream.requests.count == 1 })
            serve.terminate()
            XCTAssertTrue(serve.waitForOutput { $0.contains("draining") }, serve.output)
            var received = 0
            let response = try client.readResponse(discardBody: true, bodyCount: &received)
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(received, 67_108_864, "the drained download was cut short")
            XCTAssertEqual(serve.waitForExit(seconds: 10), 0, serve.output)
            // After the exit nothing listens any more.
            XCTAssertThrowsError(try RawClient(port: port))
        }
    }
}

/// SIGHUP re-reads the config: keys and rules change for the next request, even on a kept-alive
/// connection; requests in flight finish; an invalid file changes nothing and says where it is wrong.
final class ReloadTests: XCTestCase {
    private static let first = "first-key-0123456789abcdef0123456789abcdef"
    private static let second = "second-key-0123456789abcdef0123456789abcdef"

    private func config(_ upstream: Int, key: String, user: String, extra: String = "") -> String {
        """
        listen: "127.0.0.1:0"
        upstream: "http://127.0.0.1:\(upstream)"
        access_log: false
        timeouts: {drain: 30s, tunnel_recheck: 1s}
        api_keys:
          - {name: k, user: \(user), roles: [admin], hash: "\(SecretDigest.of(key))"}
        \(extra)
        """
    }

    private static func get(_ client: RawClient, _ path: String, key: String, close: Bool = false) throws -> RawResponse {
        try client.request("GET \(path) HTTP/1.1\r\nHost: t\r\nX-Api-Key: \(key)\r\n\(close ? "Connection: close\r\n" : "")\r\n")
    }

    func testSIGHUPAppliesKeysAndRulesAndKeepsTheOldConfigWhenTheNewOneIsWrong() async throws {
        try await withRecordingUpstream { upstream in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-reload-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
            let file = dir.appendingPathComponent("config.yml")
            try config(upstream.port, key: Self.first, user: "alice").write(to: file, atomically: true, encoding: .utf8)
            let serve = try ServeProcess(arguments: ["serve", "--threads", "1", "--config", file.path])
            addTeardownBlock { serve.kill() }
            let port = try XCTUnwrap(serve.waitForListeningPort(), serve.output)
            let kept = try RawClient(port: port)
            XCTAssertEqual(try Self.get(kept, "/api/printer", key: Self.first).status, 200)
            // A WebSocket tunnel opened with the key that the new file drops.
            let tunnel = try RawClient(port: port, timeoutSeconds: 5)
            try tunnel.send(
                "GET /ws HTTP/1.1\r\nHost: t\r\nX-Api-Key: \(Self.first)\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            XCTAssertEqual(try tunnel.readResponse().status, 101)

            // A download in flight when the config changes finishes under the old one.
            let downloading = try RawClient(port: port)
            try downloading.send("GET /download?bytes=16777216 HTTP/1.1\r\nHost: t\r\nX-Api-Key: \(Self.first)\r\nConnection: close\r\n\r\n")
            XCTAssertTrue(ProxyFixture.eventually { upstream.requests.contains { $0.uri.hasPrefix("/download") } })

            try config(upstream.port, key: Self.second, user: "bob", extra: """
                limits: {max_connections: 10}
                access_rules:
                  - {prefix: /secret, access: deny}
                """).write(to: file, atomically: true, encoding: .utf8)
            serve.signal(SIGHUP)
            XCTAssertTrue(serve.waitForOutput { $0.contains("reloaded") }, serve.output)
            XCTAssertTrue(serve.output.contains("limits.max_connections changed; it takes effect after a restart"), serve.output)
            XCTAssertTrue(serve.waitForOutput { $0.contains(#""event":"config_reloaded""#) }, "the reload is audited: \(serve.output)")

            XCTAssertEqual(try Self.get(kept, "/api/printer", key: Self.first).status, 401, "a removed key stops working on a kept-alive connection")
            XCTAssertEqual(try Self.get(kept, "/api/printer", key: Self.second).status, 200)
            XCTAssertEqual(upstream.requests.last?.values("X-Remote-User"), ["bob"])
            XCTAssertEqual(try Self.get(kept, "/secret/x", key: Self.second).status, 403, "a rule added to the file applies")
            XCTAssertTrue(tunnel.isClosedByPeer(), "a tunnel opened with a removed key is closed at its next recheck")

            var received = 0
            let download = try downloading.readResponse(discardBody: true, bodyCount: &received)
            XCTAssertEqual(download.status, 200)
            XCTAssertEqual(received, 16_777_216, "the request in flight was cut short by the reload")

            // A broken file: the running config stays, the log says where.
            try (config(upstream.port, key: Self.first, user: "alice") + "\nbogus_setting: 1\n").write(to: file, atomically: true, encoding: .utf8)
            serve.signal(SIGHUP)
            XCTAssertTrue(serve.waitForOutput { $0.contains("reload failed") }, serve.output)
            let failure = serve.output.split(separator: "\n").first { $0.contains("reload failed") } ?? ""
            XCTAssertTrue(failure.contains("config.yml:8") && failure.contains("bogus_setting"), String(failure))
            XCTAssertTrue(serve.waitForOutput { $0.contains(#""event":"config_reload_failed""#) }, serve.output)
            XCTAssertEqual(try Self.get(kept, "/api/printer", key: Self.second).status, 200, "the running config stays")
            XCTAssertEqual(try Self.get(kept, "/api/printer", key: Self.first, close: true).status, 401)
            serve.terminate()
            XCTAssertEqual(serve.waitForExit(seconds: 10), 0, serve.output)
        }
    }
}

/// A `gatehouse` child process whose stdout and stderr are collected as they arrive.
final class ServeProcess: Sendable {
    private let process: Process
    private let collected = NIOLockedValueBox(Data())

    init(arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try GatehouseBinary.path())
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let collected = self.collected
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let chunk = handle.availableData
            if chunk.isEmpty { handle.readabilityHandler = nil } else { collected.withLockedValue { $0.append(chunk) } }
        }
        try process.run()
        self.process = process
    }

    var output: String { collected.withLockedValue { String(decoding: $0, as: UTF8.self) } }

    /// Waits up to `seconds` until the output satisfies `condition`.
    func waitForOutput(seconds: Double = 10, _ condition: (String) -> Bool) -> Bool {
        ProxyFixture.eventually(seconds: seconds) { condition(output) }
    }

    /// The port from the "listening on …:PORT," log line, once it appears.
    func waitForListeningPort() -> Int? {
        guard waitForOutput({ $0.contains("listening on") }) else { return nil }
        let line = output.split(separator: "\n").first { $0.contains("listening on") } ?? ""
        guard let colon = line.range(of: ", forwarding")?.lowerBound else { return nil }
        let before = line[..<colon]
        return before.split(separator: ":").last.flatMap { Int($0) }
    }

    func terminate() { process.terminate() }

    func signal(_ sig: Int32) { Glibc.kill(process.processIdentifier, sig) }

    func kill() { if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) } }

    /// The exit status, or nil when the process is still running after `seconds`.
    func waitForExit(seconds: Double) -> Int32? {
        guard ProxyFixture.eventually(seconds: seconds, { !process.isRunning }) else { return nil }
        return process.terminationStatus
    }
}

/// Runs `body` with a recording upstream on loopback, always stopped afterwards.
func withRecordingUpstream(holdRoot: TimeAmount? = nil, _ body: (RecordingUpstream) async throws -> Void) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let upstream = try await RecordingUpstream.start(group: group, holdRoot: holdRoot)
    do {
        try await body(upstream)
    } catch {
        await upstream.stop()
        try? await group.shutdownGracefully()
        throw error
    }
    await upstream.stop()
    try await group.shutdownGracefully()
}
