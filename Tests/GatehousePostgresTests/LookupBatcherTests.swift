import GatehouseCore
@testable import GatehousePostgres
import Synchronization
import Testing

/// ``LookupBatcher`` with a query of the test's own: which keys go into which query, and who
/// gets which answer.
@Suite struct LookupBatcherTests {
    /// A query that records the keys of each call and answers only when the test opens it.
    private final class GatedQuery: Sendable {
        private let calls = Mutex<[[String]]>([])
        private let gates = Mutex<[CheckedContinuation<Void, Never>]>([])
        let failing: Bool

        init(failing: Bool = false) { self.failing = failing }

        var keys: [[String]] { calls.withLock { $0 } }

        func run(_ keys: [String]) async throws(StoreError) -> LookupBatcher<String>.Answer {
            let call = calls.withLock { $0.append(keys); return $0.count }
            await withCheckedContinuation { continuation in
                let opened = gates.withLock { gates -> Bool in
                    guard credits.withLock({ credits in defer { credits = max(0, credits - 1) }; return credits > 0 }) else {
                        gates.append(continuation)
                        return false
                    }
                    return true
                }
                if opened { continuation.resume() }
            }
            if failing { throw .failed("query \(call) failed") }
            // Only the keys starting with "known" are stored; the revision is the call's number.
            let found = Dictionary(uniqueKeysWithValues: keys.filter { $0.hasPrefix("known") }.map { ($0, "record of \($0) from query \(call)") })
            return .init(found: found, revision: Int64(call))
        }

        /// Opens made before their call was waiting.
        private let credits = Mutex(0)

        /// Lets the oldest waiting call answer (or the next call, when none waits yet).
        func open() {
            let gate = gates.withLock { gates -> CheckedContinuation<Void, Never>? in
                guard !gates.isEmpty else {
                    credits.withLock { $0 += 1 }
                    return nil
                }
                return gates.removeFirst()
            }
            gate?.resume()
        }

        /// Sets the oldest waiting call aside: it answers only at the end of the test.
        func dropOldest() {
            let dropped = gates.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            if let dropped { stalled.withLock { $0.append(dropped) } }
        }
        private let stalled = Mutex<[CheckedContinuation<Void, Never>]>([])

        /// Lets the calls set aside answer.
        func releaseStalled() { stalled.withLock { $0.forEach { $0.resume() }; $0 = [] } }

        /// Lets every call answer from now on (cancel the task to stop).
        func keepOpening() -> Task<Void, Never> {
            Task {
                while !Task.isCancelled {
                    open()
                    try? await Task.sleep(for: .milliseconds(2))
                }
            }
        }
    }

    private func waitUntil(_ condition: () -> Bool) async throws {
        let start = ContinuousClock.now
        while !condition() {
            guard ContinuousClock.now - start < .seconds(10) else { Issue.record("timed out"); return }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    @Test func aLookupNeverJoinsAQueryAlreadyRunning() async throws {
        let batcher = LookupBatcher<String>(concurrency: 1, stallAfter: .seconds(600), deadline: .seconds(600))
        let query = GatedQuery()
        let first = Task { try await batcher.lookUp("known-a", by: query.run) }
        try await waitUntil { query.keys.count == 1 }
        // Asked while the first query runs: both wait for the next one, together.
        let second = Task { try await batcher.lookUp("known-b", by: query.run) }
        let third = Task { try await batcher.lookUp("unknown-c", by: query.run) }
        let again = Task { try await batcher.lookUp("known-b", by: query.run) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(query.keys == [["known-a"]], "a second query started while the only slot was taken")
        let opener = query.keepOpening()
        defer { opener.cancel() }
        let (a, ra) = try await first.value
        #expect(a == "record of known-a from query 1" && ra == 1)
        let (b, rb) = try await second.value
        let (c, rc) = try await third.value
        let (b2, _) = try await again.value
        #expect(b == "record of known-b from query 2" && rb == 2 && b2 == b)
        #expect(c == nil && rc == 2, "an unknown key gets nil and the revision")
        #expect(query.keys.count == 2 && Set(query.keys[1]) == ["known-b", "unknown-c"] && query.keys[1].count == 2,
                "one query for every waiting key, each once: \(query.keys)")
    }

    @Test func aFailedQueryFailsEveryLookupInItAndOnlyThose() async throws {
        let batcher = LookupBatcher<String>(concurrency: 1, stallAfter: .seconds(600), deadline: .seconds(600))
        let failing = GatedQuery(failing: true)
        let first = Task { try await batcher.lookUp("known-a", by: failing.run) }
        try await waitUntil { failing.keys.count == 1 }
        let second = Task { try await batcher.lookUp("known-b", by: failing.run) }
        try await Task.sleep(for: .milliseconds(20))
        let opener = failing.keepOpening()
        defer { opener.cancel() }
        await #expect(throws: StoreError.self) { try await first.value }
        await #expect(throws: StoreError.self) { try await second.value }
        #expect(failing.keys == [["known-a"], ["known-b"]])
        // The slot is free again: the next lookup runs at once.
        let working = GatedQuery()
        let third = Task { try await batcher.lookUp("known-c", by: working.run) }
        let workingOpener = working.keepOpening()
        defer { workingOpener.cancel() }
        #expect(try await third.value.0 == "record of known-c from query 1")
    }

    @Test func aBatchIsAtMostBatchSizeAndEveryKeyIsAskedOnce() async throws {
        let batcher = LookupBatcher<String>(concurrency: 2, batchSize: 3, stallAfter: .seconds(600), deadline: .seconds(600))
        let query = GatedQuery()
        let lookups = (0..<10).map { i in Task { try await batcher.lookUp("known-\(i)", by: query.run) } }
        try await waitUntil { query.keys.count == 1 }
        try await Task.sleep(for: .milliseconds(20))
        #expect(query.keys.count == 1, "one query at a time while none stalls")
        let opener = query.keepOpening()
        defer { opener.cancel() }
        for (i, lookup) in lookups.enumerated() { #expect(try await lookup.value.0?.hasPrefix("record of known-\(i) ") == true) }
        #expect(query.keys.allSatisfy { $0.count <= 3 })
        #expect(Set(query.keys.flatMap { $0 }).count == 10 && query.keys.flatMap { $0 }.count == 10)
    }

    @Test func aStalledQueryNoLongerHoldsTheOthersBackAndItsLookupsAreAskedAgain() async throws {
        let batcher = LookupBatcher<String>(concurrency: 3, stallAfter: .seconds(1), deadline: .seconds(600))
        let query = GatedQuery()
        let first = Task { try await batcher.lookUp("known-a", by: query.run) }
        try await waitUntil { query.keys.count == 1 }
        let second = Task { try await batcher.lookUp("known-b", by: query.run) }
        // The first query never answers: after stallAfter the next one carries both keys.
        try await waitUntil { query.keys.count == 2 }
        #expect(query.keys[1] == ["known-a", "known-b"])
        let third = Task { try await batcher.lookUp("known-c", by: query.run) }
        try await Task.sleep(for: .milliseconds(20))
        #expect(query.keys.count == 2, "a query younger than stallAfter holds the others back")
        query.dropOldest()
        query.open()
        let (a, _) = try await first.value
        let (b, _) = try await second.value
        #expect(a == "record of known-a from query 2" && b == "record of known-b from query 2")
        try await waitUntil { query.keys.count == 3 }
        #expect(query.keys[2] == ["known-c"])
        query.open()
        #expect(try await third.value.0 == "record of known-c from query 3")
        // The stalled one answering late changes nothing.
        query.releaseStalled()
        try await Task.sleep(for: .milliseconds(20))
        #expect(query.keys.count == 3)
    }

    @Test func aRecordThatCannotBeReadFailsOnlyItsOwnLookup() async throws {
        let batcher = LookupBatcher<String>(concurrency: 1, stallAfter: .seconds(600), deadline: .seconds(600))
        let query = GatedQuery()
        let first = Task { try await batcher.lookUp("known-first", by: query.run) }
        try await waitUntil { query.keys.count == 1 }
        let unreadable: LookupBatcher<String>.Query = { keys throws(StoreError) in
            .init(found: ["known-good": "good"], unreadable: ["known-bad": .corrupt(path: "db", reason: "a newer kind")], revision: 7)
        }
        let good = Task { try await batcher.lookUp("known-good", by: unreadable) }
        let bad = Task { try await batcher.lookUp("known-bad", by: unreadable) }
        try await Task.sleep(for: .milliseconds(20))
        query.open()
        _ = try await first.value
        #expect(try await good.value == ("good", 7))
        await #expect(throws: StoreError.self) { try await bad.value }
    }

    @Test func aLookupThatWaitedOutItsDeadlineIsFailedNotAskedFor() async throws {
        let batcher = LookupBatcher<String>(concurrency: 1, stallAfter: .seconds(600), deadline: .milliseconds(100), late: .failed("late"))
        let query = GatedQuery()
        let first = Task { try await batcher.lookUp("known-a", by: query.run) }
        try await waitUntil { query.keys.count == 1 }
        let second = Task { try await batcher.lookUp("known-b", by: query.run) }
        try await Task.sleep(for: .milliseconds(200))
        let opener = query.keepOpening()
        defer { opener.cancel() }
        #expect(try await first.value.0 == "record of known-a from query 1", "asked for at once, answered late: still an answer")
        await #expect(throws: StoreError.self) { try await second.value }
        #expect(query.keys == [["known-a"]], "the late one was not asked for")
    }
}
