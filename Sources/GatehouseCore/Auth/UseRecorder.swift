import Foundation
import Synchronization

/// One credential's use, as bookkeeping to be written to the store.
public enum CredentialUse: Hashable, Sendable {
    /// A session's last use (`last_seen`: its idle timeout runs from it).
    case session(SecretDigest)
    /// A run-time API key's `last_used`.
    case apiKey(name: String)
}

/// Writes credentials' last uses to the store off the request path: the uses noted within
/// ``delay`` go to the store together, in one call (``CredentialStore/recordUses(_:)``).
///
/// Guarantees: a request never waits for bookkeeping, and bookkeeping never fails a request; a
/// use is written within about ``delay`` (or when ``flush()`` is called), the latest instant per
/// credential; at most ``capacity`` credentials wait at once (past that, uses are dropped until
/// the next write: bookkeeping, never access). A write that fails is not retried; the next use
/// due writes again. Uses noted in the last ``delay`` before the process ends may be lost.
public final class UseRecorder: Sendable {
    public let delay: Duration
    public let capacity: Int
    private let store: any CredentialStore
    private struct State {
        var uses: [CredentialUse: Date] = [:]
        var writeScheduled = false
    }
    private let state = Mutex(State())

    public init(store: any CredentialStore, delay: Duration = .seconds(1), capacity: Int = 100_000) {
        self.store = store
        self.delay = delay
        self.capacity = capacity
    }

    /// Notes a use; it reaches the store with the next write.
    public func note(_ use: CredentialUse, at instant: Date) {
        let schedule = state.withLock { state -> Bool in
            if let noted = state.uses[use] {
                if noted < instant { state.uses[use] = instant }
            } else if state.uses.count < capacity {
                state.uses[use] = instant
            }
            defer { state.writeScheduled = true }
            return !state.writeScheduled
        }
        guard schedule else { return }
        let delay = self.delay
        Task {
            try? await Task.sleep(for: delay)
            await self.flush()
        }
    }

    /// Writes every use noted so far now.
    public func flush() async {
        let uses = state.withLock { state in
            defer {
                state.uses = [:]
                state.writeScheduled = false
            }
            return state.uses
        }
        guard !uses.isEmpty else { return }
        try? await store.recordUses(uses)
    }

    /// The use of `use` noted and not written yet, if any: newer than what the store says until
    /// the write (a lookup in between must not judge a session idle that was just used).
    public func noted(_ use: CredentialUse) -> Date? {
        state.withLock { $0.uses[use] }
    }

    /// Uses waiting to be written.
    public var waiting: Int { state.withLock { $0.uses.count } }
}
