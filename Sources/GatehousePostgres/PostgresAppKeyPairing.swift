import Foundation
import GatehouseCore
import PostgresNIO

/// OctoPrint app-key requests kept in the shared PostgreSQL store: an app that asked through one
/// replica may poll through another, and the user may decide on a third.
///
/// Guarantees: those of ``AppKeyPairing`` (the same lifetimes, limits and answers), across every
/// replica on the database. A request is stored with the app token's digest only. Registering
/// takes a transaction-scoped advisory lock, so the per-client and total limits hold across
/// replicas; collecting an approved request deletes it in the transaction that reads it (row
/// lock), so of any number of polls racing for it exactly one gets the approval. The request
/// history counts requests that were stored: it holds at most one row per stored request for an
/// hour, so unauthenticated callers cannot grow it faster than ``AppKeyPairing/capacity`` allows.
public final class PostgresAppKeyPairing: AppKeyRequestBook {
    private let store: PostgresStore

    /// The advisory lock registrations take ("appkeys" in ASCII).
    static let lockKey: Int64 = 0x61_7070_6B65_7973

    public init(store: PostgresStore) {
        self.store = store
    }

    /// A request still waiting for its decision at `t`.
    private static func waiting(_ t: Double) -> String {
        "approved_at IS NULL AND last_poll > \(t - AppKeyPairing.pollGrace) AND created > \(t - AppKeyPairing.maximumAge)"
    }

    /// An approved request whose app may still collect its key at `t`.
    private static func collectable(_ t: Double) -> String {
        "approved_at IS NOT NULL AND approved_at > \(t - AppKeyPairing.collectGrace)"
    }

    public func request(
        app: String, user: String?, client: IPAddress?, now: Date
    ) async throws(AppKeyPairing.RequestRefusal) -> (appToken: String, decisionToken: String) {
        let appToken = RandomSecret.make()
        let decisionToken = RandomSecret.make()
        let (appDigest, decisionDigest) = (SecretDigest.of(appToken).description, SecretDigest.of(decisionToken).description)
        let rateKey = client.map { AppKeyPairing.rateKey($0).description }
        let t = now.timeIntervalSince1970
        let refusal: AppKeyPairing.RequestRefusal?
        do {
            refusal = try await store.transaction("registering an app key request") { connection, logger -> AppKeyPairing.RequestRefusal? in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                try await connection.query(
                    "DELETE FROM app_key_requests WHERE NOT ((\(unescaped: Self.waiting(t))) OR (\(unescaped: Self.collectable(t))))", logger: logger)
                try await connection.query("DELETE FROM app_key_request_log WHERE at <= \(t - 3600)", logger: logger)
                if let rateKey {
                    for try await row in try await connection.query(
                        "SELECT count(*), count(*) FILTER (WHERE at > \(t - 60)) FROM app_key_request_log WHERE client = \(rateKey)", logger: logger)
                    {
                        let (hour, minute) = try row.decode((Int64, Int64).self)
                        if hour >= AppKeyPairing.perClientPerHour || minute >= AppKeyPairing.perClientPerMinute { return .tooManyFromClient }
                    }
                }
                let held = try await PostgresStore.single(Int64.self, connection.query("SELECT count(*) FROM app_key_requests", logger: logger)) ?? 0
                guard held < AppKeyPairing.capacity else { return .tooManyPending }
                if let rateKey {
                    try await connection.query("INSERT INTO app_key_request_log (client, at) VALUES (\(rateKey), \(t))", logger: logger)
                }
                try await connection.query(
                    """
                    INSERT INTO app_key_requests (app_digest, decision_digest, decision_token, app, requested_user, client, created, last_poll)
                    VALUES (\(appDigest), \(decisionDigest), \(decisionToken), \(app), \(user), \(client?.description), \(t), \(t))
                    """, logger: logger)
                return nil
            }
        } catch {
            throw .unavailable
        }
        if let refusal { throw refusal }
        return (appToken, decisionToken)
    }

    public func poll(appToken: String, now: Date) async throws(StoreError) -> AppKeyPairing.PollResult {
        let digest = SecretDigest.of(appToken).description
        let t = now.timeIntervalSince1970
        return try await store.transaction("answering an app's poll") { connection, logger -> AppKeyPairing.PollResult in
            var found: (String, String?, String?, Bool?, Double?)?
            for try await row in try await connection.query(
                """
                SELECT app, approved_by, grant_roles, grant_read_only, grant_expires FROM app_key_requests
                WHERE app_digest = \(digest) AND ((\(unescaped: Self.waiting(t))) OR (\(unescaped: Self.collectable(t)))) FOR UPDATE
                """, logger: logger)
            {
                found = try row.decode((String, String?, String?, Bool?, Double?).self)
            }
            guard let (app, approvedBy, roles, readOnly, expires) = found else { return .gone }
            guard let approvedBy else {
                try await connection.query("UPDATE app_key_requests SET last_poll = \(t) WHERE app_digest = \(digest)", logger: logger)
                return .pending
            }
            try await connection.query("DELETE FROM app_key_requests WHERE app_digest = \(digest)", logger: logger)
            let grant = CredentialGrant(
                roles: roles.map { $0.split(separator: ",").map(String.init) }, readOnly: readOnly ?? false,
                expires: expires.map(Date.init(timeIntervalSince1970:)))
            return .approved(user: approvedBy, app: app, grant: grant)
        }
    }

    public func pending(for user: String, now: Date) async throws(StoreError) -> [AppKeyPairing.Pending] {
        let t = now.timeIntervalSince1970
        return try await store.transaction("listing app key requests", changes: false) { connection, logger in
            var pending: [AppKeyPairing.Pending] = []
            for try await row in try await connection.query(
                """
                SELECT decision_token, app, requested_user, client, created FROM app_key_requests
                WHERE \(unescaped: Self.waiting(t)) AND coalesce(requested_user, \(user)) = \(user) ORDER BY created, decision_digest
                """, logger: logger)
            {
                let (decisionToken, app, requestedUser, client, created) = try row.decode((String, String, String?, String?, Double).self)
                pending.append(AppKeyPairing.Pending(
                    decisionToken: decisionToken, app: app, requestedUser: requestedUser, client: client.flatMap(IPAddress.init),
                    created: Date(timeIntervalSince1970: created)))
            }
            return pending
        }
    }

    public func decide(decisionToken: String, allow: Bool, by user: String, grant: CredentialGrant, now: Date) async throws(StoreError) -> Bool {
        let digest = SecretDigest.of(decisionToken).description
        let t = now.timeIntervalSince1970
        return try await store.transaction("deciding an app key request") { connection, logger -> Bool in
            let decidable = try await PostgresStore.count(connection.query(
                """
                SELECT 1 FROM app_key_requests
                WHERE decision_digest = \(digest) AND \(unescaped: Self.waiting(t)) AND coalesce(requested_user, \(user)) = \(user) FOR UPDATE
                """, logger: logger))
            guard decidable == 1 else { return false }
            if allow {
                try await connection.query(
                    """
                    UPDATE app_key_requests
                    SET approved_by = \(user), approved_at = \(t), grant_roles = \(grant.roles?.joined(separator: ",")),
                        grant_read_only = \(grant.readOnly), grant_expires = \(grant.expires?.timeIntervalSince1970)
                    WHERE decision_digest = \(digest)
                    """, logger: logger)
            } else {
                try await connection.query("DELETE FROM app_key_requests WHERE decision_digest = \(digest)", logger: logger)
            }
            return true
        }
    }
}
