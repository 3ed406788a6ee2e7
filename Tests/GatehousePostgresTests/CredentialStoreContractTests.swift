import Foundation
import GatehouseCore
import GatehousePostgres
import GatehouseStore
import GatehouseTestSupport
import Logging
import Synchronization
import Testing

/// The store protocol's contract, run against both backends: a real SQLite file and a real
/// PostgreSQL database (``PostgresTestServer``). Each test gets an empty store of its own and,
/// for the tests about several processes, a second handle on the same data (a second
/// `SQLiteStore` on the file; a second `PostgresStore` on the database).
@Suite struct CredentialStoreContractTests {
    private let t0 = Date(timeIntervalSince1970: 1_900_000_000)
    private static let fast = ScryptParameters(n: 16, r: 1, p: 1)

    private func user(_ name: String, password: String = "a long password", roles: [String] = ["viewer"]) throws -> UserRecord {
        UserRecord(username: name, passwordHash: try PasswordHash.make(password, parameters: Self.fast), roles: roles, created: t0)
    }

    private func session(_ secret: String, user: String = "alice") -> SessionRecord {
        SessionRecord(
            digest: .of(secret), username: user, created: t0, lastSeen: t0, expires: t0.addingTimeInterval(3600), remember: false, origin: "127.0.0.1")
    }

    private func key(_ name: String, user: String = "alice", secret: String? = nil) -> StoredAPIKey {
        StoredAPIKey(name: name, username: user, roles: nil, digest: .of(secret ?? "secret of " + name), readOnly: false, expires: nil, created: t0)
    }

    private func token(_ jti: String, _ kind: IssuedTokenKind = .access, family: String? = "fam", expires: Date? = nil) -> IssuedToken {
        IssuedToken(jti: jti, username: "alice", kind: kind, family: family, created: t0, expires: expires)
    }

    private func expectConflict(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            try await body()
            Issue.record("stored, but it should have been a conflict", sourceLocation: sourceLocation)
        } catch StoreError.conflict {
        } catch {
            Issue.record("not a conflict: \(error)", sourceLocation: sourceLocation)
        }
    }

    /// A fresh store with alice (operator) and bob (viewer).
    private func withPeople(_ backend: StoreBackend, _ body: (any CredentialStore, StoreBackend.Handles) async throws -> Void) async throws {
        try await backend.withStores { handles in
            let store = handles.first
            try await store.addUser(try user("alice", roles: ["operator"]))
            try await store.addUser(try user("bob"))
            try await body(store, handles)
        }
    }

    /// Two processes' login guards on a fresh store with alice and bob.
    private func withGuards(
        _ backend: StoreBackend, maxFailures: Int, _ body: (any LoginGuard, any LoginGuard) async throws -> Void
    ) async throws {
        try await withPeople(backend) { _, handles in
            var policy = LoginThrottlePolicy()
            policy.maxFailures = maxFailures
            let (a, b) = try await backend.loginGuards(handles, policy)
            try await body(a, b)
        }
    }

    // MARK: Users

    @Test(arguments: StoreBackend.all)
    func anExistingNameIsAConflictAndTheFirstUserStays(_ backend: StoreBackend) async throws {
        try await backend.withStores { handles in
            let store = handles.first
            try await store.addUser(try user("alice", password: "first password here"))
            let second = try user("alice", password: "second password here")
            await expectConflict { try await store.addUser(second) }
            #expect(try await store.user(named: "alice")?.passwordHash.verify("first password here") == true)
            #expect(try await store.user(named: "Alice") == nil, "names are case-sensitive")
            try await store.addUser(try user("Alice"))
            #expect(try await store.userCount() == 2)
            #expect(try await store.users().map(\.username) == ["Alice", "alice"])
        }
    }

    @Test(arguments: StoreBackend.all)
    func changesReachOnlyTheNamedUser(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, _ in
            #expect(try await store.changePassword(try PasswordHash.make("alice new password", parameters: Self.fast), forUser: "alice"))
            #expect(try await store.setDisabled(true, forUser: "alice"))
            #expect(try await store.setRoles(["admin", "viewer"], forUser: "alice"))
            let alice = try #require(try await store.user(named: "alice"))
            #expect(alice.disabled && alice.roles == ["admin", "viewer"] && alice.passwordHash.verify("alice new password"))
            let bob = try #require(try await store.user(named: "bob"))
            #expect(!bob.disabled && bob.roles == ["viewer"] && bob.passwordHash.verify("a long password"))
            #expect(try await store.deleteUser(named: "alice"))
            #expect(try await store.users().map(\.username) == ["bob"])
            #expect(try await !store.deleteUser(named: "ghost"))
            #expect(try await !store.setDisabled(true, forUser: "ghost"))
            #expect(try await !store.setRoles([], forUser: "ghost"))
            #expect(try await !store.changePassword(try PasswordHash.make("whatever long", parameters: Self.fast), forUser: "ghost"))
        }
    }

    @Test(arguments: StoreBackend.all)
    func aNewPasswordEndsSignInsButNotKeysOrIssuedTokens(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, _ in
            try await store.addSession(session("alice's session"))
            try await store.addSession(session("bob's session", user: "bob"))
            try await store.addToken(token("a1"))
            try await store.addToken(token("r1", .refresh))
            try await store.addToken(token("long", .longLived, family: nil))
            try await store.addAPIKey(key("k1"))
            let before = store.knownRevision
            #expect(try await store.changePassword(try PasswordHash.make("alice new password", parameters: Self.fast), forUser: "alice"))
            #expect(store.knownRevision > before, "a withdrawal moves the revision")
            #expect(try await store.sessions(ofUser: "alice").isEmpty)
            #expect(try await store.sessions(ofUser: "bob").count == 1)
            let tokens = Dictionary(uniqueKeysWithValues: try await store.tokens(ofUser: "alice").map { ($0.jti, $0.revoked) })
            #expect(tokens == ["a1": true, "r1": true, "long": false])
            #expect(try await store.apiKey(named: "k1") != nil)
        }
    }

    @Test(arguments: StoreBackend.all)
    func aStrongerHashNeverUndoesAPasswordChange(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, handles in
            let other = try await handles.another()
            let checked = try #require(try await store.user(named: "alice")).passwordHash
            let stronger = try PasswordHash.make("a long password", parameters: ScryptParameters(n: 32, r: 1, p: 1))
            // Another process changes the password between the check and the rehash.
            #expect(try await other.changePassword(try PasswordHash.make("the new password", parameters: Self.fast), forUser: "alice"))
            #expect(try await !store.rehashPassword(checked, to: stronger, forUser: "alice"))
            #expect(try await store.user(named: "alice")?.passwordHash.verify("the new password") == true, "the change stands")
            let current = try #require(try await store.user(named: "alice")).passwordHash
            let rehashed = try PasswordHash.make("the new password", parameters: ScryptParameters(n: 32, r: 1, p: 1))
            #expect(try await store.rehashPassword(current, to: rehashed, forUser: "alice"))
            #expect(try await other.user(named: "alice")?.passwordHash == rehashed)
        }
    }

    // MARK: Sessions, keys, tokens

    @Test(arguments: StoreBackend.all)
    func aSessionComesBackWithItsUser(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, _ in
            try await store.addSession(session("s1"))
            let (found, owner) = try #require(try await store.session(digest: .of("s1")))
            #expect(found == session("s1"))
            #expect(owner.username == "alice" && owner.roles == ["operator"])
            #expect(try await store.session(digest: .of("s2")) == nil)
            try await store.recordUses([.session(.of("s1")): t0.addingTimeInterval(60)])
            #expect(try await store.session(digest: .of("s1"))?.0.lastSeen == t0.addingTimeInterval(60))
            try await store.recordUses([.session(.of("s1")): t0.addingTimeInterval(30)])
            #expect(try await store.session(digest: .of("s1"))?.0.lastSeen == t0.addingTimeInterval(60), "a slower process never moves it back")
            #expect(try await store.sessions(publicIDPrefix: String(session("s1").publicID.prefix(6))).count == 1)
            #expect(try await store.sessions(publicIDPrefix: "%").isEmpty, "a prefix is hex digits, never a pattern")
            try await store.addSession(session("s3", user: "bob"))
            #expect(try await store.sessions(ofUser: "bob").map(\.digest) == [.of("s3")])
            #expect(try await store.sessions(ofUser: nil).count == 2)
            #expect(try await store.deleteSessions(ofUser: "bob") == 1)
            #expect(try await store.deleteSession(digest: .of("s1")))
            #expect(try await !store.deleteSession(digest: .of("s1")))
        }
    }

    @Test(arguments: StoreBackend.all)
    func deletingAUserRemovesEverythingIssuedToThem(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, _ in
            try await store.addSession(session("s1"))
            try await store.addSession(session("s2", user: "bob"))
            try await store.addAPIKey(key("k1"))
            try await store.addToken(token("j1"))
            #expect(try await store.deleteUser(named: "alice"))
            #expect(try await store.session(digest: .of("s1")) == nil)
            #expect(try await store.apiKey(named: "k1") == nil)
            #expect(try await store.token(jti: "j1") == nil)
            #expect(try await store.session(digest: .of("s2")) != nil, "bob's session stays")
        }
    }

    @Test(arguments: StoreBackend.all)
    func keyNamesAreUniqueAndAKeyNeedsItsUser(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, _ in
            let first = StoredAPIKey(
                name: "k1", username: "alice", roles: ["viewer"], digest: .of("key1"), readOnly: true, expires: t0, created: t0, description: "slicer")
            try await store.addAPIKey(first)
            for refused in [key("k1", user: "bob"), key("k9", user: "nobody")] {
                await expectConflict { try await store.addAPIKey(refused) }
            }
            let (found, owner) = try #require(try await store.apiKey(digest: .of("key1")))
            #expect(found == first && owner.username == "alice")
            try await store.recordUses([.apiKey(name: "k1"): t0.addingTimeInterval(5)])
            #expect(try await store.apiKeys(ofUser: "alice").first?.lastUsed == t0.addingTimeInterval(5))
            try await store.recordUses([.apiKey(name: "k1"): t0.addingTimeInterval(2)])
            #expect(try await store.apiKeys(ofUser: "alice").first?.lastUsed == t0.addingTimeInterval(5), "a slower process never moves it back")
            #expect(try await store.apiKeys(ofUser: "bob").isEmpty)
            #expect(try await store.deleteAPIKey(named: "k1"))
            #expect(try await store.apiKey(digest: .of("key1")) == nil)
        }
    }

    @Test(arguments: StoreBackend.all)
    func aRefreshTokenIsExchangedOnceAndItsReuseRevokesTheFamily(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, _ in
            try await store.addToken(token("r1", .refresh))
            try await store.addToken(token("a1"))
            try await store.addToken(token("other", family: "fam2"))
            let replacements = [token("a2"), token("r2", .refresh)]
            #expect(try await store.exchangeRefreshToken(jti: "a1", issuing: []) == .refused, "an access token is not exchanged")
            #expect(try await store.exchangeRefreshToken(jti: "r1", issuing: replacements) == .accepted)
            #expect(try await store.token(jti: "a2")?.0.revoked == false, "stored by the exchange itself")
            #expect(try await store.exchangeRefreshToken(jti: "r1", issuing: [token("a3")]) == .reused(family: "fam"))
            for jti in ["a1", "a2", "r2"] { #expect(try await store.token(jti: jti)?.0.revoked == true, "\(jti)") }
            #expect(try await store.token(jti: "other")?.0.revoked == false)
            #expect(try await store.token(jti: "a3") == nil, "a refused exchange stores nothing")
            #expect(try await store.exchangeRefreshToken(jti: "nope", issuing: []) == .refused)
            // Older stores hold refresh tokens without a family: their replacements take the jti as theirs.
            try await store.addToken(token("old", .refresh, family: nil))
            #expect(try await store.exchangeRefreshToken(jti: "old", issuing: [token("next", family: "old")]) == .accepted)
            #expect(try await store.exchangeRefreshToken(jti: "old", issuing: []) == .reused(family: nil))
            #expect(try await store.token(jti: "next")?.0.revoked == true)
        }
    }

    @Test(arguments: StoreBackend.all)
    func usesNotedTogetherAreWrittenTogetherAndNeverBackwards(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, handles in
            let other = try await handles.another()
            try await store.addSession(session("s1"))
            try await store.addAPIKey(key("k1"))
            try await store.addAPIKey(key("k2"))
            let revision = store.knownRevision
            try await store.recordUses([.session(.of("s1")): t0.addingTimeInterval(90), .apiKey(name: "k1"): t0.addingTimeInterval(40), .apiKey(name: "gone"): t0])
            #expect(try await other.session(digest: .of("s1"))?.0.lastSeen == t0.addingTimeInterval(90))
            #expect(try await other.apiKey(named: "k1")?.lastUsed == t0.addingTimeInterval(40))
            #expect(try await other.apiKey(named: "k2")?.lastUsed == nil)
            try await other.recordUses([.session(.of("s1")): t0.addingTimeInterval(60), .apiKey(name: "k1"): t0.addingTimeInterval(50)])
            #expect(try await store.session(digest: .of("s1"))?.0.lastSeen == t0.addingTimeInterval(90), "a slower process never moves it back")
            #expect(try await store.apiKey(named: "k1")?.lastUsed == t0.addingTimeInterval(50))
            #expect(try await store.refreshRevision() == revision, "bookkeeping withdraws nothing")
            // Through the recorder: many uses, the latest per credential, one write.
            let recorder = UseRecorder(store: store, delay: .seconds(3600))
            for n in 0..<50 { recorder.note(.apiKey(name: n.isMultiple(of: 2) ? "k1" : "k2"), at: t0.addingTimeInterval(100 + Double(n))) }
            #expect(recorder.waiting == 2)
            await recorder.flush()
            #expect(recorder.waiting == 0)
            #expect(try await other.apiKey(named: "k1")?.lastUsed == t0.addingTimeInterval(148))
            #expect(try await other.apiKey(named: "k2")?.lastUsed == t0.addingTimeInterval(149))
        }
    }

    @Test(arguments: StoreBackend.all)
    func purgingDropsOnlyWhatEnded(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, _ in
            try await store.addSession(session("s1"))
            try await store.addToken(token("never", .longLived, family: nil))
            try await store.addToken(token("soon", family: nil, expires: t0.addingTimeInterval(10)))
            #expect(try await store.purgeExpired(now: t0.addingTimeInterval(20)) == 1)
            #expect(try await store.purgeExpired(now: t0.addingTimeInterval(4000)) == 1)
            #expect(try await store.token(jti: "never") != nil)
        }
    }

    @Test(arguments: StoreBackend.all)
    func manyLookupsAtOnceEachFindTheirOwnRecord(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, _ in
            let n = 150
            for i in 0..<n {
                let owner = i % 2 == 0 ? "alice" : "bob"
                try await store.addSession(session("session \(i)", user: owner))
                try await store.addAPIKey(key("k\(i)", user: owner))
                try await store.addToken(IssuedToken(jti: "jti-\(i)", username: owner, kind: .access, family: nil, created: t0, expires: nil))
            }
            let revision = store.knownRevision
            // Stored and unknown ones mixed, each asked for twice, all at once: a store that
            // answers several lookups together must still give each its own record.
            let wrong = try await withThrowingTaskGroup(of: String?.self) { group in
                for i in 0..<(n + 30) {
                    for _ in 0..<2 {
                        group.addTask {
                            let owner = i >= n ? nil : i % 2 == 0 ? "alice" : "bob"
                            let (s, sr) = try await store.sessionAndRevision(digest: .of("session \(i)"))
                            let (k, kr) = try await store.apiKeyAndRevision(digest: .of("secret of k\(i)"))
                            let (t, tr) = try await store.tokenAndRevision(jti: "jti-\(i)")
                            guard sr >= revision, kr >= revision, tr >= revision else { return "\(i): an older revision" }
                            guard s?.0.digest == (owner == nil ? nil : .of("session \(i)")), s?.1.username == owner else { return "\(i): session \(String(describing: s))" }
                            guard k?.0.name == (owner == nil ? nil : "k\(i)"), k?.1.username == owner else { return "\(i): key \(String(describing: k))" }
                            guard t?.0.jti == (owner == nil ? nil : "jti-\(i)"), t?.1.username == owner else { return "\(i): token \(String(describing: t))" }
                            return nil
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { if let w = $1 { $0.append(w) } }
            }
            #expect(wrong.isEmpty, "\(wrong.prefix(5))")
        }
    }

    // MARK: Several processes

    @Test(arguments: StoreBackend.all)
    func theRevisionMovesWithEveryWithdrawalAndOnlyThen(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, handles in
            let other = try await handles.another()
            var seen = try await other.refreshRevision()
            try await store.addSession(session("s1"))
            try await store.addAPIKey(key("k1"))
            try await store.addToken(token("j1"))
            try await store.recordUses([.session(.of("s1")): t0.addingTimeInterval(60)])
            try await store.recordUses([.apiKey(name: "k1"): t0.addingTimeInterval(60)])
            #expect(try await other.refreshRevision() == seen, "adding and bookkeeping withdraw nothing")
            let withdrawals: [(String, () async throws -> Void)] = [
                ("logout", { _ = try await store.deleteSession(digest: .of("s1")) }),
                ("key revoked", { _ = try await store.deleteAPIKey(named: "k1") }),
                ("token revoked", { _ = try await store.revokeToken(jti: "j1") }),
                ("user disabled", { _ = try await store.setDisabled(true, forUser: "bob") }),
                ("roles changed", { _ = try await store.setRoles([], forUser: "alice") }),
                ("user deleted", { _ = try await store.deleteUser(named: "bob") }),
            ]
            for (what, change) in withdrawals {
                let before = store.knownRevision
                try await change()
                #expect(store.knownRevision > before, "the writer knows at once: \(what)")
                let now = try await other.refreshRevision()
                #expect(now > seen, "another process sees it: \(what)")
                seen = now
            }
        }
    }

    @Test(arguments: StoreBackend.all)
    func whatOneProcessWritesTheOtherReads(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, handles in
            let other = try await handles.another()
            try await other.addAPIKey(key("from-b", secret: "b's key"))
            #expect(try await store.apiKey(digest: .of("b's key"))?.0.name == "from-b")
            #expect(try await store.deleteAPIKey(named: "from-b"))
            #expect(try await other.apiKey(digest: .of("b's key")) == nil)
        }
    }

    @Test(arguments: StoreBackend.all)
    func parallelExchangesOfOneRefreshTokenAcceptExactlyOne(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, handles in
            let other = try await handles.another()
            try await store.addToken(token("r1", .refresh))
            let outcomes = try await withThrowingTaskGroup(of: RefreshExchange.self) { group in
                for attempt in 0..<16 {
                    let handle = attempt.isMultiple(of: 2) ? store : other
                    group.addTask { try await handle.exchangeRefreshToken(jti: "r1", issuing: [token("a-\(attempt)"), token("r-\(attempt)", .refresh)]) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 == .accepted }.count == 1)
            #expect(outcomes.filter { $0 == .reused(family: "fam") }.count == 15)
            let live = try await store.tokens(ofUser: "alice").filter { !$0.revoked }
            #expect(live.isEmpty, "every replacement is revoked by the reuse: \(live.map(\.jti))")
        }
    }

    /// Withdrawals of one user's credentials racing on two processes (a password change and
    /// single logouts, revocations, a disable): each one either lands or finds nothing left to
    /// withdraw, never fails because of the other (a deadlock between them was seen: the change
    /// took the revision first and the session second, a logout the other way round).
    @Test(arguments: StoreBackend.all)
    func withdrawalsRacingOnTwoProcessesAllLand(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, handles in
            let other = try await handles.another()
            for round in 0..<20 {
                for i in 0..<4 { try await store.addSession(session("round \(round) session \(i)")) }
                try await store.addToken(token("w-\(round)", family: "wfam-\(round)"))
                try await store.addAPIKey(key("w\(round)"))
                let hash = try PasswordHash.make("password \(round) long", parameters: Self.fast)
                let (changer, ender) = round.isMultiple(of: 2) ? (store, other) : (other, store)
                async let changed = changer.changePassword(hash, forUser: "alice")
                async let ended: [Bool] = withThrowingTaskGroup(of: Bool.self) { group in
                    for i in (0..<4).reversed() { group.addTask { try await ender.deleteSession(digest: .of("round \(round) session \(i)")) } }
                    group.addTask { try await ender.revokeToken(jti: "w-\(round)") }
                    group.addTask { try await ender.deleteAPIKey(named: "w\(round)") }
                    group.addTask { try await ender.setDisabled(round.isMultiple(of: 3), forUser: "alice") }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let (didChange, _) = try await (changed, ended)
                #expect(didChange)
                #expect(try await store.sessions(ofUser: "alice").isEmpty)
                #expect(try await store.apiKey(named: "w\(round)") == nil)
            }
        }
    }

    /// A logout (the family revoked) or a password change racing an exchange of a refresh
    /// token, on two processes: whichever order the database picks, nothing is live afterwards.
    @Test(arguments: StoreBackend.all)
    func aLogoutOrPasswordChangeRacingAnExchangeLeavesNothingLive(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, handles in
            let other = try await handles.another()
            for round in 0..<40 {
                let family = "fam-\(round)"
                try await store.addToken(token("r-\(round)", .refresh, family: family))
                let issuing = [token("a-\(round)-next", family: family), token("r-\(round)-next", .refresh, family: family)]
                let (exchanger, revoker) = round.isMultiple(of: 2) ? (store, other) : (other, store)
                async let exchanged = exchanger.exchangeRefreshToken(jti: "r-\(round)", issuing: issuing)
                async let revoked = revoker.revokeTokens(family: family)
                _ = try await (exchanged, revoked)
                let live = try await store.tokens(ofUser: "alice").filter { $0.family == family && !$0.revoked }
                #expect(live.isEmpty, "round \(round): \(live.map(\.jti)) outlived the logout")
            }
            // A password change racing an exchange: no signed-in token of the user outlives it.
            for round in 0..<20 {
                try await store.addToken(token("p-\(round)", .refresh, family: "pfam-\(round)"))
                let issuing = [token("p-\(round)-a", family: "pfam-\(round)"), token("p-\(round)-r", .refresh, family: "pfam-\(round)")]
                let (exchanger, changer) = round.isMultiple(of: 2) ? (store, other) : (other, store)
                let hash = try PasswordHash.make("password \(round) long", parameters: Self.fast)
                async let exchanged = exchanger.exchangeRefreshToken(jti: "p-\(round)", issuing: issuing)
                async let changed = changer.changePassword(hash, forUser: "alice")
                _ = try await (exchanged, changed)
                let live = try await store.tokens(ofUser: "alice").filter { !$0.revoked && $0.kind != .longLived }
                #expect(live.isEmpty, "round \(round): \(live.map(\.jti)) outlived the password change")
            }
            // A sign-in whose password was checked before a change stores nothing after it, and
            // one stored before is ended by it.
            for round in 0..<20 {
                let checked = try #require(try await store.user(named: "alice")).passwordHash
                let hash = try PasswordHash.make("sign-in round \(round) long", parameters: Self.fast)
                let (signer, changer) = round.isMultiple(of: 2) ? (store, other) : (other, store)
                async let signedIn = signer.addSignIn(
                    session: session("sign-in \(round)"), tokens: [token("s-\(round)-a", family: "sfam-\(round)")], username: "alice",
                    checkedPassword: checked)
                async let changed = changer.changePassword(hash, forUser: "alice")
                _ = try await (signedIn, changed)
                #expect(try await store.sessions(ofUser: "alice").isEmpty, "round \(round): a session outlived the password change")
                let live = try await store.tokens(ofUser: "alice").filter { !$0.revoked && $0.kind != .longLived }
                #expect(live.isEmpty, "round \(round): \(live.map(\.jti)) outlived the password change")
            }
            let current = try #require(try await store.user(named: "alice")).passwordHash
            #expect(try await other.addSignIn(session: session("fresh"), tokens: [], username: "alice", checkedPassword: current))
            #expect(try await !other.addSignIn(session: session("stale"), tokens: [], username: "alice", checkedPassword: try user("alice").passwordHash))
            #expect(try await !other.addSignIn(session: session("ghost"), tokens: [], username: "ghost", checkedPassword: current))
            // A family named after a token without one (an older store's) takes that token along.
            try await store.addToken(token("old", .refresh, family: nil))
            #expect(try await store.exchangeRefreshToken(jti: "old", issuing: [token("old-next", .refresh, family: "old")]) == .accepted)
            #expect(try await other.revokeTokens(family: "old") == 2)
        }
    }

    @Test(arguments: StoreBackend.all)
    func parallelCreationsOfOneNameStoreExactlyOne(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { store, handles in
            let other = try await handles.another()
            let hash = try PasswordHash.make("a long password", parameters: Self.fast)
            let results = await withTaskGroup(of: (user: Bool, key: Bool).self) { group in
                for attempt in 0..<16 {
                    let handle = attempt.isMultiple(of: 2) ? store : other
                    group.addTask {
                        let user = (try? await handle.addUser(UserRecord(username: "carol", passwordHash: hash, roles: ["r\(attempt)"], created: t0))) != nil
                        let key = (try? await handle.addAPIKey(key("shared", secret: "key \(attempt)"))) != nil
                        return (user, key)
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter(\.user).count == 1)
            #expect(results.filter(\.key).count == 1)
            #expect(try await store.users().filter { $0.username == "carol" }.count == 1)
            #expect(try await store.apiKeys(ofUser: nil).filter { $0.name == "shared" }.count == 1)
        }
    }

    @Test(arguments: StoreBackend.all)
    func aOneShotTokenIsSpentOnceWhicheverProcessSpendsIt(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { _, handles in
            let (a, b) = try await backend.oneShotBooks(handles)
            let alice = Identity(user: "alice", roles: ["operator"], method: .apiKey, source: "k1", expires: t0.addingTimeInterval(3600))
            guard case .success(let token) = await a.issue(for: alice, now: t0) else { Issue.record("no token"); return }
            let spent = try await withThrowingTaskGroup(of: Identity?.self) { group in
                for attempt in 0..<16 {
                    let book = attempt.isMultiple(of: 2) ? a : b
                    group.addTask { try await book.redeem(token, now: t0.addingTimeInterval(1)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(spent.compactMap { $0 }.count == 1, "spent exactly once")
            #expect(spent.compactMap { $0 }.first == alice, "it stands for what it was issued for")
            guard case .success(let late) = await b.issue(for: alice, now: t0) else { Issue.record("no token"); return }
            #expect(try await a.redeem(late, now: t0.addingTimeInterval(a.lifetime)) == nil, "too old")
            #expect(try await a.redeem("made-up", now: t0) == nil)
            let ending = Identity(user: "alice", roles: [], method: .apiKey, source: "k2", expires: t0.addingTimeInterval(1))
            guard case .success(let bounded) = await a.issue(for: ending, now: t0) else { Issue.record("no token"); return }
            #expect(try await b.redeem(bounded, now: t0.addingTimeInterval(2)) == nil, "its credential has ended")
            for _ in 0..<a.perCredential { _ = await (Bool.random() ? a : b).issue(for: alice, now: t0) }
            #expect(await b.issue(for: alice, now: t0) == .failure(.credentialLimit), "the limit holds over both")
            let other = Identity(user: "alice", roles: [], method: .apiKey, source: "k3")
            #expect((try? await a.issue(for: other, now: t0).get()) != nil, "another credential of the same user still gets one")
        }
    }

    @Test(arguments: StoreBackend.all)
    func guessesSpreadOverProcessesLockAtMaxFailures(_ backend: StoreBackend) async throws {
        try await withGuards(backend, maxFailures: 5) { a, b async throws in
            let address = IPAddress("192.0.2.7")
            // Sixteen parallel guesses over both: no more than five may be under way or failed.
            let admissions = await withTaskGroup(of: LoginAdmission.self) { group in
                for attempt in 0..<16 {
                    let guardian = attempt.isMultiple(of: 2) ? a : b
                    group.addTask { await guardian.admit(username: "alice", client: address, now: t0) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let granted = admissions.compactMap { if case .granted(let ticket) = $0 { ticket } else { nil } }
            #expect(granted.count == 5, "\(admissions)")
            #expect(admissions.allSatisfy { if case .unavailable = $0 { false } else { true } })
            var lockouts: [Int] = []
            for (n, ticket) in granted.enumerated() {
                if let lockout = await (n.isMultiple(of: 2) ? a : b).settle(ticket, .failed, now: t0) { lockouts.append(lockout) }
            }
            #expect(lockouts == [300], "the fifth failure locks, once")
            for guardian in [a, b] {
                #expect(await guardian.admit(username: "alice", client: IPAddress("198.51.100.1"), now: t0.addingTimeInterval(1)) == .wait(299),
                        "the name is locked on both, from any address")
                #expect(try await guardian.lockedFor(username: nil, client: address, now: t0.addingTimeInterval(1)) == 299, "and so is the address")
                #expect(try await guardian.lockedFor(username: "bob", client: IPAddress("198.51.100.1"), now: t0) == nil)
            }
            guard case .granted(let later) = await b.admit(username: "alice", client: address, now: t0.addingTimeInterval(301)) else {
                Issue.record("still locked after the lockout")
                return
            }
            await a.settle(later, .succeeded, now: t0.addingTimeInterval(301))
        }
    }

    /// OctoPrint app-key pairing over two processes: asked on one, decided and collected on
    /// either, collected exactly once however many polls race, within the same limits.
    @Test(arguments: StoreBackend.all)
    func anAppKeyRequestIsDecidedAnywhereAndCollectedOnce(_ backend: StoreBackend) async throws {
        try await withPeople(backend) { _, handles in
            let (a, b) = try await backend.appKeyBooks(handles)
            let client = IPAddress("192.0.2.20")
            let (app, decision) = try await a.request(app: "Cura", user: nil, client: client, now: t0)
            #expect(try await b.poll(appToken: app, now: t0.addingTimeInterval(1)) == .pending)
            #expect(try await b.pending(for: "bob", now: t0.addingTimeInterval(1)).map(\.app) == ["Cura"], "named nobody: any user may decide")
            #expect(try await a.pending(decisionToken: decision, for: "alice", now: t0.addingTimeInterval(1))?.client == client)
            let grant = CredentialGrant(roles: ["viewer"], readOnly: true, expires: t0.addingTimeInterval(3600))
            #expect(try await b.decide(decisionToken: decision, allow: true, by: "alice", grant: grant, now: t0.addingTimeInterval(2)))
            #expect(try await a.decide(decisionToken: decision, allow: false, by: "alice", grant: CredentialGrant(), now: t0.addingTimeInterval(2)) == false,
                    "decided once")
            let polls = try await withThrowingTaskGroup(of: AppKeyPairing.PollResult.self) { group in
                for n in 0..<8 {
                    let book = n.isMultiple(of: 2) ? a : b
                    group.addTask { try await book.poll(appToken: app, now: t0.addingTimeInterval(3)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(polls.filter { $0 == .approved(user: "alice", app: "Cura", grant: grant) }.count == 1, "\(polls)")
            #expect(polls.filter { $0 == .gone }.count == 7)
            // Named for bob: alice can neither see nor decide it; denied, the app hears "gone".
            let (bobsApp, bobsDecision) = try await b.request(app: "OctoApp", user: "bob", client: client, now: t0)
            #expect(try await a.pending(for: "alice", now: t0).isEmpty)
            #expect(try await !a.decide(decisionToken: bobsDecision, allow: true, by: "alice", grant: CredentialGrant(), now: t0))
            #expect(try await a.decide(decisionToken: bobsDecision, allow: false, by: "bob", grant: CredentialGrant(), now: t0))
            #expect(try await b.poll(appToken: bobsApp, now: t0) == .gone)
            // A third request from the same address within the minute is refused, on either.
            _ = try await a.request(app: "third", user: nil, client: client, now: t0)
            await #expect(throws: AppKeyPairing.RequestRefusal.tooManyFromClient) {
                _ = try await b.request(app: "fourth", user: nil, client: client, now: t0.addingTimeInterval(5))
            }
            // Not polled for longer than the grace: gone.
            let (quiet, _) = try await a.request(app: "quiet", user: nil, client: IPAddress("192.0.2.21"), now: t0)
            #expect(try await b.poll(appToken: quiet, now: t0.addingTimeInterval(AppKeyPairing.pollGrace + 1)) == .gone)
        }
    }

    /// An attempt whose settlement never arrives (the replica died, the database went away
    /// before it) counts as a failure: guesses cannot escape the count by not being settled.
    @Test(arguments: StoreBackend.all)
    func anAttemptNeverSettledCountsAsAFailure(_ backend: StoreBackend) async throws {
        try await withGuards(backend, maxFailures: 3) { a, b async throws in
            let policy = a.policy
            let address = IPAddress("192.0.2.9")
            for n in 0..<3 {
                guard case .granted = await (n.isMultiple(of: 2) ? a : b).admit(username: "alice", client: address, now: t0) else {
                    Issue.record("attempt \(n) refused")
                    return
                }
            }
            #expect(await b.admit(username: "alice", client: address, now: t0.addingTimeInterval(10)) == .wait(1))
            #expect(await a.admit(username: "alice", client: address, now: t0.addingTimeInterval(Double(policy.window.seconds) - 1)) == .wait(1),
                    "still counted late in the window")
            // In memory an attempt is settled by the process that admitted it, or the process is
            // gone and its memory with it; in the database it ends with the window.
            guard a is PostgresLoginThrottle else { return }
            guard case .granted(let ticket) = await a.admit(username: "alice", client: address, now: t0.addingTimeInterval(Double(policy.window.seconds) + 1))
            else {
                Issue.record("the window ended and the attempts still count")
                return
            }
            await b.settle(ticket, .succeeded, now: t0.addingTimeInterval(Double(policy.window.seconds) + 1))
        }
    }
}

/// One kind of store the contract runs against.
struct StoreBackend: Sendable, CustomTestStringConvertible {
    let name: String
    let open: @Sendable () async throws -> Opener

    /// Opens handles on one store's data; the first is made by ``open``.
    struct Opener: Sendable {
        let handle: @Sendable () async throws -> any CredentialStore
        let close: @Sendable () -> Void
    }

    /// The handles a test opened, closed when it ends.
    final class Handles: Sendable {
        let first: any CredentialStore
        private let opener: Opener

        init(first: any CredentialStore, opener: Opener) {
            self.first = first
            self.opener = opener
        }

        /// Another handle on the same data, as a second process would have.
        func another() async throws -> any CredentialStore { try await opener.handle() }
    }

    var testDescription: String { name }

    /// Two processes' login throttles on the test's data (one in memory for SQLite).
    func loginGuards(_ handles: Handles, _ policy: LoginThrottlePolicy) async throws -> (any LoginGuard, any LoginGuard) {
        guard let first = handles.first as? PostgresStore, let second = try await handles.another() as? PostgresStore else {
            let memory = LoginThrottle(policy: policy)
            return (memory, memory)
        }
        return (PostgresLoginThrottle(store: first, policy: policy), PostgresLoginThrottle(store: second, policy: policy))
    }

    /// Two processes' app-key request books on the test's data (one in memory for SQLite).
    func appKeyBooks(_ handles: Handles) async throws -> (any AppKeyRequestBook, any AppKeyRequestBook) {
        guard let first = handles.first as? PostgresStore, let second = try await handles.another() as? PostgresStore else {
            let memory = AppKeyPairing()
            return (memory, memory)
        }
        return (PostgresAppKeyPairing(store: first), PostgresAppKeyPairing(store: second))
    }

    /// Two processes' one-shot token books on the test's data (one book in memory for SQLite,
    /// where a single Gatehouse keeps them).
    func oneShotBooks(_ handles: Handles) async throws -> (any OneShotTokenBook, any OneShotTokenBook) {
        guard let first = handles.first as? PostgresStore, let second = try await handles.another() as? PostgresStore else {
            let memory = OneShotTokens()
            return (memory, memory)
        }
        return (PostgresOneShotTokens(store: first), PostgresOneShotTokens(store: second))
    }

    func withStores(_ body: (Handles) async throws -> Void) async throws {
        let opener = try await open()
        defer { opener.close() }
        try await body(Handles(first: try await opener.handle(), opener: opener))
    }

    static let all: [StoreBackend] = [sqlite, postgres]

    static let sqlite = StoreBackend(name: "SQLite") {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-contract-\(UUID().uuidString)")
        let path = directory.appendingPathComponent("gatehouse.db").path
        return Opener(
            // The server's way: SQLite's blocking calls on threads of their own.
            handle: { OffloadedCredentialStore(try SQLiteStore(path: path), on: DispatchExecutor()) },
            close: { try? FileManager.default.removeItem(at: directory) })
    }

    static let postgres = StoreBackend(name: "PostgreSQL") {
        let server = try PostgresTestServer.shared()
        let database = try server.makeDatabase("contract")
        let settings = PostgresStore.Settings(host: server.host, port: server.port, username: server.username, database: database, poolSize: 4)
        let opened = OpenedStores()
        return Opener(
            handle: {
                let store = try await PostgresStore.open(settings, logger: Logger(label: "gatehouse-test", factory: { _ in SwiftLogNoOpLogHandler() }))
                opened.add(store)
                return store
            },
            close: { opened.closeAll() })
    }
}

/// The PostgreSQL handles a test opened, for closing them at its end.
private final class OpenedStores: Sendable {
    private let stores = Mutex<[PostgresStore]>([])
    func add(_ store: PostgresStore) { stores.withLock { $0.append(store) } }
    func closeAll() { stores.withLock { $0.forEach { $0.close() } } }
}

/// Blocking work on Dispatch's global threads (the test's stand-in for the server's thread pool).
struct DispatchExecutor: BlockingExecutor {
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result(catching: body)) }
        }
    }
}
