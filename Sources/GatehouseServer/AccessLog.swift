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

/// One access-log line's message, written straight into the loop's batch: the handler appends
/// its parts, and in the JSON format each is escaped on the way in (no intermediate strings).
/// A control byte in a text line is written as `?`, so no request can add a line of its own.
struct AccessLogLine {
    fileprivate var bytes: [UInt8]
    fileprivate let json: Bool

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            guard json || utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { return bytes.append(contentsOf: utf8) }
            var k = 0
            while k < utf8.count {
                let byte = utf8[k]
                k += 1
                if !json {
                    bytes.append(byte < 0x20 || byte == 0x7F ? UInt8(ascii: "?") : byte)
                } else if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                    bytes.append(UInt8(ascii: "\\"))
                    bytes.append(byte)
                } else if byte < 0x20 || byte == 0x7F {
                    appendUnicodeEscape(UInt16(byte))
                } else if byte == 0xE2, k + 1 < utf8.count, utf8[k] == 0x80, utf8[k + 1] == 0xA8 || utf8[k + 1] == 0xA9 {
                    // U+2028 and U+2029 end a line for JavaScript readers of the log.
                    appendUnicodeEscape(utf8[k + 1] == 0xA8 ? 0x2028 : 0x2029)
                    k += 2
                } else {
                    bytes.append(byte)
                }
            }
        }
    }

    mutating func append<Number: BinaryInteger>(_ number: Number) {
        if number < 0 { bytes.append(UInt8(ascii: "-")) }
        var value = number.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { out in
            repeat {
                out[19 - count] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
                count += 1
            } while value > 0 && count < 20
            bytes.append(contentsOf: out[(20 - count)...])
        }
    }

    /// Milliseconds with two decimals (`12.34`).
    mutating func appendMilliseconds(nanoseconds: Int64) {
        let hundredths = max(0, nanoseconds) / 10_000
        append(hundredths / 100)
        bytes.append(UInt8(ascii: "."))
        let rest = hundredths % 100
        bytes.append(UInt8(ascii: "0") + UInt8(rest / 10))
        bytes.append(UInt8(ascii: "0") + UInt8(rest % 10))
    }

    private mutating func appendUnicodeEscape(_ value: UInt16) {
        let hex = Array("0123456789abcdef".utf8)
        bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u")])
        for shift in stride(from: 12, through: 0, by: -4) { bytes.append(hex[Int((value >> UInt16(shift)) & 0xF)]) }
    }
}

/// One event loop's share of the access log: lines gathered, handed over in batches. Only ever
/// touched on its loop.
final class LoopAccessLog {
    private let sink: AccessLogSink
    private let eventLoop: EventLoop
    private var pending: [UInt8] = []
    private var flushScheduled = false
    /// The formatted time of the current second, formatted once a second.
    private var stampSecond = -1
    private var stamp: [UInt8] = []

    init(sink: AccessLogSink, eventLoop: EventLoop) {
        self.sink = sink
        self.eventLoop = eventLoop
    }

    /// Writes one line whose message `build` appends.
    func write(_ build: (inout AccessLogLine) -> Void) {
        switch sink {
        case .logger(let logger):
            var line = AccessLogLine(bytes: [], json: false)
            build(&line)
            logger.info("\(String(decoding: line.bytes, as: UTF8.self))")
        case .batched(let writer):
            let json = writer.format == .json
            let second = time(nil)
            if second != stampSecond {
                stampSecond = second
                let now = Date(timeIntervalSince1970: Double(second))
                stamp = Array((json ? InternetDate.format(now) : TextStamp.format(now)).utf8)
            }
            var line = AccessLogLine(bytes: pending, json: json)
            pending = []
            if json {
                line.bytes.append(contentsOf: #"{"label":"gatehouse","level":"info","message":""#.utf8)
                build(&line)
                line.bytes.append(contentsOf: #"","time":""#.utf8)
                line.bytes.append(contentsOf: stamp)
                line.bytes.append(contentsOf: "\"}\n".utf8)
            } else {
                line.bytes.append(contentsOf: stamp)
                line.bytes.append(contentsOf: " info gatehouse : [GatehouseServer] ".utf8)
                build(&line)
                line.bytes.append(UInt8(ascii: "\n"))
            }
            pending = line.bytes
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

    /// Writes one line with `message` (tests, rare lines).
    func write(_ message: String) {
        write { $0.append(message) }
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
