import Foundation
import GatehouseCore
import PostgresNIO
import Synchronization

/// Failed sign-ins counted in the shared PostgreSQL store, so that guesses spread over replicas
/// lock a name or an address after ``LoginThrottlePolicy/maxFailures`` in all, as on one Gatehouse.
///
/// Guarantees: those of ``LoginGuard``. Each admission and each settlement is one transaction
/// that first takes a transaction-scoped advisory lock per counted key (in a fixed order, so two
/// replicas never deadlock): parallel guesses on several replicas are counted one after another.
/// An admitted attempt is stored as a failure at once, and only a settlement as a success or as
/// abandoned takes it back: when the settlement cannot be stored (the database went away, the
/// replica died), the attempt stays counted as a failure until it leaves the window. Errors
/// therefore only ever count too much, never too little.
public final class PostgresLoginThrottle: LoginGuard {
    public let policy: LoginThrottlePolicy
    private let store: PostgresStore
    private let started = Atomic<Int>(0)
    /// The advisory lock class the keys are locked under ("log").
    static let lockClass: Int32 = 0x6C_6F67

    public init(store: PostgresStore, policy: LoginThrottlePolicy) {
        self.store = store
        self.policy = policy
    }

    public var lockoutsStarted: Int { started.load(ordering: .relaxed) }

    private static func lock(_ keys: [String], _ connection: PostgresConnection, _ logger: Logger) async throws {
        for key in keys.sorted() {
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockClass), hashtext(\(key)))", logger: logger)
        }
    }

    private static func lockedFor(_ keys: [String], now: Double, _ connection: PostgresConnection, _ logger: Logger) async throws -> Double {
        try await PostgresStore.single(
            Double.self,
            connection.query("SELECT coalesce(max(until), 0) FROM login_lockouts WHERE key = ANY(\(keys)) AND until > \(now)", logger: logger)
        ).map { $0 > now ? $0 - now : 0 } ?? 0
    }

    private static func seconds(_ wait: Double) -> Int { max(1, Int(wait.rounded(.up))) }

    public func lockedFor(username: String?, client: IPAddress?, now: Date) async throws(StoreError) -> Int? {
        let keys = LoginThrottle.countedKeys(username: username, client: client)
        let t = now.timeIntervalSince1970
        let wait = try await store.transaction("reading lockouts", changes: false) { connection, logger in
            try await Self.lockedFor(keys, now: t, connection, logger)
        }
        return wait > 0 ? Self.seconds(wait) : nil
    }

    public func admit(username: String?, client: IPAddress?, now: Date) async -> LoginAdmission {
        let keys = LoginThrottle.countedKeys(username: username, client: client)
        let t = now.timeIntervalSince1970
        let window = TimeInterval(policy.window.seconds)
        let maxFailures = policy.maxFailures
        do {
            return try await store.transaction("counting a sign-in attempt") { connection, logger -> LoginAdmission in
                try await Self.lock(keys, connection, logger)
                var wait = try await Self.lockedFor(keys, now: t, connection, logger)
                if wait == 0 {
                    // Failures within the window, attempts under way included (they are failures
                    // until settled otherwise).
                    for try await row in try await connection.query(
                        "SELECT (SELECT count(*) FROM login_failures f WHERE f.key = k AND f.at > \(t - window)) FROM unnest(\(keys)::text[]) AS k",
                        logger: logger)
                    {
                        if try row.decode(Int64.self) >= maxFailures { wait = 1 }
                    }
                }
                if wait > 0 { return .wait(Self.seconds(wait)) }
                let id = try await PostgresStore.single(Int64.self, connection.query("SELECT nextval('login_reservations')", logger: logger)) ?? 0
                try await connection.query(
                    """
                    INSERT INTO login_failures (key, at, reservation, settled)
                    SELECT k, \(t), \(id), false FROM unnest(\(keys)::text[]) AS k
                    """, logger: logger)
                return .granted(LoginTicket(username: username, client: client, id: id))
            }
        } catch {
            return .unavailable
        }
    }

    @discardableResult
    public func settle(_ ticket: LoginTicket, _ outcome: LoginOutcome, now: Date) async -> Int? {
        let keys = LoginThrottle.countedKeys(username: ticket.username, client: ticket.client)
        let t = now.timeIntervalSince1970
        let window = TimeInterval(policy.window.seconds)
        let lockout = TimeInterval(policy.lockout.seconds)
        let maxFailures = policy.maxFailures
        // Not retried when it fails: what the admission stored stands, as a failure.
        let started = try? await store.transaction("recording a sign-in attempt") { connection, logger -> Int? in
            try await Self.lock(keys, connection, logger)
            guard outcome == .failed else {
                try await connection.query("DELETE FROM login_failures WHERE reservation = \(ticket.id)", logger: logger)
                return nil
            }
            try await connection.query(
                "UPDATE login_failures SET settled = true, at = \(t) WHERE reservation = \(ticket.id)", logger: logger)
            try await connection.query("DELETE FROM login_failures WHERE at <= \(t - window)", logger: logger)
            try await connection.query("DELETE FROM login_lockouts WHERE until <= \(t)", logger: logger)
            var began: Int?
            for key in keys {
                let failures = try await PostgresStore.single(
                    Int64.self,
                    connection.query(
                        "SELECT count(*) FROM login_failures WHERE key = \(key) AND settled AND at > \(t - window)", logger: logger)) ?? 0
                guard failures >= maxFailures else { continue }
                try await connection.query(
                    """
                    INSERT INTO login_lockouts (key, until) VALUES (\(key), \(t + lockout))
                    ON CONFLICT (key) DO UPDATE SET until = greatest(login_lockouts.until, excluded.until)
                    """, logger: logger)
                // Attempts still under way stay: they count as they settle.
                try await connection.query("DELETE FROM login_failures WHERE key = \(key) AND settled", logger: logger)
                began = Int(lockout)
            }
            return began
        }
        guard let began = started ?? nil else { return nil }
        self.started.add(1, ordering: .relaxed)
        return began
    }
}
