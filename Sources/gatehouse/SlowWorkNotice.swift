import Foundation
import Synchronization

/// Tells the person at the terminal what a command is doing once the work has taken longer than
/// a second (scrypt on a Raspberry Pi, checking a large store), and how long it took.
///
/// Guarantees: nothing is printed for work that finishes within the threshold; everything goes
/// to standard error (standard output stays the command's answer, for scripts); on a terminal
/// the line counts seconds in place, elsewhere it is written once; the work itself runs on the
/// calling thread, unchanged. `GATEHOUSE_PROGRESS_AFTER` (seconds) changes the threshold.
struct SlowWorkNotice {
    let threshold: Double

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        threshold = environment["GATEHOUSE_PROGRESS_AFTER"].flatMap(Double.init).map { max(0, $0) } ?? 1
    }

    func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        let finished = Mutex(false)
        let shown = Mutex(false)
        let done = DispatchSemaphore(value: 0)
        let started = Date()
        let terminal = isatty(STDERR_FILENO) == 1
        let threshold = self.threshold
        let watcher = Thread {
            if done.wait(timeout: .now() + threshold) == .success { return }
            shown.withLock { $0 = true }
            Self.write(terminal ? "\(what)…" : "\(what)…\n")
            guard terminal else { return }
            while done.wait(timeout: .now() + 1) == .timedOut {
                if finished.withLock({ $0 }) { return }
                Self.write("\r\(what)… \(Int(Date().timeIntervalSince(started))) s")
            }
        }
        watcher.start()
        defer {
            finished.withLock { $0 = true }
            done.signal()
            if shown.withLock({ $0 }) {
                let seconds = String(format: "%.1f", Date().timeIntervalSince(started))
                Self.write(terminal ? "\r\(what): done in \(seconds) s\n" : "\(what): done in \(seconds) s\n")
            }
        }
        return try body()
    }

    private static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
