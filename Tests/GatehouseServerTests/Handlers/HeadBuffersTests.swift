import NIOCore
import XCTest

@testable import GatehouseServer

/// The per-loop head buffers: reused when free, never changed under a write still holding them.
final class HeadBuffersTests: XCTestCase {
    let allocator = ByteBufferAllocator()

    func testAHeadStillBeingWrittenIsNeverChangedByTheNext() {
        var buffers = HeadBuffers()
        var first = buffers.take(.toClient, capacity: 64, allocator: allocator)
        first.writeString("HTTP/1.1 200 OK\r\n\r\n")
        let inFlight = first  // what a pending write holds
        buffers.give(first, .toClient)
        var second = buffers.take(.toClient, capacity: 64, allocator: allocator)
        XCTAssertEqual(second.readableBytes, 0, "a buffer handed out is empty")
        second.writeString("HTTP/1.1 404 Not Found\r\n\r\n")
        XCTAssertEqual(String(buffer: inFlight), "HTTP/1.1 200 OK\r\n\r\n")
        XCTAssertEqual(String(buffer: second), "HTTP/1.1 404 Not Found\r\n\r\n")
    }

    func testAFreeBufferServesAgainAndDirectionsAreKeptApart() {
        var buffers = HeadBuffers()
        var toDevice = buffers.take(.toDevice, capacity: 128, allocator: allocator)
        toDevice.writeString("GET / HTTP/1.1\r\n\r\n")
        let memory = toDevice.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        buffers.give(toDevice, .toDevice)
        toDevice = ByteBuffer()  // the write is done: nothing else holds it
        let other = buffers.take(.toClient, capacity: 128, allocator: allocator)
        XCTAssertNotEqual(other.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }, memory)
        let again = buffers.take(.toDevice, capacity: 128, allocator: allocator)
        XCTAssertEqual(again.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }, memory, "the same memory serves the next head")
    }

    func testALargeBufferIsNotKept() {
        var buffers = HeadBuffers()
        var large = buffers.take(.toClient, capacity: HeadBuffers.largestKept + 1, allocator: allocator)
        large.writeString("x")
        let memory = large.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        buffers.give(large, .toClient)
        large = ByteBuffer()
        let next = buffers.take(.toClient, capacity: 16, allocator: allocator)
        XCTAssertNotEqual(next.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }, memory)
    }
}
