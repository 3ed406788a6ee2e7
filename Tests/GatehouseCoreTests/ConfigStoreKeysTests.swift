import Foundation
import XCTest

@testable import GatehouseCore

final class ConfigStoreKeysTests: XCTestCase {
    func testDefaultsAreGatehouseDbAndTenCharacters() throws {
        let config = try ConfigLoader.parse(yaml: "listen: \"127.0.0.1:8080\"\n")
        XCTAssertEqual(config.storePath, "./gatehouse.db")
        XCTAssertEqual(config.passwordPolicy.minimumLength, 10)
    }

    func testARelativeStorePathIsResolvedAgainstTheConfigFilesDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("config.yml").path
        try "store: {path: data/g.db}\npasswords: {min_length: 14}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(path: file)
        XCTAssertEqual(config.storePath, dir.appendingPathComponent("data/g.db").standardizedFileURL.path)
        XCTAssertEqual(config.passwordPolicy.minimumLength, 14)
    }

    func testAnAbsoluteStorePathIsKept() throws {
        XCTAssertEqual(try ConfigLoader.parse(yaml: "store: {path: /var/lib/gatehouse/g.db}\n").storePath, "/var/lib/gatehouse/g.db")
    }

    func testUnknownStoreKeyAndBadMinimumNameTheirLines() {
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: "listen: \"127.0.0.1:8080\"\nstore:\n  file: x.db\n")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(":3:") && text.contains("store.file"), text)
        }
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: "passwords: {min_length: 0}\n")) { error in
            XCTAssertTrue("\(error)".contains("passwords.min_length"), "\(error)")
        }
    }

    func testAPostgresURLWithItsSettingsIsTheSharedStore() throws {
        let config = try ConfigLoader.parse(yaml: """
            store:
              url: "postgres://gatehouse@db.lan:6432/farm"
              password_file: /run/secrets/pg
              tls: verify-full
              ca_file: /etc/ssl/db-ca.pem
              pool_size: 4
            """)
        var expected = SharedStoreSettings(username: "gatehouse", host: "db.lan", port: 6432, database: "farm")
        expected.passwordFile = "/run/secrets/pg"
        expected.caFile = "/etc/ssl/db-ca.pem"
        expected.poolSize = 4
        XCTAssertEqual(config.sharedStore, expected)
        XCTAssertEqual(config.sharedStore?.tls, .verifyFull, "verify-full unless told otherwise")
        XCTAssertEqual(try ConfigLoader.parse(yaml: "store: {url: \"postgresql://g@[fd00::5]/d\"}\n").sharedStore?.description, "postgres://g@[fd00::5]:5432/d")
        XCTAssertNil(try ConfigLoader.parse(yaml: "store: {path: g.db}\n").sharedStore)
    }

    func testEveryWrongSharedStoreSettingNamesKeyAndLine() {
        let cases: [(String, String)] = [
            ("store:\n  url: \"postgres://gatehouse:hunter2@db/farm\"\n", "password_file"),
            ("store:\n  url: \"mysql://gatehouse@db/farm\"\n", "postgres://"),
            ("store:\n  url: \"postgres://db/farm\"\n", "database user"),
            ("store:\n  url: \"postgres://gatehouse@db\"\n", "name the database"),
            ("store:\n  url: \"postgres://gatehouse@db/farm?sslmode=disable\"\n", "not in the URL"),
            ("store:\n  url: \"postgres://gatehouse@db/farm\"\n  tls: prefer\n", "verify-full"),
            ("store:\n  url: \"postgres://gatehouse@db/farm\"\n  tls: disable\n  ca_file: ca.pem\n", "verify-full"),
            ("store:\n  url: \"postgres://gatehouse@db/farm\"\n  pool_size: 0\n", "store.pool_size"),
            ("store:\n  path: g.db\n  url: \"postgres://gatehouse@db/farm\"\n", "not both"),
            ("store:\n  path: g.db\n  pool_size: 3\n", "url: postgres://"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try ConfigLoader.parse(yaml: yaml), yaml) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(expected) && text.contains("store."), "\(yaml) → \(text)")
                XCTAssertFalse(text.contains("hunter2"), "the password is never repeated: \(text)")
            }
        }
    }

    func testAFileNextToTheConfigIsWhereRelativeSharedStoreFilesAndTheSelfSignedDirectoryAre() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("config.yml").path
        try """
            store: {url: "postgres://g@db/farm", password_file: secrets/pg, ca_file: ca.pem}
            tls: {self_signed: true, self_signed_dir: state}
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(path: file)
        XCTAssertEqual(config.sharedStore?.passwordFile, dir.appendingPathComponent("secrets/pg").standardizedFileURL.path)
        XCTAssertEqual(config.sharedStore?.caFile, dir.appendingPathComponent("ca.pem").standardizedFileURL.path)
        XCTAssertEqual(config.tls?.certificate, .selfSigned(directory: dir.appendingPathComponent("state").standardizedFileURL.path))
    }

    func testASelfSignedDirectoryWithoutASelfSignedCertificateNamesItsLine() {
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: "tls:\n  cert_file: c.pem\n  key_file: k.pem\n  self_signed_dir: state\n")) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(":4:") && text.contains("tls.self_signed_dir") && text.contains("self_signed: true"), text)
        }
    }
}
