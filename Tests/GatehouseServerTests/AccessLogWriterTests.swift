import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import XCTest

@testable import GatehouseServer

#if canImport(Glibc)
import Glibc
#endif

/// The access log's batching: lines gathered per event loop, handed to one writer thread, written
/// whole and in order to a real pipe; a reader that stops reading never stalls the loop.
final class AccessLogWriterTests: XCTestCase {
    /// A pipe: the writer gets the write end, the test reads the other.
    private func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw POSIXError(.EIO) }
        addTeardownBlock { close(fds[0]); close(fds[1]) }
        return (fds[0], fds[1])
    }

    /// Reads what is in the pipe now without waiting for more.
    private func readAvailable(_ fd: Int32) -> String {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { break }
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            collected += buffer[0..<n]
        }
        return String(decoding: collected, as: UTF8.self)
    }

    func testLinesWaitForTheBatchIntervalThenArriveWholeAndInOrder() throws {
        let (readEnd, writeEnd) = try makePipe()
        let writer = AccessLogWriter(format: .text, fileDescriptor: writeEnd)
        let loop = EmbeddedEventLoop()
        let log = LoopAccessLog(sink: .batched(writer), eventLoop: loop)
        for k in 0..<50 { log.write("GET /item/\(k) 200 user=alice auth=api_key") }
        writer.drain()
        XCTAssertEqual(readAvailable(readEnd), "", "a small batch waits for the interval, not written per request")
        loop.advanceTime(by: .milliseconds(100))
        writer.drain()
        let lines = readAvailable(readEnd).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 51, "fifty lines and the final newline")
        for (k, line) in lines.dropLast().enumerated() {
            XCTAssertTrue(line.hasSuffix(" info gatehouse : [GatehouseServer] GET /item/\(k) 200 user=alice auth=api_key"), String(line))
        }
    }

    func testAFullBatchIsHandedOverAtOnce() throws {
        let (readEnd, writeEnd) = try makePipe()
        let writer = AccessLogWriter(format: .json, fileDescriptor: writeEnd)
        let loop = EmbeddedEventLoop()
        let log = LoopAccessLog(sink: .batched(writer), eventLoop: loop)
        let message = "GET /" + String(repeating: "a", count: 200) + " 200 user=- auth=-"
        var written = 0
        while written < AccessLogWriter.batchBytes { log.write(message); written += message.utf8.count }
        writer.drain()
        let text = readAvailable(readEnd)
        XCTAssertGreaterThanOrEqual(text.utf8.count, AccessLogWriter.batchBytes, "16 KiB gathered is written without waiting for the timer")
        for line in text.split(separator: "\n") {
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], String(line))
            XCTAssertEqual(object["message"], message)
            XCTAssertEqual(object["level"], "info")
        }
    }

    func testAReaderThatStopsReadingNeverStallsTheLoopAndDropsAreReported() throws {
        let (readEnd, writeEnd) = try makePipe()
        let writer = AccessLogWriter(format: .text, fileDescriptor: writeEnd)
        // Nobody reads: the pipe (64 KiB) fills and the writer thread blocks in write(2).
        let batch = [UInt8](repeating: UInt8(ascii: "x"), count: (1 << 20) - 1) + [UInt8(ascii: "\n")]
        let started = DispatchTime.now()
        for _ in 0..<12 { writer.submit(batch) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        XCTAssertLessThan(seconds, 5, "submitting must not wait for the reader")
        // The reader comes back: everything accepted is written, then the drop is reported.
        let drained = DispatchQueue(label: "reader")
        let received = NIOLockedValueBox("")
        let done = expectation(description: "read")
        drained.async {
            var collected: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            // Eight whole batches and the note, however the writes were split.
            while collected.count < (8 << 20) + 80 || !String(decoding: collected, as: UTF8.self).contains("not read fast enough\n") {
                let n = read(readEnd, &buffer, buffer.count)
                guard n > 0 else { break }
                collected += buffer[0..<n]
            }
            received.withLockedValue { $0 = String(decoding: collected, as: UTF8.self) }
            done.fulfill()
        }
        wait(for: [done], timeout: 30)
        writer.drain()
        let text = received.withLockedValue { $0 }
        let full = text.split(separator: "\n").filter { $0.count == (1 << 20) - 1 }.count
        XCTAssertEqual(full, 8, "8 MiB may wait; the rest is dropped, never a partial line")
        XCTAssertTrue(text.contains("access log: 4 batch(es) dropped, the output was not read fast enough"), String(text.suffix(300)))
    }

    func testEveryPartIsEscapedInJSONAndNoRequestCanAddALineInText() throws {
        let nasty = "GET /a\"b\\c 200 user=eve\nforged line \u{2028} ok é"
        for format in [AccessLogWriter.Format.json, .text] {
            let (readEnd, writeEnd) = try makePipe()
            let writer = AccessLogWriter(format: format, fileDescriptor: writeEnd)
            let loop = EmbeddedEventLoop()
            let log = LoopAccessLog(sink: .batched(writer), eventLoop: loop)
            log.write { line in
                line.append(nasty)
                line.append(" in=")
                line.append(Int64(-12))
                line.append(" ms=")
                line.appendMilliseconds(nanoseconds: 1_234_567)
            }
            log.flush()
            writer.drain()
            let text = readAvailable(readEnd)
            let lines = text.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, text)
            switch format {
            case .json:
                let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: String], text)
                XCTAssertEqual(object["message"], nasty + " in=-12 ms=1.23")
                XCTAssertFalse(text.contains("\u{2028}"), "U+2028 is escaped")
            case .text:
                XCTAssertTrue(text.hasSuffix("GET /a\"b\\c 200 user=eve?forged line \u{2028} ok é in=-12 ms=1.23\n"), text)
            }
        }
    }
}
