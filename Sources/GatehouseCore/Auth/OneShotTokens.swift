import Foundation
import Synchronization

/// Single-use tokens for requests whose headers a browser cannot set (`<img src>` webcam
/// streams, WebSocket opens, downloads), accepted in `?token=`.
///
/// Guarantees: a token is 256 random bits, held only as its digest, in this process's memory;
/// ``redeem(_:now:)`` removes it atomically, so of two concurrent uses at most one succeeds;
/// a token older than ``lifetime``, or past the end of the credential it was issued for, is
/// refused and dropped. At most ``perUser`` tokens are outstanding for one user and at most
/// ``capacity`` in all: past either, ``issue(for:now:)`` refuses (saying which is full) rather
/// than letting memory grow, and one user filling their share leaves everyone else's.
public final class OneShotTokens: Sendable {
    public let lifetime: TimeInterval
    public let capacity: Int
    public let perUser: Int

    /// Why no token was issued.
    public enum Refusal: Error, Equatable, Sendable {
        /// This user has ``perUser`` tokens outstanding.
        case userLimit
        /// ``capacity`` tokens are outstanding in all.
        case capacity
    }

    private struct State {
        var tokens: [SecretDigest: (identity: Identity, issued: Date)] = [:]
        var perUser: [String: Int] = [:]

        mutating func remove(_ digest: SecretDigest) -> (identity: Identity, issued: Date)? {
            guard let entry = tokens.removeValue(forKey: digest) else { return nil }
            let left = (perUser[entry.identity.user] ?? 1) - 1
            perUser[entry.identity.user] = left > 0 ? left : nil
            return entry
        }

        mutating func dropExpired(now: Date, lifetime: TimeInterval) {
            for (digest, entry) in tokens where now.timeIntervalSince(entry.issued) >= lifetime || now < entry.issued {
                _ = remove(digest)
            }
        }
    }

    private let state = Mutex(State())

    public init(lifetime: TimeInterval = 5, capacity: Int = 10_000, perUser: Int = 8) {
        self.lifetime = lifetime
        self.capacity = capacity
        self.perUser = perUser
    }

    /// A new token standing for `identity`, or why none can be had now.
    public func issue(for identity: Identity, now: Date) -> Result<String, Refusal> {
        let token = RandomSecret.make()
        let digest = SecretDigest.of(token)
        let outcome = state.withLock { state -> Refusal? in
            if (state.perUser[identity.user] ?? 0) >= perUser || state.tokens.count >= capacity {
                state.dropExpired(now: now, lifetime: lifetime)
            }
            guard (state.perUser[identity.user] ?? 0) < perUser else { return .userLimit }
            guard state.tokens.count < capacity else { return .capacity }
            state.tokens[digest] = (identity, now)
            state.perUser[identity.user, default: 0] += 1
            return nil
        }
        if let outcome { return .failure(outcome) }
        return .success(token)
    }

    /// The identity the token stood for, once; nil when it is unknown, spent, too old, or the
    /// credential it was issued for has ended.
    public func redeem(_ token: String, now: Date) -> Identity? {
        let digest = SecretDigest.of(token)
        guard let entry = state.withLock({ $0.remove(digest) }) else { return nil }
        let age = now.timeIntervalSince(entry.issued)
        guard age >= 0, age < lifetime else { return nil }
        if let end = entry.identity.expires, end <= now { return nil }
        return entry.identity
    }

    public var outstanding: Int { state.withLock { $0.tokens.count } }
}
