import Foundation
import GatehouseTestSupport
import XCTest

/// End to end: `gatehouse user …` and the admin bootstrap of `gatehouse serve`, on a real store file.
final class UserCommandTests: XCTestCase {
    private var directory: URL!
    private var config: String { directory.appendingPathComponent("config.yml").path }
    private var storePath: String { directory.appendingPathComponent("data/gatehouse.db").path }

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-users-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "listen: \"127.0.0.1:0\"\nstore: {path: data/gatehouse.db}\n".write(toFile: config, atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func run(_ arguments: [String], stdin: String = "", environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try GatehouseBinary.run(arguments, stdin: stdin, environment: environment)
    }

    func testAddListPasswdDisableEnableDeleteRoundTrip() throws {
        var r = try run(["user", "add", "alice", "--roles", "admin", "operator", "--config", config], stdin: "first long password\n")
        XCTAssertEqual(r.status, 0, r.output)
        r = try run(["user", "list", "--config", config])
        XCTAssertTrue(r.output.contains("alice\tadmin,operator\t"), r.output)
        XCTAssertTrue(r.output.contains("enabled"), r.output)
        XCTAssertFalse(r.output.contains("first long password"))

        r = try run(["user", "passwd", "alice", "--config", config], stdin: "second long password\n")
        XCTAssertEqual(r.status, 0, r.output)
        r = try run(["user", "disable", "alice", "--config", config])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(try run(["user", "list", "--config", config]).output.contains("disabled"))
        r = try run(["user", "enable", "alice", "--config", config])
        XCTAssertEqual(r.status, 0, r.output)
        r = try run(["user", "delete", "alice", "--store", storePath])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertFalse(try run(["user", "list", "--config", config]).output.contains("alice"))
    }

    func testAShortPasswordAndADuplicateNameAreRefusedWithoutChangingTheStore() throws {
        var r = try run(["user", "add", "bob", "--config", config], stdin: "short\n")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("at least 10 characters"), r.output)
        XCTAssertEqual(try run(["user", "add", "bob", "--config", config], stdin: "a good long password\n").status, 0)
        r = try run(["user", "add", "bob", "--config", config], stdin: "another long password\n")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("exists already"), r.output)
    }

    /// Work past the threshold (1 s; scrypt on a Raspberry Pi takes longer) is announced on
    /// standard error with its duration; quick work is not. The threshold is lowered or raised
    /// here so that neither case depends on this machine's speed.
    func testSlowWorkIsAnnouncedWithItsDurationAndQuickWorkIsNot() throws {
        let slow = try run(["user", "add", "alice", "--config", config], stdin: "first long password\n", environment: ["GATEHOUSE_PROGRESS_AFTER": "0"])
        XCTAssertEqual(slow.status, 0, slow.output)
        XCTAssertTrue(slow.output.contains("hashing the password (scrypt)…"), slow.output)
        XCTAssertNotNil(slow.output.range(of: #"hashing the password \(scrypt\): done in \d+\.\d s"#, options: .regularExpression), slow.output)
        XCTAssertFalse(slow.output.contains("first long password"))
        let quiet = try run(["user", "add", "bob", "--config", config], stdin: "second long password\n", environment: ["GATEHOUSE_PROGRESS_AFTER": "60"])
        XCTAssertEqual(quiet.status, 0, quiet.output)
        XCTAssertFalse(quiet.output.contains("hashing"), quiet.output)
        XCTAssertFalse(quiet.output.contains("done in"), quiet.output)
    }

    func testChangingAMissingUserFails() throws {
        let r = try run(["user", "disable", "ghost", "--config", config])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("no user named 'ghost'"), r.output)
    }

    func testServeRefusesToStartOnACorruptStore() throws {
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: storePath, contents: Data("garbage".utf8), attributes: [.posixPermissions: 0o600]))
        let r = try run(["serve", "--config", config])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("not an SQLite database"), r.output)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: storePath)), Data("garbage".utf8))
    }

    func testServeCreatesAdminOnceWithThePasswordFromTheEnvironment() throws {
        let serve = try ServeProcess(arguments: ["serve", "--config", config], environment: ["GATEHOUSE_ADMIN_PASSWORD": "admin from env 123"])
        addTeardownBlock { serve.kill() }
        XCTAssertNotNil(serve.waitForListeningPort(), serve.output)
        XCTAssertTrue(serve.output.contains("created user admin with the password from GATEHOUSE_ADMIN_PASSWORD"), serve.output)
        XCTAssertFalse(serve.output.contains("admin from env 123"), "the given password was logged")
        serve.terminate()
        XCTAssertEqual(serve.waitForExit(seconds: 10), 0, serve.output)
        let list = try run(["user", "list", "--config", config])
        XCTAssertTrue(list.output.contains("admin\tadmin\t"), list.output)
    }
}
