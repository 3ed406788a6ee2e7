import GatehouseCore
import Synchronization

/// Coalesces concurrent credential lookups of one kind into one query: while a query runs,
/// further lookups wait, and the next query carries every waiting key (up to ``batchSize``).
/// One query for sixty keys costs the database and the client about as much as one for a
/// single key, which is what lets many distinct credentials in turn (every request a lookup)
/// be answered at the rate of a local file.
///
/// A query that has run for ``stallAfter`` no longer holds the others back: its keys go back to
/// the head of the waiting ones, and the next query starts (up to ``concurrency`` at once) and
/// asks for them again; each lookup takes whichever answer comes first. (A query sent on a connection
/// the database just dropped was seen never to answer; without this, every lookup behind it
/// waited for the call deadline.)
///
/// Guarantees:
/// - A lookup is answered only by a query that started after the lookup was asked for: it
///   never joins a query already running, so it sees every change committed before it asked
///   (a revocation this process just wrote included).
/// - Every lookup is answered exactly once, with a query's result or its error
///   (``StoreError``); queries are bounded by the store's call deadline, and a lookup that
///   waited ``deadline`` for its query is failed rather than asked for.
/// - A lookup never waits while no query runs, nor behind a query older than ``stallAfter``
///   while fewer than ``concurrency`` run.
final class LookupBatcher<Found: Sendable>: Sendable {
    /// What one query returns: the records found, by key (absent: not stored), the keys whose
    /// record could not be read (only those lookups fail), and the revision read in the same
    /// snapshot.
    struct Answer: Sendable {
        var found: [String: Found]
        var unreadable: [String: StoreError] = [:]
        var revision: Int64
    }
    typealias Query = @Sendable ([String]) async throws(StoreError) -> Answer

    /// One lookup waiting for its answer; the first answer given is the one it gets.
    private final class Pending: Sendable {
        let key: String
        let query: Query
        let asked = ContinuousClock.now
        private let continuation: Mutex<CheckedContinuation<(Found?, Int64), any Error>?>

        init(key: String, query: @escaping Query, continuation: CheckedContinuation<(Found?, Int64), any Error>) {
            self.key = key
            self.query = query
            self.continuation = Mutex(continuation)
        }

        var isAnswered: Bool { continuation.withLock { $0 == nil } }

        func answer(_ result: Result<(Found?, Int64), any Error>) {
            continuation.withLock { continuation in
                defer { continuation = nil }
                return continuation
            }?.resume(with: result)
        }
    }

    private struct Run {
        let started: ContinuousClock.Instant
        let batch: [Pending]
        var stalled = false
    }

    private struct State {
        var waiting: [Pending] = []
        var running: [Int: Run] = [:]
        var nextRun = 0

        /// Whether another query may start now: fewer than `concurrency` run and none of them is
        /// younger than `stallAfter`.
        func mayStart(at now: ContinuousClock.Instant, _ batcher: LookupBatcher) -> Bool {
            running.count < batcher.concurrency && running.values.allSatisfy { now - $0.started >= batcher.stallAfter }
        }

        /// Starts a run with the oldest waiting lookups, at most `batchSize` of them.
        mutating func start(at now: ContinuousClock.Instant, _ batcher: LookupBatcher) -> (Int, [Pending]) {
            let batch = Array(waiting.prefix(batcher.batchSize))
            waiting.removeFirst(batch.count)
            nextRun += 1
            running[nextRun] = Run(started: now, batch: batch)
            return (nextRun, batch)
        }
    }

    let concurrency: Int
    let batchSize: Int
    let stallAfter: Duration
    /// A lookup that waited this long for its query is failed with `late` instead of asked for.
    let deadline: Duration
    private let late: StoreError
    private let state = Mutex(State())

    init(
        concurrency: Int = 4, batchSize: Int = 256, stallAfter: Duration = .milliseconds(200), deadline: Duration = .seconds(3),
        late: StoreError = .failed("a credential lookup waited too long")
    ) {
        precondition(concurrency > 0 && batchSize > 0)
        self.concurrency = concurrency
        self.batchSize = batchSize
        self.stallAfter = stallAfter
        self.deadline = deadline
        self.late = late
    }

    /// The record stored under `key` (nil: none) and the revision read with it.
    ///
    /// - Parameter query: reads a batch of keys; every caller passes the same one (a batch
    ///   runs its first lookup's).
    func lookUp(_ key: String, by query: @escaping Query) async throws(StoreError) -> (Found?, Int64) {
        do {
            return try await withCheckedThrowingContinuation { continuation in
                let pending = Pending(key: key, query: query, continuation: continuation)
                let run = state.withLock { state -> (Int, [Pending])? in
                    state.waiting.append(pending)
                    let now = ContinuousClock.now
                    return state.mayStart(at: now, self) ? state.start(at: now, self) : nil
                }
                if let run { launch(run) }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .failed("a credential lookup failed: \(error)")
        }
    }

    /// Runs a batch, then every batch that may start after it, until none is left; and watches
    /// each for a stall.
    private func launch(_ first: (Int, [Pending])) {
        Task {
            var run = first
            while true {
                watch(run.0)
                await answer(run.1)
                let next = state.withLock { state -> (Int, [Pending])? in
                    state.running[run.0] = nil
                    let now = ContinuousClock.now
                    guard !state.waiting.isEmpty, state.mayStart(at: now, self) else { return nil }
                    return state.start(at: now, self)
                }
                guard let next else { return }
                run = next
            }
        }
    }

    /// After ``stallAfter``, puts the lookups `id` has not answered yet back at the head of the
    /// waiting ones (the next query asks for them again) and starts that query if it may.
    private func watch(_ id: Int) {
        Task {
            try? await Task.sleep(for: stallAfter)
            let next = state.withLock { state -> (Int, [Pending])? in
                guard var stalled = state.running[id], !stalled.stalled else { return nil }
                stalled.stalled = true
                state.running[id] = stalled
                state.waiting.insert(contentsOf: stalled.batch.filter { !$0.isAnswered }, at: 0)
                let now = ContinuousClock.now
                guard !state.waiting.isEmpty, state.mayStart(at: now, self) else { return nil }
                return state.start(at: now, self)
            }
            if let next { launch(next) }
        }
    }

    private func answer(_ batch: [Pending]) async {
        guard let query = batch.first?.query else { return }
        // Those that waited out their deadline behind stalled queries are not asked for.
        let now = ContinuousClock.now
        for pending in batch where now - pending.asked >= deadline { pending.answer(.failure(late)) }
        var keys: [String] = []
        var seen = Set<String>()
        for pending in batch where !pending.isAnswered && seen.insert(pending.key).inserted { keys.append(pending.key) }
        guard !keys.isEmpty else { return }
        do {
            let answer = try await query(keys)
            for pending in batch {
                if let error = answer.unreadable[pending.key] {
                    pending.answer(.failure(error))
                } else {
                    pending.answer(.success((answer.found[pending.key], answer.revision)))
                }
            }
        } catch {
            for pending in batch { pending.answer(.failure(error)) }
        }
    }
}
