import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// End to end: the built `gatehouse` binary's `check-config` and `key generate` commands.
final class ConfigCommandTests: XCTestCase {
    private struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
        var output: String { stdout + stderr }
    }

    private func run(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try GatehouseBinary.path())
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes to their end before waiting, so a chatty child can never block on a full pipe.
        let errReader = PipeDrain(err.fileHandleForReading)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = errReader.wait()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Writes `text` to a fresh temporary `.yml` file, removed when the test ends.
    private func configFile(_ text: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-config-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("config.yml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    private static let hashA = SecretDigest.of("key-a").description
    private static let hashB = SecretDigest.of("key-b").description
    private static let hashC = SecretDigest.of("key-c").description

    // MARK: check-config

    func testCheckConfigAcceptsValidFile() throws {
        let path = try configFile("""
            listen: "127.0.0.1:8080"
            upstream: "http://127.0.0.1:5000"
            api_keys:
              - {name: slicer, user: alice, roles: [admin], hash: "\(Self.hashA)", expires: "2030-01-31T00:00:00Z"}
            trusted_networks:
              - {cidr: "192.168.1.0/24", user: lan, roles: [viewer]}
            """)
        let result = try run(["check-config", "--config", path])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.stdout.contains("OK"), result.output)
    }

    func testCheckConfigRejectsUnknownKeyNamingItsLine() throws {
        let path = try configFile("""
            listen: "127.0.0.1:8080"
            upstream: "http://127.0.0.1:5000"
            upstream_timeout: 5s
            access_log: true
            """)
        let result = try run(["check-config", "--config", path])
        XCTAssertNotEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains(":3:"), "no line 3 in: \(result.output)")
        XCTAssertTrue(result.output.contains("upstream_timeout"), "key not named in: \(result.output)")
    }

    func testCheckConfigRejectsBadExpiryDateNamingKeyPathAndLine() throws {
        let path = try configFile("""
            listen: "127.0.0.1:8080"
            upstream: "http://127.0.0.1:5000"
            api_keys:
              - name: first
                user: alice
                hash: "\(Self.hashA)"
              - name: second
                user: bob
                hash: "\(Self.hashB)"
              - name: third
                user: carol
                hash: "\(Self.hashC)"
                expires: "next tuesday"
            """)
        let result = try run(["check-config", "--config", path])
        XCTAssertNotEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("api_keys[2].expires"), "key path not named in: \(result.output)")
        XCTAssertTrue(result.output.contains(":13:"), "line 13 not named in: \(result.output)")
    }

    // MARK: key generate

    /// The key and the YAML entry `key generate` printed.
    private func generateKey() throws -> (key: String, entry: String)? {
        let result = try run(["key", "generate", "--user", "bob", "--roles", "admin"])
        XCTAssertEqual(result.status, 0, result.output)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let header = lines.firstIndex(where: { $0.hasPrefix("API key") }), header + 1 < lines.count,
            let entry = lines.first(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("- {") })
        else {
            XCTFail("unexpected output: \(result.stdout)")
            return nil
        }
        return (lines[header + 1].trimmingCharacters(in: .whitespaces), entry)
    }

    func testKeyGeneratePrintsA43CharacterURLSafeKey() throws {
        guard let (key, _) = try generateKey() else { return }
        XCTAssertEqual(key.utf8.count, 43, "key: \(key)")
        let urlSafe = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        XCTAssertTrue(key.utf8.allSatisfy(urlSafe.contains), "key is not URL-safe: \(key)")
    }

    func testKeyGenerateEntryHashIsSHA256OfPrintedKey() throws {
        guard let (key, entry) = try generateKey() else { return }
        guard let start = entry.range(of: "hash: \"")?.upperBound,
            let end = entry[start...].firstIndex(of: "\"")
        else {
            return XCTFail("no hash in entry: \(entry)")
        }
        XCTAssertEqual(String(entry[start..<end]), SecretDigest.of(key).description)
        XCTAssertFalse(entry.contains(key), "the entry holds the key itself")
    }

    func testKeyGenerateEntryPastedIntoConfigPassesCheckConfig() throws {
        guard let (key, entry) = try generateKey() else { return }
        let text = "listen: \"127.0.0.1:8080\"\nupstream: \"http://127.0.0.1:5000\"\napi_keys:\n\(entry)\n"
        let path = try configFile(text)
        let result = try run(["check-config", "--config", path])
        XCTAssertEqual(result.status, 0, "\(result.output)\n--- file:\n\(text)")
        let loaded = try ConfigLoader.load(path: path)
        XCTAssertEqual(loaded.apiKeys.map(\.user), ["bob"])
        XCTAssertEqual(loaded.apiKeys.first?.roles, ["admin"])
        XCTAssertEqual(loaded.apiKeys.first?.digest, SecretDigest.of(key))
    }
}

