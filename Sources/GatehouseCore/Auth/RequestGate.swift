import Foundation

/// What the gate needs to know about a request: only parsed values, no sockets.
public struct RequestFacts: Sendable {
    public let method: String
    public let target: RequestTarget
    public let headers: [(name: String, value: String)]
    /// The socket peer; nil for a unix-socket client.
    public let peer: IPAddress?
    /// The request asks to switch to WebSocket.
    public let isWebSocketUpgrade: Bool

    public init(method: String, target: RequestTarget, headers: [(name: String, value: String)], peer: IPAddress?, isWebSocketUpgrade: Bool = false) {
        self.method = method
        self.target = target
        self.headers = headers
        self.peer = peer
        self.isWebSocketUpgrade = isWebSocketUpgrade
    }
}

/// A request the gate let through, and everything the header policy needs to forward it.
public struct ForwardPlan: Sendable {
    /// Nil only for a public path reached without a credential.
    public let identity: Identity?
    /// Where the credential that authenticated the request was found (removed before forwarding).
    public let consumed: Set<CredentialSource>
    /// The client address after `X-Forwarded-For` processing.
    public let clientAddress: IPAddress?
    /// The socket peer is a trusted proxy, so its `X-Forwarded-*` headers may be kept.
    public let peerIsTrustedProxy: Bool
}

/// The gate's verdict on one request.
public enum GateDecision: Sendable {
    case forward(ForwardPlan)
    case refuse(AuthenticationFailure)
}

/// Decides, as a pure function of the request and the clock, whether a request may reach the
/// device and as whom.
///
/// The order is fixed and documented in README:
/// 1. Credentials are extracted (``CredentialExtractor``). A presented credential decides: valid →
///    its identity; invalid → 401, even if a trusted network would have matched.
/// 2. With no credential, a trusted network may grant an identity.
/// 3. With no identity, a public path passes anonymously; anything else is 401.
/// 4. A read-only identity may use GET, HEAD and OPTIONS only, and may not open a WebSocket.
///
/// On a public path a bad credential does not block the request: it is forwarded anonymously
/// (identity headers stripped, credential removed), because the path needs no credential at all.
public struct RequestGate: Sendable {
    public let extractor: CredentialExtractor
    public let apiKeys: APIKeyAuthenticator
    public let trustedNetworks: TrustedNetworkAuthenticator
    public let clientAddresses: ClientAddressResolver
    public let publicPaths: PublicPaths

    public init(config: GatehouseConfig) {
        self.extractor = CredentialExtractor(queryAPIKeyEnabled: config.queryAPIKey)
        self.apiKeys = APIKeyAuthenticator(keys: config.apiKeys)
        self.trustedNetworks = TrustedNetworkAuthenticator(networks: config.trustedNetworks)
        self.clientAddresses = ClientAddressResolver(trustedProxies: config.trustedProxies)
        self.publicPaths = PublicPaths(prefixes: config.publicPaths)
    }

    public func decide(_ request: RequestFacts, now: Date) -> GateDecision {
        let peerIsTrustedProxy = clientAddresses.isTrustedProxy(request.peer)
        let forwardedFor = peerIsTrustedProxy
            ? request.headers.filter { $0.name.equalsCaseInsensitive("x-forwarded-for") }.map(\.value) : []
        let client = clientAddresses.clientAddress(peer: request.peer, forwardedFor: forwardedFor)
        let isPublic = publicPaths.isPublic(path: request.target.path)

        func plan(_ identity: Identity?, _ consumed: Set<CredentialSource>) -> ForwardPlan {
            ForwardPlan(identity: identity, consumed: consumed, clientAddress: client, peerIsTrustedProxy: peerIsTrustedProxy)
        }
        func authorize(_ identity: Identity, _ consumed: Set<CredentialSource>) -> GateDecision {
            if identity.readOnly {
                if request.isWebSocketUpgrade { return .refuse(.readOnlyUpgrade) }
                if !["GET", "HEAD", "OPTIONS"].contains(request.method) {
                    return .refuse(.readOnlyCredential(method: request.method))
                }
            }
            return .forward(plan(identity, consumed))
        }

        switch extractor.extract(headers: request.headers, query: request.target.query) {
        case .failure(let failure):
            // Unusable credentials on a public path: forwarded anonymously, every place Gatehouse
            // reads a credential from emptied, so a working key next to a broken one never leaks.
            var everywhere = Set(CredentialSource.allHeaderSources)
            if extractor.queryAPIKeyEnabled { everywhere.insert(.apiKeyQueryParameter) }
            return isPublic ? .forward(plan(nil, everywhere)) : .refuse(failure)
        case .success(let credentials) where !credentials.isEmpty:
            let consumed = Set(credentials.map(\.source))
            switch apiKeys.authenticate(key: credentials[0].secret, now: now) {
            case .success(let identity): return authorize(identity, consumed)
            case .failure(let failure): return isPublic ? .forward(plan(nil, consumed)) : .refuse(failure)
            }
        case .success:
            if let identity = trustedNetworks.authenticate(client: client) {
                return authorize(identity, [])
            }
            return isPublic ? .forward(plan(nil, [])) : .refuse(.missingCredential)
        }
    }
}

extension CredentialSource {
    /// The header-borne sources, removed together when a request's credentials were unusable.
    static let allHeaderSources: [CredentialSource] = [.apiKeyHeader, .authorizationBearer, .authorizationToken]
}
