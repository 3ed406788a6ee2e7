import Foundation
import Logging
import Synchronization

/// Tells the person at the terminal what a command is doing once the work has taken longer than
/// a second (scrypt on a Raspberry Pi, checking a large store), and how long it took.
///
/// Guarantees: nothing is printed for work that finishes within the threshold; everything goes
/// to standard error (standard output stays the command's answer, for scripts); on a terminal
/// the line counts seconds in place, elsewhere it is written once; the work itself runs on the
/// calling thread, unchanged. `GATEHOUSE_PROGRESS_AFTER` (seconds) changes the threshold.
/// Given a logger (`serve`), the two lines are log events instead, in the log's format.
struct SlowWorkNotice {
    let threshold: Double
    private let logger: Logger?

    init(environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger? = nil) {
        threshold = environment["GATEHOUSE_PROGRESS_AFTER"].flatMap(Double.init).map { max(0, $0) } ?? 1
        self.logger = logger
    }

    func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        let end = begin(what)
        defer { end() }
        return try body()
    }

    func run<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        let end = begin(what)
        defer { end() }
        return try await body()
    }

    /// Starts watching `what`; the returned closure ends the watch (and prints the "done" line
    /// when the notice was shown).
    private func begin(_ what: String) -> () -> Void {
        // One state under one lock: the notice is shown only while the work still runs, and
        // the "done" line follows exactly when the notice was shown.
        let state = Mutex(NoticeState.working)
        let done = DispatchSemaphore(value: 0)
        let watcherEnded = DispatchSemaphore(value: 0)
        let started = Date()
        let terminal = logger == nil && isatty(STDERR_FILENO) == 1
        let threshold = self.threshold
        let logger = self.logger
        let watcher = Thread {
            defer { watcherEnded.signal() }
            if done.wait(timeout: .now() + threshold) == .success { return }
            let show = state.withLock { current -> Bool in
                guard current == .working else { return false }
                current = .shown
                Self.write(terminal ? "\(what)…" : "\(what)…\n", logger: logger)
                return true
            }
            guard show, terminal else { return }
            while done.wait(timeout: .now() + 1) == .timedOut {
                state.withLock { current in
                    if current == .shown { Self.write("\r\(what)… \(Int(Date().timeIntervalSince(started))) s", logger: nil) }
                }
            }
        }
        watcher.start()
        return {
            let wasShown = state.withLock { current -> Bool in
                defer { current = .finished }
                return current == .shown
            }
            done.signal()
            watcherEnded.wait()
            if wasShown {
                let seconds = String(format: "%.1f", Date().timeIntervalSince(started))
                Self.write(terminal ? "\r\(what): done in \(seconds) s\n" : "\(what): done in \(seconds) s\n", logger: logger)
            }
        }
    }

    private enum NoticeState { case working, shown, finished }

    private static func write(_ text: String, logger: Logger?) {
        if let logger {
            logger.notice("\(text.trimmingCharacters(in: .newlines))")
        } else {
            FileHandle.standardError.write(Data(text.utf8))
        }
    }
}
