import Foundation
import GatehouseCore
import PostgresNIO

/// One-shot tokens kept in the shared PostgreSQL store, so that a token one replica issued is
/// spent on whichever replica the browser's next request reaches.
///
/// Guarantees: those of ``OneShotTokenBook``. Spending is one `DELETE … RETURNING`, so of any
/// number of replicas racing for a token exactly one gets it; issuing takes a transaction-scoped
/// advisory lock, so the limits hold across replicas; a token is only a digest in the database.
public final class PostgresOneShotTokens: OneShotTokenBook {
    public let lifetime: TimeInterval
    public let capacity: Int
    public let perCredential: Int
    public let perUser: Int
    private let store: PostgresStore

    /// The advisory lock issuers take ("oneshot" in ASCII, apart from the migration lock).
    static let lockKey: Int64 = 0x6F6E_6573_686F_74

    public init(store: PostgresStore, lifetime: TimeInterval = 5, capacity: Int = 10_000, perCredential: Int = 8, perUser: Int = 64) {
        self.store = store
        self.lifetime = lifetime
        self.capacity = capacity
        self.perCredential = perCredential
        self.perUser = perUser
    }

    public func issue(for identity: Identity, now: Date) async -> Result<String, OneShotTokens.Refusal> {
        let token = RandomSecret.make()
        let digest = SecretDigest.of(token).description
        // PostgreSQL's text holds no NUL, which the key separates its parts with.
        let credential = SecretDigest.of(OneShotTokens.credentialKey(identity)).description
        let (lifetime, capacity, perCredential, perUser) = (self.lifetime, self.capacity, self.perCredential, self.perUser)
        let t = now.timeIntervalSince1970
        do {
            let refusal = try await store.transaction("issuing a one-shot token") { connection, logger -> OneShotTokens.Refusal? in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                try await connection.query("DELETE FROM one_shot_tokens WHERE issued <= \(t - lifetime)", logger: logger)
                var counts = (0, 0, 0)
                for try await row in try await connection.query(
                    """
                    SELECT count(*) FILTER (WHERE credential = \(credential)), count(*) FILTER (WHERE username = \(identity.user)), count(*)
                    FROM one_shot_tokens
                    """, logger: logger)
                {
                    let (c, u, all) = try row.decode((Int64, Int64, Int64).self)
                    counts = (Int(c), Int(u), Int(all))
                }
                if counts.0 >= perCredential { return .credentialLimit }
                if counts.1 >= perUser { return .userLimit }
                if counts.2 >= capacity { return .capacity }
                try await connection.query(
                    """
                    INSERT INTO one_shot_tokens (digest, username, roles, method, read_only, source, expires, issued, credential)
                    VALUES (\(digest), \(identity.user), \(identity.roles.joined(separator: ",")), \(identity.method.rawValue), \(identity.readOnly),
                            \(identity.source), \(identity.expires?.timeIntervalSince1970), \(t), \(credential))
                    """, logger: logger)
                return nil
            }
            if let refusal { return .failure(refusal) }
            return .success(token)
        } catch {
            return .failure(.unavailable)
        }
    }

    public func redeem(_ token: String, now: Date) async throws(StoreError) -> Identity? {
        let digest = SecretDigest.of(token).description
        let found = try await store.transaction("spending a one-shot token") { connection, logger -> (Identity, Date)? in
            for try await row in try await connection.query(
                "DELETE FROM one_shot_tokens WHERE digest = \(digest) RETURNING username, roles, method, read_only, source, expires, issued",
                logger: logger)
            {
                let (user, roles, methodName, readOnly, source, expires, issued) = try row.decode((String, String, String, Bool, String, Double?, Double).self)
                guard let method = AuthenticationMethod(rawValue: methodName) else { return nil }
                let identity = Identity(
                    user: user, roles: roles.split(separator: ",").map(String.init), method: method, readOnly: readOnly, source: source,
                    expires: expires.map(Date.init(timeIntervalSince1970:)))
                return (identity, Date(timeIntervalSince1970: issued))
            }
            return nil
        }
        guard let (identity, issued) = found else { return nil }
        return OneShotTokens.honoured(identity, issued: issued, now: now, lifetime: lifetime)
    }
}
