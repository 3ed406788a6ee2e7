import GatehouseCore
import NIOPosix

/// Runs blocking work (SQLite's reads and writes, scrypt) on a `NIOThreadPool`, so it never holds
/// up an event loop or Swift's cooperative pool.
public struct ThreadPoolExecutor: BlockingExecutor {
    public let pool: NIOThreadPool

    public init(pool: NIOThreadPool) { self.pool = pool }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}
