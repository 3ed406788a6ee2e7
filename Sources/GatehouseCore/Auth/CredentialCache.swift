import Crypto
import Foundation
import Synchronization

/// Names a cached credential by the digest of what the client presented (never the secret).
public enum CredentialCacheKey: Sendable, Hashable {
    case session(SecretDigest)
    case apiKey(SecretDigest)
    /// The digest of the whole token text: the same text carries the same verified signature.
    case accessToken(SecretDigest)
    /// A keyed hash of an HTTP Basic user name and password (``CredentialCache/passwordKey(username:password:)``).
    case password(SecretDigest)
}

/// A bounded in-memory table of store answers, in front of ``CredentialStore``, so that a
/// session cookie, run-time API key or JSON Web Token that is used again costs no store read.
///
/// Guarantees:
/// - Nothing is answered that the store has withdrawn since. Every entry belongs to one store
///   ``CredentialStore/knownRevision``; when the revision moves (this process wrote, or a poll saw
///   another process's write) the whole table is dropped before the next answer. An entry read
///   from the store before a write that finished before it was inserted is never inserted.
/// - Other processes' writes (`gatehouse key revoke …`) are seen at the next revision check: the
///   table answers only while the revision was confirmed from the store within
///   ``confirmationLimit``; past that (a stalled poll, a store that stopped answering) every
///   request goes to the store again.
/// - At most ``capacity`` entries; the oldest are dropped first. Failures are never cached, so an
///   unknown key is asked about every time (and a flood of them cannot evict much: it adds nothing).
public final class CredentialCache: Sendable {
    public let capacity: Int
    public let confirmationLimit: Duration

    private struct State {
        var revision: Int64 = .min
        var confirmed: ContinuousClock.Instant?
        var entries: [CredentialCacheKey: any CachedCredential] = [:]
        /// Insertion order, as a ring: `order[next]` is the oldest once the ring is full.
        var order: [CredentialCacheKey] = []
        var next = 0

        /// Moves to a newer revision, dropping everything; an older one changes nothing.
        mutating func adopt(_ revision: Int64) {
            guard revision > self.revision else { return }
            self.revision = revision
            entries.removeAll(keepingCapacity: true)
            order.removeAll(keepingCapacity: true)
            next = 0
        }
    }

    private let state = Mutex(State())
    /// Keys the hash of verified passwords; random per process, never stored, so what the table
    /// holds cannot be tested against guessed passwords by anyone who reads this process's memory
    /// without the key, nor compared across restarts.
    private let passwordHashKey = SymmetricKey(size: .bits256)

    public init(capacity: Int = 4096, confirmationLimit: Duration = .seconds(1)) {
        self.capacity = max(0, capacity)
        self.confirmationLimit = confirmationLimit
    }

    /// The key under which a verified user name and password are kept: an HMAC-SHA-256 of both
    /// (separated by a NUL, which neither may contain), never the password itself.
    public func passwordKey(username: String, password: String) -> CredentialCacheKey {
        var message = Array(username.utf8)
        message.append(0)
        message.append(contentsOf: password.utf8)
        return .password(SecretDigest(bytes: HMAC<SHA256>.authenticationCode(for: message, using: passwordHashKey)))
    }

    /// The entry for `key` when it may still be trusted with the store at `revision`.
    public func entry(for key: CredentialCacheKey, revision: Int64, at instant: ContinuousClock.Instant = .now) -> (any CachedCredential)? {
        state.withLock { state in
            state.adopt(revision)
            guard revision == state.revision, let confirmed = state.confirmed, confirmed <= instant, instant - confirmed <= confirmationLimit else { return nil }
            return state.entries[key]
        }
    }

    /// Records that the store's revision was `revision` when read at `instant` (taken before the read).
    public func confirm(revision: Int64, at instant: ContinuousClock.Instant) {
        state.withLock { state in
            guard revision >= state.revision else { return }
            state.adopt(revision)
            if state.confirmed.map({ $0 < instant }) ?? true { state.confirmed = instant }
        }
    }

    /// Keeps `value`, read from the store when its revision was `readAt`, unless the store has
    /// moved on since (`current`, read after the value was).
    public func insert(_ value: any CachedCredential, for key: CredentialCacheKey, readAt: Int64, current: Int64) {
        guard capacity > 0, readAt == current else { return }
        state.withLock { state in
            state.adopt(readAt)
            guard readAt == state.revision else { return }
            if state.entries.updateValue(value, forKey: key) != nil { return }
            if state.order.count < capacity {
                state.order.append(key)
            } else {
                state.entries.removeValue(forKey: state.order[state.next])
                state.order[state.next] = key
                state.next = (state.next + 1) % capacity
            }
        }
    }

    public var count: Int { state.withLock { $0.entries.count } }
}
