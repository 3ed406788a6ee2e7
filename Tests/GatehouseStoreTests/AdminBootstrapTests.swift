import Foundation
import GatehouseCore
import GatehouseStore
import XCTest

final class AdminBootstrapTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-admin-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func store() throws -> SQLiteStore { try SQLiteStore(path: directory.appendingPathComponent("g.db").path) }

    func testAnEmptyStoreGetsAnAdminWithARandomPasswordShownOnce() throws {
        let db = try store()
        guard case .createdWithRandomPassword(let password) = try AdminBootstrap.ensureAdmin(in: db, policy: PasswordPolicy(), givenPassword: nil) else {
            return XCTFail("no random password")
        }
        XCTAssertGreaterThanOrEqual(password.count, 43)
        let admin = try XCTUnwrap(try db.user(named: "admin"))
        XCTAssertEqual(admin.roles, ["admin"])
        XCTAssertTrue(admin.passwordHash.verify(password))
        XCTAssertEqual(try AdminBootstrap.ensureAdmin(in: db, policy: PasswordPolicy(), givenPassword: nil), .usersExist)
        XCTAssertTrue(try XCTUnwrap(try db.user(named: "admin")).passwordHash.verify(password), "a second start must not reset the password")
    }

    func testTheGivenPasswordIsUsedWhenItPassesThePolicy() throws {
        let db = try store()
        XCTAssertEqual(try AdminBootstrap.ensureAdmin(in: db, policy: PasswordPolicy(), givenPassword: "from the environment"), .createdWithGivenPassword)
        XCTAssertTrue(try XCTUnwrap(try db.user(named: "admin")).passwordHash.verify("from the environment"))
    }

    func testATooShortGivenPasswordCreatesNothing() throws {
        let db = try store()
        XCTAssertThrowsError(try AdminBootstrap.ensureAdmin(in: db, policy: PasswordPolicy(), givenPassword: "short"))
        XCTAssertEqual(try db.userCount(), 0)
    }
}
