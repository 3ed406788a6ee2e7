import Foundation
import GatehouseCore
import GatehouseServer
import Logging
import NIOCore
import NIOPosix
import XCTest

/// A running Gatehouse in front of a running ``RecordingUpstream``, both on loopback, torn down
/// by ``stop()``. Tests change `config` through the builder closure.
public final class ProxyFixture {
    public static let aliceKey = "alice-key-0123456789abcdef0123456789abcdef"
    public static let readerKey = "reader-key-0123456789abcdef0123456789abcdef"
    public static let expiredKey = "expired-key-0123456789abcdef0123456789abcdef"
    public static let disabledKey = "disabled-key-0123456789abcdef0123456789abcdef"

    public let group: MultiThreadedEventLoopGroup
    public let upstream: RecordingUpstream
    public let server: GatehouseServer
    public let config: GatehouseConfig
    public var port: Int { server.port }

    public static func baseConfig(upstreamPort: Int) -> GatehouseConfig {
        var config = GatehouseConfig()
        config.listen = ListenAddress(host: "127.0.0.1", port: 0)
        config.upstream = .tcp(host: "127.0.0.1", port: upstreamPort)
        config.accessLog = false
        config.apiKeys = [
            APIKeyRecord(name: "alice-slicer", user: "alice", roles: ["admin", "operator"], digest: .of(aliceKey)),
            APIKeyRecord(name: "reader", user: "rita", roles: ["viewer"], digest: .of(readerKey), readOnly: true),
            APIKeyRecord(name: "old", user: "olga", roles: [], digest: .of(expiredKey), expires: Date(timeIntervalSince1970: 1_000_000)),
            APIKeyRecord(name: "off", user: "otto", roles: [], digest: .of(disabledKey), disabled: true),
        ]
        config.timeouts.drain = .seconds(2)
        return config
    }

    /// - Parameter log: receives every log line at `.info` and above (the access log included);
    ///   without it only warnings are logged, to stdout.
    public init(
        threads: Int = 1, unixSocket: String? = nil, accounts: AccountService? = nil, log: CapturedLog? = nil,
        _ customize: (inout GatehouseConfig) -> Void = { _ in }
    ) async throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        upstream = try await RecordingUpstream.start(group: group, unixSocket: unixSocket)
        var config = Self.baseConfig(upstreamPort: upstream.port)
        if let unixSocket { config.upstream = .unixSocket(path: unixSocket) }
        customize(&config)
        self.config = config
        var logger = log.map { log in Logger(label: "gatehouse-test") { _ in log.handler() } } ?? Logger(label: "gatehouse-test")
        logger.logLevel = log == nil ? .warning : .info
        server = try await GatehouseServer.start(config: config, group: group, logger: logger, accounts: accounts)
    }

    /// Runs `body` against a fresh fixture and always tears it down.
    public static func with(
        threads: Int = 1, unixSocket: String? = nil, _ customize: (inout GatehouseConfig) -> Void = { _ in },
        _ body: (ProxyFixture) async throws -> Void
    ) async throws {
        let fx = try await ProxyFixture(threads: threads, unixSocket: unixSocket, customize)
        do {
            try await body(fx)
        } catch {
            await fx.stop()
            throw error
        }
        await fx.stop()
    }

    public func client(host: String = "127.0.0.1", timeout: Int = 10) throws -> RawClient {
        try RawClient(port: port, host: host, timeoutSeconds: timeout)
    }

    /// A GET with the given extra header lines.
    public func get(_ path: String, _ headerLines: [String] = [], host: String = "127.0.0.1") throws -> RawResponse {
        let c = try client(host: host)
        return try c.request("GET \(path) HTTP/1.1\r\nHost: gatehouse.test\r\n" + headerLines.map { $0 + "\r\n" }.joined() + "Connection: close\r\n\r\n")
    }

    public func stop() async {
        await server.shutdown(drain: .milliseconds(100))
        await upstream.stop()
        try? await group.shutdownGracefully()
    }

    /// Polls `condition` for up to `seconds` (for effects that happen on another thread, like an
    /// upstream noticing a close). Not a timing assertion: it only bounds how long a test waits.
    public static func eventually(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}
