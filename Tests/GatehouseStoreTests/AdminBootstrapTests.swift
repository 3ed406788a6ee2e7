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

    func testAnEmptyStoreGetsAnAdminWithARandomPasswordShownOnce() async throws {
        let db = try store()
        guard case .createdWithRandomPassword(let password) = try await AdminBootstrap.ensureAdmin(in: db, policy: PasswordPolicy(), givenPassword: nil) else {
            return XCTFail("no random password")
        }
        XCTAssertGreaterThanOrEqual(password.count, 43)
        let admin = try XCTUnwrap(try db.user(named: "admin"))
        XCTAssertEqual(admin.roles, ["admin"])
        XCTAssertTrue(admin.passwordHash.verify(password))
        let second = try await AdminBootstrap.ensureAdmin(in: db, policy: PasswordPolicy(), givenPassword: nil)
        XCTAssertEqual(second, .usersExist)
        XCTAssertTrue(try XCTUnwrap(try db.user(named: "admin")).passwordHash.verify(password), "a second start must not reset the password")
    }

    func testTheGivenPasswordIsUsedWhenItPassesThePolicy() async throws {
        let db = try store()
        let outcome = try await AdminBootstrap.ensureAdmin(in: db, policy: PasswordPolicy(), givenPassword: "from the environment")
        XCTAssertEqual(outcome, .createdWithGivenPassword)
        XCTAssertTrue(try XCTUnwrap(try db.user(named: "admin")).passwordHash.verify("from the environment"))
    }

    func testATooShortGivenPasswordCreatesNothing() async throws {
        let db = try store()
        do {
            _ = try await AdminBootstrap.ensureAdmin(in: db, policy: PasswordPolicy(), givenPassword: "short")
            XCTFail("a password the policy refuses was accepted")
        } catch {
            guard case .password = error else { return XCTFail("wrong failure: \(error)") }
        }
        XCTAssertEqual(try db.userCount(), 0)
    }
}
