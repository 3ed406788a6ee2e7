import Foundation
import GatehouseCore
import XCTest

@testable import GatehouseStore

/// Sessions, run-time keys and issued tokens in a real SQLite file.
final class CredentialStoreTests: XCTestCase {
    private var directory: URL!
    private var store: SQLiteStore!
    private let t0 = Date(timeIntervalSince1970: 1_900_000_000)

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-cred-\(UUID().uuidString)")
        store = try SQLiteStore(path: directory.appendingPathComponent("gatehouse.db").path)
        for (name, roles) in [("alice", ["operator"]), ("bob", ["viewer"])] {
            try store.addUser(UserRecord(
                username: name, passwordHash: try PasswordHash.make("a long password", parameters: ScryptParameters(n: 16, r: 1, p: 1)),
                roles: roles, created: t0))
        }
    }

    override func tearDownWithError() throws {
        store = nil
        try? FileManager.default.removeItem(at: directory)
    }

    private func session(_ secret: String, user: String = "alice") -> SessionRecord {
        SessionRecord(digest: .of(secret), username: user, created: t0, lastSeen: t0, expires: t0.addingTimeInterval(3600), remember: false, origin: "127.0.0.1")
    }

    func testSessionRoundTripWithItsUser() throws {
        try store.addSession(session("s1"))
        let (found, user) = try XCTUnwrap(try store.session(digest: .of("s1")))
        XCTAssertEqual(found, session("s1"))
        XCTAssertEqual(user.username, "alice")
        XCTAssertEqual(user.roles, ["operator"])
        XCTAssertNil(try store.session(digest: .of("s2")))
        try store.recordUses([.session(.of("s1")): t0.addingTimeInterval(60)])
        XCTAssertEqual(try store.session(digest: .of("s1"))?.0.lastSeen, t0.addingTimeInterval(60))
        XCTAssertEqual(try store.sessions(publicIDPrefix: String(session("s1").publicID.prefix(6))).count, 1)
        XCTAssertTrue(try store.deleteSession(digest: .of("s1")))
        XCTAssertFalse(try store.deleteSession(digest: .of("s1")))
    }

    func testDeletingAUserRemovesEverythingIssuedToThem() throws {
        try store.addSession(session("s1"))
        try store.addSession(session("s2", user: "bob"))
        try store.addAPIKey(StoredAPIKey(name: "k1", username: "alice", roles: nil, digest: .of("key1"), readOnly: false, expires: nil, created: t0))
        try store.addToken(IssuedToken(jti: "j1", username: "alice", kind: .access, family: "f", created: t0, expires: nil))
        XCTAssertTrue(try store.deleteUser(named: "alice"))
        XCTAssertNil(try store.session(digest: .of("s1")))
        XCTAssertNil(try store.apiKey(digest: .of("key1")))
        XCTAssertNil(try store.token(jti: "j1"))
        XCTAssertNotNil(try store.session(digest: .of("s2")), "bob's session stays")
    }

    func testAPIKeyNamesAreUniqueAndNeedAUser() throws {
        let key = StoredAPIKey(name: "k1", username: "alice", roles: ["viewer"], digest: .of("key1"), readOnly: true, expires: t0, created: t0, description: "slicer")
        try store.addAPIKey(key)
        XCTAssertThrowsError(try store.addAPIKey(StoredAPIKey(name: "k1", username: "bob", roles: nil, digest: .of("key2"), readOnly: false, expires: nil, created: t0)))
        XCTAssertThrowsError(try store.addAPIKey(StoredAPIKey(name: "k9", username: "nobody", roles: nil, digest: .of("key9"), readOnly: false, expires: nil, created: t0)))
        let (found, user) = try XCTUnwrap(try store.apiKey(digest: .of("key1")))
        XCTAssertEqual(found, key)
        XCTAssertEqual(user.username, "alice")
        try store.recordUses([.apiKey(name: "k1"): t0.addingTimeInterval(5)])
        XCTAssertEqual(try store.apiKeys(ofUser: "alice").first?.lastUsed, t0.addingTimeInterval(5))
        XCTAssertTrue(try store.deleteAPIKey(named: "k1"))
        XCTAssertNil(try store.apiKey(digest: .of("key1")))
    }

    func testRefreshTokenExchangeIsOnceAndReuseRevokesTheFamily() throws {
        try store.addToken(IssuedToken(jti: "r1", username: "alice", kind: .refresh, family: "fam", created: t0, expires: nil))
        try store.addToken(IssuedToken(jti: "a1", username: "alice", kind: .access, family: "fam", created: t0, expires: nil))
        try store.addToken(IssuedToken(jti: "other", username: "alice", kind: .access, family: "fam2", created: t0, expires: nil))
        XCTAssertEqual(try store.exchangeRefreshToken(jti: "a1", issuing: []), .refused, "an access token is not exchanged")
        XCTAssertEqual(try store.exchangeRefreshToken(jti: "r1", issuing: []), .accepted)
        XCTAssertEqual(try store.exchangeRefreshToken(jti: "r1", issuing: []), .reused(family: "fam"))
        XCTAssertEqual(try store.token(jti: "a1")?.0.revoked, true)
        XCTAssertEqual(try store.token(jti: "other")?.0.revoked, false)
        XCTAssertEqual(try store.exchangeRefreshToken(jti: "nope", issuing: []), .refused)
    }

    func testTheReplacementsOfAnExchangeAreStoredWithItAndRevokedByAReuse() throws {
        try store.addToken(IssuedToken(jti: "r1", username: "alice", kind: .refresh, family: "fam", created: t0, expires: nil))
        let replacements = [
            IssuedToken(jti: "a2", username: "alice", kind: .access, family: "fam", created: t0, expires: nil),
            IssuedToken(jti: "r2", username: "alice", kind: .refresh, family: "fam", created: t0, expires: nil),
        ]
        XCTAssertEqual(try store.exchangeRefreshToken(jti: "r1", issuing: replacements), .accepted)
        XCTAssertEqual(try store.token(jti: "a2")?.0.revoked, false, "stored by the exchange itself")
        XCTAssertEqual(try store.exchangeRefreshToken(jti: "r1", issuing: [IssuedToken(jti: "a3", username: "alice", kind: .access, family: "fam", created: t0, expires: nil)]), .reused(family: "fam"))
        XCTAssertEqual(try store.token(jti: "a2")?.0.revoked, true)
        XCTAssertEqual(try store.token(jti: "r2")?.0.revoked, true)
        XCTAssertNil(try store.token(jti: "a3"), "a refused exchange stores nothing")
    }

    func testAFamilylessRefreshTokensReplacementsAreRevokedByItsReuse() throws {
        // Older stores hold refresh tokens without a family: their replacements take the jti as theirs.
        try store.addToken(IssuedToken(jti: "old", username: "alice", kind: .refresh, family: nil, created: t0, expires: nil))
        let replacement = IssuedToken(jti: "next", username: "alice", kind: .access, family: "old", created: t0, expires: nil)
        XCTAssertEqual(try store.exchangeRefreshToken(jti: "old", issuing: [replacement]), .accepted)
        XCTAssertEqual(try store.exchangeRefreshToken(jti: "old", issuing: []), .reused(family: nil))
        XCTAssertEqual(try store.token(jti: "next")?.0.revoked, true)
    }

    func testPurgeDropsOnlyWhatEnded() throws {
        try store.addSession(session("s1"))
        try store.addToken(IssuedToken(jti: "never", username: "alice", kind: .longLived, family: nil, created: t0, expires: nil))
        try store.addToken(IssuedToken(jti: "soon", username: "alice", kind: .access, family: nil, created: t0, expires: t0.addingTimeInterval(10)))
        XCTAssertEqual(try store.purgeExpired(now: t0.addingTimeInterval(20)), 1)
        XCTAssertEqual(try store.purgeExpired(now: t0.addingTimeInterval(4000)), 1)
        XCTAssertNotNil(try store.token(jti: "never"))
    }
}
