import NIOCore

/// What every client connection on one event loop shares — the upstream pool, the settings
/// snapshot, the counters, the access log — touched only on that loop, so the request path takes
/// no lock to read any of it.
///
/// Guarantees: ``settings`` is replaced as a whole (a reload hands every loop its new snapshot
/// on that loop); a request reads it once, when its head arrives, and keeps it to its end.
final class LoopContext {
    let eventLoop: EventLoop
    let pool: UpstreamPool
    var settings: ProxySettings
    let metrics: LoopMetrics
    let accessLog: LoopAccessLog
    /// Buffers for the heads this loop writes, used again by the next head.
    var headBuffers = HeadBuffers()

    /// An empty buffer with room for `capacity` bytes, for a head going in `direction`.
    func headBuffer(_ direction: HeadBuffers.Direction, capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        headBuffers.take(direction, capacity: capacity, allocator: allocator)
    }

    /// Hands a head's buffer back once it was written (the write keeps its own reference).
    func reuse(_ buffer: ByteBuffer, _ direction: HeadBuffers.Direction) {
        headBuffers.give(buffer, direction)
    }

    init(eventLoop: EventLoop, pool: UpstreamPool, settings: ProxySettings, metrics: LoopMetrics, accessLog: LoopAccessLog) {
        self.eventLoop = eventLoop
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.accessLog = accessLog
    }

    /// A loop context handed across threads; its value is only read on its loop.
    struct Handle: Sendable {
        let eventLoop: EventLoop
        private let bound: NIOLoopBound<LoopContext>

        /// Makes the context on its own loop (a loop-bound value must be made there).
        static func make(eventLoop: EventLoop, _ build: @escaping @Sendable () -> LoopContext) async throws -> Handle {
            let bound = try await eventLoop.submit { NIOLoopBound(build(), eventLoop: eventLoop) }.get()
            return Handle(eventLoop: eventLoop, bound: bound)
        }

        private init(eventLoop: EventLoop, bound: NIOLoopBound<LoopContext>) {
            self.eventLoop = eventLoop
            self.bound = bound
        }

        /// Only on `eventLoop`.
        var value: LoopContext { bound.value }
    }
}

/// One spare buffer per direction for the heads an event loop writes: a written head is done
/// with by the time the next one is built (each is flushed in the read cycle that made it), so
/// its memory serves again without an allocation.
///
/// Guarantees: a buffer handed out is empty; bytes of a head still held elsewhere (a write not
/// yet done) are never changed — `ByteBuffer.clear` gives a shared buffer fresh memory (copy on
/// write); a spare over 32 KiB is let go rather than kept.
struct HeadBuffers {
    enum Direction: Int { case toDevice = 0, toClient = 1 }

    private var spares: (ByteBuffer?, ByteBuffer?) = (nil, nil)
    static let largestKept = 32 * 1024

    mutating func take(_ direction: Direction, capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        // Moved out of its slot, so that this is its only reference when nothing else holds it.
        var spare = direction == .toDevice ? spares.0.take() : spares.1.take()
        guard spare != nil else { return allocator.buffer(capacity: capacity) }
        spare!.clear(minimumCapacity: capacity)
        return spare!
    }

    mutating func give(_ buffer: ByteBuffer, _ direction: Direction) {
        guard buffer.capacity <= Self.largestKept else { return }
        switch direction {
        case .toDevice: spares.0 = buffer
        case .toClient: spares.1 = buffer
        }
    }
}
