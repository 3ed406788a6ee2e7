import Foundation
import Synchronization

/// Single-use tokens for requests whose headers a browser cannot set (`<img src>` webcam
/// streams, WebSocket opens, downloads), accepted in `?token=`.
///
/// Guarantees: a token is 256 random bits, held only as its digest, in this process's memory;
/// ``redeem(_:now:)`` removes it atomically, so of two concurrent uses at most one succeeds;
/// a token older than ``lifetime`` is refused and dropped. At most ``capacity`` tokens are
/// outstanding: past that, ``issue(for:now:)`` refuses rather than letting memory grow.
public final class OneShotTokens: Sendable {
    public let lifetime: TimeInterval
    public let capacity: Int
    private let tokens = Mutex<[SecretDigest: (identity: Identity, issued: Date)]>([:])

    public init(lifetime: TimeInterval = 5, capacity: Int = 10_000) {
        self.lifetime = lifetime
        self.capacity = capacity
    }

    /// A new token standing for `identity`; nil when too many are outstanding.
    public func issue(for identity: Identity, now: Date) -> String? {
        let token = RandomSecret.make()
        let digest = SecretDigest.of(token)
        let stored = tokens.withLock { table -> Bool in
            if table.count >= capacity { table = table.filter { now.timeIntervalSince($0.value.issued) < lifetime } }
            guard table.count < capacity else { return false }
            table[digest] = (identity, now)
            return true
        }
        return stored ? token : nil
    }

    /// The identity the token stood for, once; nil when it is unknown, spent or too old.
    public func redeem(_ token: String, now: Date) -> Identity? {
        let digest = SecretDigest.of(token)
        guard let entry = tokens.withLock({ $0.removeValue(forKey: digest) }) else { return nil }
        let age = now.timeIntervalSince(entry.issued)
        guard age >= 0, age < lifetime else { return nil }
        return entry.identity
    }

    public var outstanding: Int { tokens.withLock { $0.count } }
}
