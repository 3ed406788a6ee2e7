import GatehouseCore
import NIOPosix

/// Runs store calls on a `NIOThreadPool`, so SQLite's blocking reads and writes never hold up an
/// event loop.
public struct ThreadPoolStoreExecutor: StoreExecutor {
    public let pool: NIOThreadPool

    public init(pool: NIOThreadPool) { self.pool = pool }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}
