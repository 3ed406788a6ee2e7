import Foundation
import GatehouseCore
import GatehouseServer
import GatehouseStore
import NIOCore
import NIOEmbedded
import NIOHTTP1

/// A running Gatehouse the security suite attacks, with what `gatehouse explain` would say about
/// the same requests (run on the same config and store, as the command line would: its own
/// memory, read-only).
public protocol AttackTarget {
    var port: Int { get }
    var upstream: RecordingUpstream { get }
    /// The config the server runs with.
    var runningConfig: GatehouseConfig { get }
    /// An explainer over the same config and store, holding no state of the server's (its
    /// one-shot tokens and lockout counters are the running process's own).
    func makeExplainer() -> RequestExplainer
}

extension ProxyFixture: AttackTarget {
    public var runningConfig: GatehouseConfig { config }
    public func makeExplainer() -> RequestExplainer { RequestExplainer(config: config, accounts: nil) }
}

extension IdentityFixture: AttackTarget {
    public var runningConfig: GatehouseConfig { proxy.config }

    public func makeExplainer() -> RequestExplainer {
        RequestExplainer(config: proxy.config, accounts: readOnlyAccounts())
    }

    /// Accounts over this fixture's store as `gatehouse explain` opens them: read-only (no
    /// `last_used`, no session touch), with memory of their own.
    public func readOnlyAccounts() -> AccountService? {
        guard let secret = try? JWTSecretFile.loadOrCreate(path: directory + "/jwt.secret") else { return nil }
        var sessions = proxy.config.sessions
        sessions.touchInterval = .infinity
        let clock = self.clock
        let credentials = StoredCredentialAuthenticator(
            store: store, tokens: TokenAuthority(secret: secret, settings: proxy.config.jwt),
            sessions: sessions, oneShotTokens: OneShotTokens(), keyTouchInterval: .infinity, now: { clock.now() })
        return AccountService(
            credentials: credentials, throttle: LoginThrottle(policy: proxy.config.loginThrottle), passwordPolicy: proxy.config.passwordPolicy,
            passwordParameters: Self.scrypt)
    }
}

/// A request head as SwiftNIO's parser reads it from raw bytes, with the server's limits.
public struct ParsedHead: Sendable {
    public let method: String
    public let uri: String
    public let version: (major: Int, minor: Int)
    public let headers: [(name: String, value: String)]

    /// The first head in `bytes`, or nil when the parser refuses them (the server answers those
    /// before anything Gatehouse decides).
    public static func parse(_ bytes: [UInt8], limits: GatehouseConfig.Limits) -> ParsedHead? {
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderFieldSize = limits.maxHeadBytes
        decoderLimits.maxHeaderListSize = limits.maxHeadBytes
        decoderLimits.maxHeaderFieldCount = limits.maxHeaders
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: decoderLimits)))
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        guard (try? channel.writeInbound(channel.allocator.buffer(bytes: bytes))) != nil else { return nil }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .head(let head) = part {
                return ParsedHead(
                    method: head.method.rawValue, uri: head.uri, version: (head.version.major, head.version.minor),
                    headers: head.headers.map { ($0.name, $0.value) })
            }
        }
        return nil
    }
}
