import Foundation
import Synchronization

/// Where one-shot tokens are kept: ``OneShotTokens`` (this process's memory: one Gatehouse) or
/// the shared store (`PostgresOneShotTokens`: replicas, where a token issued by one is spent on
/// another).
///
/// Guarantees every implementation gives: those of ``OneShotTokens`` — 256 random bits held as a
/// digest, spent at most once however many processes race for it, refused past ``lifetime`` or
/// the end of its credential, and issued within ``perCredential``, ``perUser`` and a total
/// capacity. A store that cannot be reached issues nothing (``OneShotTokens/Refusal/unavailable``)
/// and redeems nothing (a ``StoreError``).
public protocol OneShotTokenBook: Sendable {
    var lifetime: TimeInterval { get }
    var perCredential: Int { get }
    var perUser: Int { get }
    /// A new token standing for `identity`, or why none can be had now.
    func issue(for identity: Identity, now: Date) async -> Result<String, OneShotTokens.Refusal>
    /// The identity the token stood for, once; nil when it is unknown, spent, too old, or the
    /// credential it was issued for has ended.
    func redeem(_ token: String, now: Date) async throws(StoreError) -> Identity?
}

/// Single-use tokens for requests whose headers a browser cannot set (`<img src>` webcam
/// streams, WebSocket opens, downloads), accepted in `?token=`.
///
/// Guarantees: a token is 256 random bits, held only as its digest, in this process's memory;
/// ``redeem(_:now:)`` removes it atomically, so of two concurrent uses at most one succeeds;
/// a token older than ``lifetime``, or past the end of the credential it was issued for, is
/// refused and dropped. At most ``perCredential`` tokens are outstanding for one credential (a
/// key, a session, a token), ``perUser`` for all of one user's credentials together, and
/// ``capacity`` in all: past any, ``issue(for:now:)`` refuses (saying which is full) rather than
/// letting memory grow, and one credential filling its share leaves its user's others, and
/// everyone else's, theirs.
public final class OneShotTokens: OneShotTokenBook {
    public let lifetime: TimeInterval
    public let capacity: Int
    public let perCredential: Int
    public let perUser: Int

    /// Why no token was issued.
    public enum Refusal: Error, Equatable, Sendable {
        /// This credential has ``perCredential`` tokens outstanding.
        case credentialLimit
        /// This user's credentials have ``perUser`` tokens outstanding.
        case userLimit
        /// ``capacity`` tokens are outstanding in all.
        case capacity
        /// The shared store where tokens are kept cannot be reached.
        case unavailable
    }

    private struct State {
        var tokens: [SecretDigest: (identity: Identity, issued: Date)] = [:]
        var perUser: [String: Int] = [:]
        var perCredential: [String: Int] = [:]

        static func credential(_ identity: Identity) -> String { identity.user + "\u{0}" + identity.method.rawValue + "\u{0}" + identity.source }

        mutating func add(_ digest: SecretDigest, _ identity: Identity, _ now: Date) {
            tokens[digest] = (identity, now)
            perUser[identity.user, default: 0] += 1
            perCredential[Self.credential(identity), default: 0] += 1
        }

        mutating func remove(_ digest: SecretDigest) -> (identity: Identity, issued: Date)? {
            guard let entry = tokens.removeValue(forKey: digest) else { return nil }
            Self.decrement(&perUser, entry.identity.user)
            Self.decrement(&perCredential, Self.credential(entry.identity))
            return entry
        }

        private static func decrement(_ table: inout [String: Int], _ key: String) {
            let left = (table[key] ?? 1) - 1
            table[key] = left > 0 ? left : nil
        }

        mutating func dropExpired(now: Date, lifetime: TimeInterval) {
            for (digest, entry) in tokens where now.timeIntervalSince(entry.issued) >= lifetime || now < entry.issued {
                _ = remove(digest)
            }
        }
    }

    private let state = Mutex(State())

    public init(lifetime: TimeInterval = 5, capacity: Int = 10_000, perCredential: Int = 8, perUser: Int = 64) {
        self.lifetime = lifetime
        self.capacity = capacity
        self.perCredential = perCredential
        self.perUser = perUser
    }

    /// A new token standing for `identity`, or why none can be had now.
    public func issue(for identity: Identity, now: Date) -> Result<String, Refusal> {
        let token = RandomSecret.make()
        let digest = SecretDigest.of(token)
        let credential = State.credential(identity)
        let outcome = state.withLock { state -> Refusal? in
            func refusal() -> Refusal? {
                if (state.perCredential[credential] ?? 0) >= perCredential { return .credentialLimit }
                if (state.perUser[identity.user] ?? 0) >= perUser { return .userLimit }
                if state.tokens.count >= capacity { return .capacity }
                return nil
            }
            if refusal() != nil { state.dropExpired(now: now, lifetime: lifetime) }
            if let refused = refusal() { return refused }
            state.add(digest, identity, now)
            return nil
        }
        if let outcome { return .failure(outcome) }
        return .success(token)
    }

    public func redeem(_ token: String, now: Date) -> Identity? {
        let digest = SecretDigest.of(token)
        guard let entry = state.withLock({ $0.remove(digest) }) else { return nil }
        return Self.honoured(entry.identity, issued: entry.issued, now: now, lifetime: lifetime)
    }

    /// `identity` when a token issued at `issued` is still good at `now`.
    public static func honoured(_ identity: Identity, issued: Date, now: Date, lifetime: TimeInterval) -> Identity? {
        let age = now.timeIntervalSince(issued)
        guard age >= 0, age < lifetime else { return nil }
        if let end = identity.expires, end <= now { return nil }
        return identity
    }

    /// The key ``perCredential`` counts by: one credential of one user.
    public static func credentialKey(_ identity: Identity) -> String { State.credential(identity) }

    public var outstanding: Int { state.withLock { $0.tokens.count } }
}
