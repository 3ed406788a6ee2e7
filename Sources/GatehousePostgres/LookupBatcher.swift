import GatehouseCore
import Synchronization

/// Coalesces concurrent credential lookups of one kind into one query: while ``concurrency``
/// queries run, further lookups wait, and the next query to start carries every waiting key
/// (up to ``batchSize``). One query for sixty keys costs the database and the client about as
/// much as one for a single key, which is what lets many distinct credentials in turn (every
/// request a lookup) be answered at the rate of a local file.
///
/// Guarantees:
/// - A lookup is answered only by a query that started after the lookup was asked for: it
///   never joins a query already running, so it sees every change committed before it asked
///   (a revocation this process just wrote included).
/// - Every lookup is answered exactly once, with the query's result or its error
///   (``StoreError``); the query is bounded by the store's call deadline, so no lookup waits
///   longer than that deadline once per query ahead of it.
/// - A lookup never waits for a query slot while one is free.
final class LookupBatcher<Found: Sendable>: Sendable {
    /// What one query returns: the records found, by key (absent: not stored), and the
    /// revision read in the same snapshot.
    struct Answer: Sendable {
        var found: [String: Found]
        var revision: Int64
    }
    typealias Query = @Sendable ([String]) async throws(StoreError) -> Answer

    private struct Waiter {
        let key: String
        let query: Query
        let continuation: CheckedContinuation<(Found?, Int64), any Error>
    }

    private struct State {
        var waiting: [Waiter] = []
        var running = 0

        /// The next batch: the oldest waiters, at most `size` of them.
        mutating func take(_ size: Int) -> [Waiter] {
            let batch = Array(waiting.prefix(size))
            waiting.removeFirst(batch.count)
            return batch
        }
    }

    let concurrency: Int
    let batchSize: Int
    private let state = Mutex(State())

    init(concurrency: Int, batchSize: Int = 256) {
        precondition(concurrency > 0 && batchSize > 0)
        self.concurrency = concurrency
        self.batchSize = batchSize
    }

    /// The record stored under `key` (nil: none) and the revision read with it.
    ///
    /// - Parameter query: reads a batch of keys; every caller passes the same one (the batch
    ///   runs its first waiter's).
    func lookUp(_ key: String, by query: @escaping Query) async throws(StoreError) -> (Found?, Int64) {
        do {
            return try await withCheckedThrowingContinuation { continuation in
                let batch = state.withLock { state -> [Waiter]? in
                    state.waiting.append(Waiter(key: key, query: query, continuation: continuation))
                    guard state.running < concurrency else { return nil }
                    state.running += 1
                    return state.take(batchSize)
                }
                if let batch { run(batch) }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .failed("a credential lookup failed: \(error)")
        }
    }

    /// Runs `batch`, then every batch that waited meanwhile, until none is left (one task per
    /// query slot in use).
    private func run(_ first: [Waiter]) {
        Task {
            var batch = first
            while true {
                await answer(batch)
                let next = state.withLock { state -> [Waiter]? in
                    guard !state.waiting.isEmpty else {
                        state.running -= 1
                        return nil
                    }
                    return state.take(batchSize)
                }
                guard let next else { return }
                batch = next
            }
        }
    }

    private func answer(_ batch: [Waiter]) async {
        var keys: [String] = []
        var seen = Set<String>()
        for waiter in batch where seen.insert(waiter.key).inserted { keys.append(waiter.key) }
        do {
            let answer = try await batch[0].query(keys)
            for waiter in batch { waiter.continuation.resume(returning: (answer.found[waiter.key], answer.revision)) }
        } catch {
            for waiter in batch { waiter.continuation.resume(throwing: error) }
        }
    }
}
