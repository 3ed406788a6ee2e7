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
}
