import Foundation
import GatehouseCore
import XCTest

@testable import GatehouseStore

/// The credential cache in front of a real SQLite store: what it may answer from memory, and
/// every change that must stop it from answering.
final class CredentialCacheTests: XCTestCase {
    private var directory: URL!
    private var path: String!
    private var store: SQLiteStore!
    private var clock: Date = Date(timeIntervalSince1970: 1_900_000_000)
    private let keySecret = "k-" + String(repeating: "a", count: 41)
    private let sessionSecret = "s-" + String(repeating: "b", count: 41)

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-cache-\(UUID().uuidString)")
        path = directory.appendingPathComponent("gatehouse.db").path
        store = try SQLiteStore(path: path)
        let hash = try PasswordHash.make("a long password", parameters: ScryptParameters(n: 16, r: 1, p: 1))
        try store.addUser(UserRecord(username: "alice", passwordHash: hash, roles: ["operator"], created: clock))
        try store.addAPIKey(StoredAPIKey(
            name: "slicer", username: "alice", roles: nil, digest: .of(keySecret), readOnly: false, expires: nil, created: clock, lastUsed: clock))
        try store.addSession(SessionRecord(
            digest: .of(sessionSecret), username: "alice", created: clock, lastSeen: clock, expires: clock.addingTimeInterval(7 * 86400),
            remember: true, origin: "127.0.0.1"))
    }

    override func tearDownWithError() throws {
        store = nil
        try? FileManager.default.removeItem(at: directory)
    }

    private func authenticator(over store: SQLiteStore? = nil, cache: CredentialCache = CredentialCache()) -> StoredCredentialAuthenticator {
        let fixedNow = clock
        return StoredCredentialAuthenticator(
            store: store ?? self.store,
            tokens: TokenAuthority(secret: Array(repeating: 7, count: 32), settings: JWTSettings()),
            sessions: SessionPolicy(), oneShotTokens: OneShotTokens(), cache: cache, now: { fixedNow })
    }

    private func expect(
        _ auth: StoredCredentialAuthenticator, _ kind: StoredCredentialKind, secret: String, now: Date, user expected: String,
        file: StaticString = #filePath, line: UInt = #line
    ) async {
        let result = await auth.authenticate(kind, secret: secret, now: now)
        XCTAssertEqual(user(result), expected, "\(result)", file: file, line: line)
    }

    private func expect(
        _ auth: StoredCredentialAuthenticator, _ kind: StoredCredentialKind, secret: String, now: Date,
        _ failure: Result<Identity, AuthenticationFailure>, file: StaticString = #filePath, line: UInt = #line
    ) async {
        let result = await auth.authenticate(kind, secret: secret, now: now)
        XCTAssertEqual(result, failure, file: file, line: line)
    }

    private func user(_ result: Result<Identity, AuthenticationFailure>?) -> String? {
        guard case .success(let identity)? = result else { return nil }
        return identity.user
    }

    // MARK: The table itself

    private func someEntry() throws -> any CachedCredential {
        let (session, user) = try XCTUnwrap(try store.session(digest: .of(sessionSecret)))
        return CachedSession(session, user)
    }

    func testEntriesBelongToOneRevisionAndOnlyWhileConfirmed() throws {
        let cache = CredentialCache(capacity: 4, confirmationLimit: .seconds(1))
        let key = CredentialCacheKey.apiKey(.of("x"))
        let value = try someEntry()
        let t = ContinuousClock.now
        cache.insert(value, for: key, readAt: 3, current: 3)
        XCTAssertNil(cache.entry(for: key, revision: 3, at: t), "never confirmed: not trusted")
        cache.confirm(revision: 3, at: t)
        XCTAssertNotNil(cache.entry(for: key, revision: 3, at: t + .milliseconds(500)))
        XCTAssertNil(cache.entry(for: key, revision: 3, at: t + .milliseconds(1500)), "confirmation too old")
        XCTAssertNil(cache.entry(for: key, revision: 3, at: t - .milliseconds(1)), "confirmation from the future")
        XCTAssertNil(cache.entry(for: key, revision: 4, at: t), "the store moved on: dropped")
        XCTAssertEqual(cache.count, 0)
        XCTAssertNil(cache.entry(for: key, revision: 3, at: t), "and not back when asked with the old revision")

        cache.insert(value, for: key, readAt: 4, current: 5)
        XCTAssertEqual(cache.count, 0, "read before a write that finished before the insert: not kept")
        cache.insert(value, for: key, readAt: 3, current: 3)
        XCTAssertEqual(cache.count, 0, "older than what the cache has seen: not kept")
    }

    func testCapacityBoundsMemoryOldestFirst() throws {
        let cache = CredentialCache(capacity: 3)
        let value = try someEntry()
        let t = ContinuousClock.now
        cache.confirm(revision: 1, at: t)
        for i in 0..<10 { cache.insert(value, for: .apiKey(.of("k\(i)")), readAt: 1, current: 1) }
        XCTAssertEqual(cache.count, 3)
        XCTAssertNil(cache.entry(for: .apiKey(.of("k6")), revision: 1, at: t))
        for i in 7..<10 { XCTAssertNotNil(cache.entry(for: .apiKey(.of("k\(i)")), revision: 1, at: t)) }
        XCTAssertEqual(CredentialCache(capacity: 0).count, 0)
    }

    // MARK: In front of the store

    func testARepeatedCredentialIsAnsweredFromMemoryUntilThisProcessWithdrawsIt() async throws {
        let auth = authenticator()
        XCTAssertNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock), "first use asks the store")
        await expect(auth, .apiKey, secret: keySecret, now: clock, user: "alice")
        XCTAssertEqual(user(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock)), "alice")
        await expect(auth, .session, secret: sessionSecret, now: clock, user: "alice")
        XCTAssertEqual(user(auth.authenticateFromMemory(.session, secret: sessionSecret, now: clock)), "alice")
        XCTAssertNil(auth.authenticateFromMemory(.apiKey, secret: "k-" + String(repeating: "z", count: 41), now: clock))
        await expect(auth, .apiKey, secret: "k-" + String(repeating: "z", count: 41), now: clock, .failure(.unknownAPIKey))

        XCTAssertTrue(try store.deleteAPIKey(named: "slicer"))
        XCTAssertNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock), "revoked: not from memory")
        await expect(auth, .apiKey, secret: keySecret, now: clock, .failure(.unknownAPIKey))

        await expect(auth, .session, secret: sessionSecret, now: clock, user: "alice")
        XCTAssertTrue(try store.deleteSession(digest: .of(sessionSecret)))
        XCTAssertNil(auth.authenticateFromMemory(.session, secret: sessionSecret, now: clock), "logged out: not from memory")
        await expect(auth, .session, secret: sessionSecret, now: clock, .failure(.invalidSession))
    }

    func testUserChangesAndTokenRevocationWithdrawCachedAnswers() async throws {
        let auth = authenticator()
        let signed = try await auth.tokens.issue(kind: .access, username: "alice", roles: ["operator"], family: nil, now: clock)
        try store.addToken(signed.record)
        await expect(auth, .jsonWebToken, secret: signed.token, now: clock, user: "alice")
        XCTAssertEqual(user(auth.authenticateFromMemory(.jsonWebToken, secret: signed.token, now: clock)), "alice")
        XCTAssertEqual(
            auth.authenticateFromMemory(.jsonWebToken, secret: signed.token, now: clock.addingTimeInterval(3600 + 31)),
            .failure(.invalidToken(reason: "it has expired")), "expiry is judged on every answer, cached or not")
        XCTAssertTrue(try store.revokeToken(jti: signed.record.jti))
        XCTAssertNil(auth.authenticateFromMemory(.jsonWebToken, secret: signed.token, now: clock))
        await expect(auth, .jsonWebToken, secret: signed.token, now: clock, .failure(.invalidToken(reason: "it has been revoked")))

        await expect(auth, .apiKey, secret: keySecret, now: clock, user: "alice")
        XCTAssertTrue(try store.setDisabled(true, forUser: "alice"))
        XCTAssertNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock))
        await expect(auth, .apiKey, secret: keySecret, now: clock, .failure(.disabledUser))
        XCTAssertTrue(try store.setDisabled(false, forUser: "alice"))
        await expect(auth, .apiKey, secret: keySecret, now: clock, user: "alice")
        XCTAssertTrue(try store.deleteUser(named: "alice"))
        await expect(auth, .apiKey, secret: keySecret, now: clock, .failure(.unknownAPIKey))
    }

    func testBookkeepingWritesDoNotEmptyTheCacheAndDueBookkeepingGoesToTheStore() async throws {
        let auth = authenticator()
        let later = clock.addingTimeInterval(61)
        await expect(auth, .apiKey, secret: keySecret, now: clock, user: "alice")
        let revision = store.knownRevision
        XCTAssertNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: later), "last_used is due: asks the store")
        await expect(auth, .apiKey, secret: keySecret, now: later, user: "alice")
        XCTAssertEqual(auth.uses.waiting, 1, "written off the request path")
        XCTAssertEqual(try store.apiKey(named: "slicer")?.lastUsed, clock)
        await auth.uses.flush()
        XCTAssertEqual(try store.apiKey(named: "slicer")?.lastUsed, later)
        XCTAssertEqual(store.knownRevision, revision, "touching last_used withdraws nothing")
        XCTAssertEqual(user(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: later.addingTimeInterval(30))), "alice")
    }

    func testAnotherProcessesWriteIsSeenAtTheNextConfirmation() async throws {
        let cache = CredentialCache(confirmationLimit: .milliseconds(300))
        let auth = authenticator(cache: cache)
        await expect(auth, .apiKey, secret: keySecret, now: clock, user: "alice")
        XCTAssertNotNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock))

        // A second connection pool on the same file stands for `gatehouse key revoke` in another process.
        let other = try SQLiteStore(path: path)
        XCTAssertTrue(try other.deleteAPIKey(named: "slicer"))
        XCTAssertGreaterThan(other.knownRevision, store.knownRevision, "this process has not looked yet")

        let instant = ContinuousClock.now
        cache.confirm(revision: try store.refreshRevision(), at: instant)
        XCTAssertNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock), "the poll saw the write")
        await expect(auth, .apiKey, secret: keySecret, now: clock, .failure(.unknownAPIKey))
    }

    func testWithoutAConfirmationTheCacheStopsAnswering() async throws {
        let cache = CredentialCache(confirmationLimit: .milliseconds(100))
        let auth = authenticator(cache: cache)
        await expect(auth, .apiKey, secret: keySecret, now: clock, user: "alice")
        XCTAssertNotNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock))
        try await Task.sleep(for: .milliseconds(250))
        XCTAssertNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock), "no poll for longer than the limit")
    }

    func testTheWatchConfirmsUntilCancelled() async throws {
        let auth = authenticator(cache: CredentialCache(confirmationLimit: .seconds(1)))
        await expect(auth, .apiKey, secret: keySecret, now: clock, user: "alice")
        let watch = Task { await auth.watchStore(every: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(1500))
        XCTAssertNotNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock), "kept confirmed by the watch past the limit")
        let other = try SQLiteStore(path: path)
        XCTAssertTrue(try other.setDisabled(true, forUser: "alice"))
        let deadline = ContinuousClock.now + .seconds(5)
        while store.knownRevision < other.knownRevision && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(store.knownRevision, other.knownRevision, "the watch read the other process's revision")
        XCTAssertNil(auth.authenticateFromMemory(.apiKey, secret: keySecret, now: clock))
        await expect(auth, .apiKey, secret: keySecret, now: clock, .failure(.disabledUser))
        watch.cancel()
        await watch.value
    }
}
