import Foundation
import GatehouseCore
import XCTest

final class AppKeyPairingTests: XCTestCase {
    private let t0 = Date(timeIntervalSince1970: 2_000_000_000)
    private let client = IPAddress("192.0.2.10")

    func testAllowedRequestIsCollectedOnceByTheAppTokenOnly() throws {
        let pairing = AppKeyPairing()
        let (app, decision) = try pairing.request(app: "Cura", user: nil, client: client, now: t0)
        XCTAssertNotEqual(app, decision)
        XCTAssertEqual(pairing.poll(appToken: app, now: t0.addingTimeInterval(1)), .pending)
        XCTAssertEqual(pairing.poll(appToken: decision, now: t0.addingTimeInterval(1)), .gone, "the decision token collects nothing")
        XCTAssertFalse(pairing.decide(decisionToken: app, allow: true, by: "alice", now: t0.addingTimeInterval(2)), "the app token decides nothing")
        XCTAssertTrue(pairing.decide(decisionToken: decision, allow: true, by: "alice", now: t0.addingTimeInterval(2)))
        XCTAssertFalse(pairing.decide(decisionToken: decision, allow: false, by: "bob", now: t0.addingTimeInterval(2)), "decided once")
        XCTAssertEqual(pairing.poll(appToken: app, now: t0.addingTimeInterval(3)), .approved(user: "alice", app: "Cura", grant: CredentialGrant()))
        XCTAssertEqual(pairing.poll(appToken: app, now: t0.addingTimeInterval(3)), .gone)
        XCTAssertEqual(pairing.count, 0)
    }

    func testARequestNamingAUserIsForThatUserAlone() throws {
        let pairing = AppKeyPairing()
        let (app, decision) = try pairing.request(app: "Home Assistant", user: "alice", client: client, now: t0)
        XCTAssertTrue(pairing.pending(for: "bob", now: t0).isEmpty)
        XCTAssertNil(pairing.pending(for: "bob", now: t0).first { $0.decisionToken == decision })
        XCTAssertFalse(pairing.decide(decisionToken: decision, allow: true, by: "bob", now: t0))
        XCTAssertEqual(pairing.pending(for: "alice", now: t0).map(\.app), ["Home Assistant"])
        XCTAssertTrue(pairing.decide(decisionToken: decision, allow: false, by: "alice", now: t0))
        XCTAssertEqual(pairing.poll(appToken: app, now: t0), .gone, "denied looks like expired to the app")
    }

    func testRequestsExpireWithoutPollingAndAfterTheMaximumAge() throws {
        let pairing = AppKeyPairing()
        let (quiet, _) = try pairing.request(app: "A", user: nil, client: nil, now: t0)
        XCTAssertEqual(pairing.poll(appToken: quiet, now: t0.addingTimeInterval(AppKeyPairing.pollGrace + 1)), .gone)
        let (busy, _) = try pairing.request(app: "B", user: nil, client: nil, now: t0)
        var now = t0
        while now.timeIntervalSince(t0) < AppKeyPairing.maximumAge - 5 {
            now = now.addingTimeInterval(5)
            XCTAssertEqual(pairing.poll(appToken: busy, now: now), .pending)
        }
        XCTAssertEqual(pairing.poll(appToken: busy, now: now.addingTimeInterval(6)), .gone, "polling does not keep a request forever")
        let (late, decision) = try pairing.request(app: "C", user: nil, client: nil, now: t0)
        XCTAssertTrue(pairing.decide(decisionToken: decision, allow: true, by: "alice", now: t0))
        XCTAssertEqual(pairing.poll(appToken: late, now: t0.addingTimeInterval(AppKeyPairing.collectGrace + 1)), .gone, "an uncollected approval lapses")
    }

    func testTheClientHistoryIsBoundedAndAnIPv6ClientCountsByItsSlash64() throws {
        let pairing = AppKeyPairing()
        // The first client asks three times (its limit for the minute) before all the others.
        let first = IPAddress("2001:db8:0::1")
        for _ in 0..<AppKeyPairing.perClientPerMinute {
            let (_, decision) = try pairing.request(app: "X", user: nil, client: first, now: t0)
            _ = pairing.decide(decisionToken: decision, allow: false, by: "alice", now: t0)
        }
        for i in 1..<AppKeyPairing.trackedClients {
            let (_, decision) = try pairing.request(app: "X", user: nil, client: IPAddress("2001:db8:\(String(i, radix: 16))::1"), now: t0.addingTimeInterval(1))
            // Decided at once, so the 64 pending places never run out here.
            _ = pairing.decide(decisionToken: decision, allow: false, by: "alice", now: t0.addingTimeInterval(1))
        }
        XCTAssertThrowsError(try pairing.request(app: "X", user: nil, client: first, now: t0.addingTimeInterval(2)), "its minute's limit holds while it is remembered")
        // Full within the hour: a new client is still heard, and the client heard from longest
        // ago is the one forgotten.
        let (_, newcomer) = try pairing.request(app: "X", user: nil, client: IPAddress("198.51.100.1"), now: t0.addingTimeInterval(30))
        _ = pairing.decide(decisionToken: newcomer, allow: false, by: "alice", now: t0.addingTimeInterval(30))
        XCTAssertNoThrow(
            try pairing.request(app: "X", user: nil, client: first, now: t0.addingTimeInterval(30)),
            "the first client was the one forgotten: its three requests of 30 s ago no longer count")
        let sameHost = AppKeyPairing()
        for i in 0..<AppKeyPairing.perClientPerMinute {
            _ = try sameHost.request(app: "X", user: nil, client: IPAddress("2001:db8:1:2::\(i + 1)"), now: t0)
        }
        XCTAssertThrowsError(try sameHost.request(app: "X", user: nil, client: IPAddress("2001:db8:1:2:ffff::9"), now: t0), "another address in the same /64")
        XCTAssertNoThrow(try sameHost.request(app: "X", user: nil, client: IPAddress("2001:db8:1:3::1"), now: t0))
    }

    func testOneClientAndAllClientsTogetherAreBounded() throws {
        let pairing = AppKeyPairing()
        for _ in 0..<AppKeyPairing.perClientPerMinute { _ = try pairing.request(app: "X", user: nil, client: client, now: t0) }
        XCTAssertThrowsError(try pairing.request(app: "X", user: nil, client: client, now: t0)) {
            XCTAssertEqual($0 as? AppKeyPairing.RequestRefusal, .tooManyFromClient)
        }
        var now = t0
        var made = AppKeyPairing.perClientPerMinute
        while made < AppKeyPairing.perClientPerHour {
            now = now.addingTimeInterval(61)
            _ = try pairing.request(app: "X", user: nil, client: client, now: now)
            made += 1
        }
        XCTAssertThrowsError(try pairing.request(app: "X", user: nil, client: client, now: now.addingTimeInterval(61)), "ten an hour")
        let full = AppKeyPairing()
        for i in 0..<AppKeyPairing.capacity {
            _ = try full.request(app: "X", user: nil, client: IPAddress("198.51.100.\(i + 1)"), now: t0)
        }
        XCTAssertThrowsError(try full.request(app: "X", user: nil, client: IPAddress("203.0.113.1"), now: t0)) {
            XCTAssertEqual($0 as? AppKeyPairing.RequestRefusal, .tooManyPending)
        }
    }
}
