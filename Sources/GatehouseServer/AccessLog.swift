import Dispatch
import Foundation
import GatehouseCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Where access-log lines go.
enum AccessLogSink: Sendable {
    /// Through the server's `Logger`, one info event per request (tests capture them there).
    case logger(Logger)
    /// Batched per event loop and written by ``AccessLogWriter`` off the loops (`serve`).
    case batched(AccessLogWriter)
}

/// Writes access-log lines to a file descriptor (stdout) without ever blocking an event loop:
/// each loop gathers its lines and hands them over in batches, and one writer thread writes.
///
/// Guarantees: lines keep their order per event loop; a batch is handed over when it reaches
/// 16 KiB and at least every 100 ms; a slow reader (a full pipe) never stalls a request — past
/// 8 MiB waiting, batches are dropped and the drop is reported once the writer catches up.
/// The format is the one the other log lines have (`log.format`): text, or one JSON object per line.
public final class AccessLogWriter: Sendable {
    public enum Format: Sendable { case text, json }

    let format: Format
    private let fd: Int32
    private let queue = DispatchQueue(label: "gatehouse.access-log")
    private let waiting = NIOLockedValueBox<(bytes: Int, dropped: Int)>((0, 0))
    static let batchBytes = 16 * 1024
    static let maxWaitingBytes = 8 << 20

    public init(format: Format, fileDescriptor: Int32 = STDOUT_FILENO) {
        self.format = format
        self.fd = fileDescriptor
    }

    /// A batch from one loop.
    func submit(_ batch: [UInt8]) {
        let accepted = waiting.withLockedValue { state -> Bool in
            guard state.bytes + batch.count <= Self.maxWaitingBytes else {
                state.dropped += 1
                return false
            }
            state.bytes += batch.count
            return true
        }
        guard accepted else { return }
        let fd = self.fd
        queue.async { [waiting, format] in
            Self.writeAll(batch, to: fd)
            let dropped = waiting.withLockedValue { state -> Int in
                state.bytes -= batch.count
                defer { state.dropped = 0 }
                return state.dropped
            }
            if dropped > 0 {
                let note = "access log: \(dropped) batch(es) dropped, the output was not read fast enough"
                Self.writeAll(Array(Self.line(note, format: format, time: Date(), level: "warning").utf8), to: fd)
            }
        }
    }

    /// Waits until every batch handed over so far is written (shutdown, tests).
    public func drain() {
        queue.sync {}
    }

    private static func writeAll(_ bytes: [UInt8], to fd: Int32) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }

    /// One log line in `format`, as the process's other log lines look.
    static func line(_ message: String, format: Format, time: Date, level: String = "info") -> String {
        switch format {
        case .text:
            return "\(TextStamp.format(time)) \(level) gatehouse : [GatehouseServer] \(message)\n"
        case .json:
            return "{\"label\":\"gatehouse\",\"level\":\"\(level)\",\"message\":\"\(JSONText.escaped(message))\",\"time\":\"\(InternetDate.format(time))\"}\n"
        }
    }
}

/// The timestamp of text log lines (swift-log's `StreamLogHandler` form).
enum TextStamp {
    static func format(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [Int8](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// One event loop's share of the access log: lines gathered, handed over in batches. Only ever
/// touched on its loop.
final class LoopAccessLog {
    private let sink: AccessLogSink
    private let eventLoop: EventLoop
    private var pending: [UInt8] = []
    private var flushScheduled = false
    /// The formatted time of the current second (text lines), formatted once a second.
    private var stampSecond = -1
    private var stamp = ""

    init(sink: AccessLogSink, eventLoop: EventLoop) {
        self.sink = sink
        self.eventLoop = eventLoop
    }

    func write(_ message: String) {
        switch sink {
        case .logger(let logger):
            logger.info("\(message)")
        case .batched(let writer):
            let now = Date()
            switch writer.format {
            case .text:
                let second = Int(now.timeIntervalSince1970)
                if second != stampSecond {
                    stampSecond = second
                    stamp = TextStamp.format(now)
                }
                pending.append(contentsOf: stamp.utf8)
                pending.append(contentsOf: " info gatehouse : [GatehouseServer] ".utf8)
                pending.append(contentsOf: message.utf8)
                pending.append(UInt8(ascii: "\n"))
            case .json:
                pending.append(contentsOf: AccessLogWriter.line(message, format: .json, time: now).utf8)
            }
            if pending.count >= AccessLogWriter.batchBytes {
                hand(to: writer)
            } else if !flushScheduled {
                flushScheduled = true
                let bound = NIOLoopBound(self, eventLoop: eventLoop)
                eventLoop.scheduleTask(in: .milliseconds(100)) {
                    let log = bound.value
                    log.flushScheduled = false
                    if case .batched(let writer) = log.sink { log.hand(to: writer) }
                }
            }
        }
    }

    private func hand(to writer: AccessLogWriter) {
        guard !pending.isEmpty else { return }
        writer.submit(pending)
        pending.removeAll(keepingCapacity: true)
    }

    /// Hands over what is gathered now (shutdown).
    func flush() {
        if case .batched(let writer) = sink { hand(to: writer) }
    }
}
