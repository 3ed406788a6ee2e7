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
