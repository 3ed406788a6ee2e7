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
/// An attempt whose replica died before settling it stops counting after ``staleAfter``.
public final class PostgresLoginThrottle: LoginGuard {
    public let policy: LoginThrottlePolicy
    private let store: PostgresStore
    private let started = Atomic<Int>(0)
    /// How long an unsettled attempt keeps counting (a check takes well under this).
    public static let staleAfter: TimeInterval = 60
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
        let wait = try await store.transaction("reading lockouts") { connection, logger in
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
                    for try await row in try await connection.query(
                        """
                        SELECT (SELECT count(*) FROM login_failures f WHERE f.key = k AND f.at > \(t - window))
                             + (SELECT count(*) FROM login_pending p WHERE p.key = k AND p.started > \(t - Self.staleAfter))
                        FROM unnest(\(keys)::text[]) AS k
                        """, logger: logger)
                    {
                        if try row.decode(Int64.self) >= maxFailures { wait = 1 }
                    }
                }
                if wait > 0 { return .wait(Self.seconds(wait)) }
                let id = try await PostgresStore.single(Int64.self, connection.query("SELECT nextval('login_reservations')", logger: logger)) ?? 0
                try await connection.query(
                    "INSERT INTO login_pending (reservation, key, started) SELECT \(id), k, \(t) FROM unnest(\(keys)::text[]) AS k", logger: logger)
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
        let started = try? await store.transaction("recording a sign-in attempt") { connection, logger -> Int? in
            try await Self.lock(keys, connection, logger)
            try await connection.query("DELETE FROM login_pending WHERE reservation = \(ticket.id)", logger: logger)
            guard outcome == .failed else { return nil }
            try await connection.query("DELETE FROM login_failures WHERE at <= \(t - window)", logger: logger)
            try await connection.query("DELETE FROM login_lockouts WHERE until <= \(t)", logger: logger)
            var began: Int?
            for key in keys {
                try await connection.query("INSERT INTO login_failures (key, at) VALUES (\(key), \(t))", logger: logger)
                let failures = try await PostgresStore.single(
                    Int64.self, connection.query("SELECT count(*) FROM login_failures WHERE key = \(key) AND at > \(t - window)", logger: logger)) ?? 0
                guard failures >= maxFailures else { continue }
                try await connection.query(
                    """
                    INSERT INTO login_lockouts (key, until) VALUES (\(key), \(t + lockout))
                    ON CONFLICT (key) DO UPDATE SET until = greatest(login_lockouts.until, excluded.until)
                    """, logger: logger)
                try await connection.query("DELETE FROM login_failures WHERE key = \(key)", logger: logger)
                began = Int(lockout)
            }
            return began
        }
        guard let began = started ?? nil else { return nil }
        self.started.add(1, ordering: .relaxed)
        return began
    }
}
