import Foundation

/// What the gate needs to know about a request: only parsed values, no sockets.
public struct RequestFacts: Sendable {
    public var method: String { head.method }
    /// The normalized target (what the rules see).
    public let target: RequestTarget
    public let head: RequestHead
    /// The socket peer; nil for a unix-socket client.
    public let peer: IPAddress?
    /// The request asks to switch to WebSocket.
    public let isWebSocketUpgrade: Bool

    public init(head: RequestHead, target: RequestTarget, peer: IPAddress?, isWebSocketUpgrade: Bool = false) {
        self.head = head
        self.target = target
        self.peer = peer
        self.isWebSocketUpgrade = isWebSocketUpgrade
    }
}

/// A request the gate let through, and everything the header policy needs to forward it.
public struct ForwardPlan: Sendable {
    /// Nil only for a public path reached without a credential.
    public let identity: Identity?
    /// Where the credential that authenticated the request was found (removed before forwarding).
    public let consumed: CredentialSources
    /// The client address after `X-Forwarded-For` processing.
    public let clientAddress: IPAddress?
    /// The socket peer is a trusted proxy, so its `X-Forwarded-*` headers may be kept.
    public let peerIsTrustedProxy: Bool
}

/// The gate's verdict on one request.
public enum GateDecision: Sendable {
    case forward(ForwardPlan)
    case refuse(AuthenticationFailure)
    /// The credential is one the store knows (a session, a JSON Web Token, a run-time API key, a
    /// one-shot token): look it up off the event loop, then ask ``RequestGate/complete(_:with:)``.
    case lookUp(PendingAuthentication)
}

/// What kind of store lookup a credential needs.
public enum StoredCredentialKind: Sendable, Hashable {
    case apiKey
    case jsonWebToken
    case session
    case oneShotToken
    /// An HTTP Basic credential: the password is tried as an API key first, then as this user's
    /// password (``AccountService/identify(_:now:)``).
    case basic(username: String)
}

/// A credential waiting for its store lookup, with everything the gate needs to finish deciding.
public struct PendingAuthentication: Sendable {
    public let kind: StoredCredentialKind
    public let secret: String
    /// The SHA-256 of ``secret``, computed once for the whole request.
    public let digest: SecretDigest
    fileprivate let consumed: CredentialSources
    fileprivate let isPublic: Bool
    fileprivate let requiredRoles: [String]?
    fileprivate let method: String
    fileprivate let isWebSocketUpgrade: Bool
    fileprivate let sameOrigin: Bool
    fileprivate let clientAddress: IPAddress?
    fileprivate let peerIsTrustedProxy: Bool

    /// The client address after `X-Forwarded-For` processing (for the access log and lockouts).
    public var client: IPAddress? { clientAddress }
}

/// Decides, as a pure function of the request, the clock and (for stored credentials) the
/// store's answer, whether a request may reach the device and as whom.
///
/// The order is fixed and documented in README:
/// 1. Credentials are extracted (``CredentialExtractor``). A presented credential decides: valid →
///    its identity; invalid → 401, even if a trusted network would have matched. Config-file API
///    keys are checked here; every other credential becomes ``GateDecision/lookUp(_:)``.
/// 2. With no credential, a trusted network may grant an identity.
/// 3. With no identity, a public path passes anonymously; anything else is 401.
/// 4. A read-only identity may use GET, HEAD and OPTIONS only, and may not open a WebSocket.
/// 5. An identity from the session cookie may change state (any other method, or a WebSocket)
///    only from the same site (``CrossSiteCheck``); one from HTTP Basic, which browsers also
///    replay on their own, only when no browser marked the request cross-site; otherwise 403.
/// 6. A path whose rule names roles needs an identity holding one of them; otherwise 403.
///
/// Before all of these, the first access rule covering the request (``AccessPolicy``) is found
/// on the normalized path: `deny` refuses at once (403), `public` makes the path public, and a
/// rule may allow `?apikey=` on its paths.
///
/// On a public path a bad credential does not block the request: it is forwarded anonymously
/// (identity headers stripped, credential removed), because the path needs no credential at all.
public final class RequestGate: Sendable {
    public let extractor: CredentialExtractor
    public let apiKeys: APIKeyAuthenticator
    public let trustedNetworks: TrustedNetworkAuthenticator
    public let clientAddresses: ClientAddressResolver
    public let accessPolicy: AccessPolicy
    /// The users named by config-file keys and trusted networks (they need no user in the store).
    public let configUsers: Set<String>
    /// Whether a store stands behind the gate; without one, every credential not in the config
    /// is refused at once.
    public let storeBacked: Bool

    public init(config: GatehouseConfig, storeBacked: Bool = false) {
        self.extractor = CredentialExtractor(queryAPIKeyEnabled: config.queryAPIKey, basicAuthEnabled: config.basicAuth)
        self.apiKeys = APIKeyAuthenticator(keys: config.apiKeys)
        self.trustedNetworks = TrustedNetworkAuthenticator(networks: config.trustedNetworks)
        self.clientAddresses = ClientAddressResolver(trustedProxies: config.trustedProxies)
        self.accessPolicy = config.accessPolicy
        self.configUsers = Set(config.apiKeys.map(\.user) + config.trustedNetworks.map(\.user))
        self.storeBacked = storeBacked
    }

    /// - Parameter digests: the connection's memo of the last secret's digest (nil: hash every time).
    public func decide(_ request: RequestFacts, now: Date, digests: DigestMemo? = nil) -> GateDecision {
        let peerIsTrustedProxy = clientAddresses.isTrustedProxy(request.peer)
        let client = clientAddresses.clientAddress(peer: request.peer, head: request.head)
        let host = request.head.value(.host)
        let (rule, access) = accessPolicy.decide(method: request.method, host: host, path: request.target.path)
        if access == .deny { return .refuse(.deniedByRule) }
        let isPublic = access == .open
        let requiredRoles: [String]? = if case .roles(let roles) = access { roles } else { nil }
        let acceptQueryAPIKey = rule?.queryCredentials.contains(.apiKey) ?? false

        func plan(_ identity: Identity?, _ consumed: CredentialSources) -> ForwardPlan {
            ForwardPlan(identity: identity.map { Self.limited($0, consumed) }, consumed: consumed, clientAddress: client, peerIsTrustedProxy: peerIsTrustedProxy)
        }

        switch extractor.extract(request.head, query: request.target.query, acceptQueryAPIKey: acceptQueryAPIKey) {
        case .failure(let failure):
            // Unusable credentials on a public path: forwarded anonymously, every place Gatehouse
            // reads a credential from emptied, so a working key next to a broken one never leaks.
            var everywhere = CredentialSources.allHeaders
            everywhere.insert(.oneShotQueryParameter)
            if extractor.queryAPIKeyEnabled || acceptQueryAPIKey { everywhere.insert(.apiKeyQueryParameter) }
            return isPublic ? .forward(plan(nil, everywhere)) : .refuse(failure)
        case .success(let credentials) where !credentials.isEmpty:
            let consumed = CredentialSources(credentials.lazy.map(\.source))
            let credential = credentials[0]
            let digest = digests?.digest(of: credential.secret) ?? SecretDigest.of(credential.secret)
            // Credentials a browser sends on its own are held to a same-site rule, and only for
            // what `authorize` treats as a state change.
            let safe = Self.isSafe(request.method, isWebSocketUpgrade: request.isWebSocketUpgrade)
            let sameOrigin: Bool
            switch credential.source {
            case .sessionCookie: sameOrigin = safe || CrossSiteCheck.isSameSite(request.head, peerIsTrustedProxy: peerIsTrustedProxy)
            case .authorizationBasic: sameOrigin = safe || !CrossSiteCheck.isCrossSite(request.head, peerIsTrustedProxy: peerIsTrustedProxy)
            default: sameOrigin = true
            }
            let kind: StoredCredentialKind
            switch credential.source {
            case .sessionCookie: kind = .session
            case .oneShotQueryParameter: kind = .oneShotToken
            case .apiKeyHeader, .authorizationToken, .apiKeyQueryParameter, .authorizationBearer, .authorizationBasic:
                // A Basic password may be an API key (what slicers and phone apps send).
                let result = apiKeys.authenticate(digest: digest, now: now)
                if case .success(let identity) = result {
                    return Self.authorize(identity, request: request, sameOrigin: sameOrigin, requiredRoles: requiredRoles, plan: plan(identity, consumed))
                }
                if case .failure(.unknownAPIKey) = result, storeBacked {
                    if let user = credential.basicUser {
                        kind = .basic(username: user)
                    } else {
                        kind = credential.source == .authorizationBearer && JSONWebTokenShape.matches(credential.secret)
                            ? .jsonWebToken : .apiKey
                    }
                } else {
                    guard case .failure(let failure) = result else { return .refuse(.unknownAPIKey) }
                    let refusal = failure == .unknownAPIKey && credential.basicUser != nil ? .wrongPassword : failure
                    return isPublic ? .forward(plan(nil, consumed)) : .refuse(refusal)
                }
            }
            guard storeBacked else {
                return isPublic ? .forward(plan(nil, consumed)) : .refuse(kind == .oneShotToken ? .invalidOneShotToken : .invalidSession)
            }
            return .lookUp(
                PendingAuthentication(
                    kind: kind, secret: credential.secret, digest: digest, consumed: consumed, isPublic: isPublic, requiredRoles: requiredRoles,
                    method: request.method,
                    isWebSocketUpgrade: request.isWebSocketUpgrade,
                    sameOrigin: sameOrigin,
                    clientAddress: client, peerIsTrustedProxy: peerIsTrustedProxy))
        case .success:
            if let identity = trustedNetworks.authenticate(client: client) {
                return Self.authorize(identity, request: request, sameOrigin: true, requiredRoles: requiredRoles, plan: plan(identity, []))
            }
            return isPublic ? .forward(plan(nil, [])) : .refuse(.missingCredential)
        }
    }

    /// Finishes a decision once the store answered for a ``GateDecision/lookUp(_:)``.
    public func complete(_ pending: PendingAuthentication, with result: Result<Identity, AuthenticationFailure>) -> GateDecision {
        switch result {
        case .success(let identity):
            let identity = Self.limited(identity, pending.consumed)
            let plan = ForwardPlan(
                identity: identity, consumed: pending.consumed, clientAddress: pending.clientAddress,
                peerIsTrustedProxy: pending.peerIsTrustedProxy)
            return Self.authorize(
                identity, method: pending.method, isWebSocketUpgrade: pending.isWebSocketUpgrade,
                sameOrigin: pending.sameOrigin, requiredRoles: pending.requiredRoles, plan: plan)
        case .failure(let failure):
            // A lockout stays a lockout on a public path too: a guessing client is told so.
            guard pending.isPublic, failure != .storeUnavailable, failure.status != 429 else { return .refuse(failure) }
            return .forward(
                ForwardPlan(identity: nil, consumed: pending.consumed, clientAddress: pending.clientAddress,
                            peerIsTrustedProxy: pending.peerIsTrustedProxy))
        }
    }

    /// What an identity may issue, given where its credential was found: a browser replays HTTP
    /// Basic on its own, so nothing presented that way may issue another credential.
    private static func limited(_ identity: Identity, _ consumed: CredentialSources) -> Identity {
        consumed.contains(.authorizationBasic) && identity.mayIssue ? identity.withoutIssuing() : identity
    }

    /// A method that changes nothing (GET, HEAD, OPTIONS), and not a WebSocket upgrade (which
    /// opens a two-way channel).
    private static func isSafe(_ method: String, isWebSocketUpgrade: Bool) -> Bool {
        (method == "GET" || method == "HEAD" || method == "OPTIONS") && !isWebSocketUpgrade
    }

    private static func authorize(
        _ identity: Identity, request: RequestFacts, sameOrigin: Bool, requiredRoles: [String]?, plan: ForwardPlan
    ) -> GateDecision {
        authorize(
            identity, method: request.method, isWebSocketUpgrade: request.isWebSocketUpgrade, sameOrigin: sameOrigin,
            requiredRoles: requiredRoles, plan: plan)
    }

    private static func authorize(
        _ identity: Identity, method: String, isWebSocketUpgrade: Bool, sameOrigin: Bool, requiredRoles: [String]?, plan: ForwardPlan
    ) -> GateDecision {
        let safe = isSafe(method, isWebSocketUpgrade: isWebSocketUpgrade)
        if identity.readOnly && !safe {
            return .refuse(isWebSocketUpgrade ? .readOnlyUpgrade : .readOnlyCredential(method: method))
        }
        if !safe && !sameOrigin { return .refuse(.crossSiteRequest) }
        if let requiredRoles, !identity.roles.contains(where: requiredRoles.contains) { return .refuse(.missingRole) }
        return .forward(plan)
    }
}

/// Whether a bearer credential has the shape of a JSON Web Token (three base64url parts), so it
/// is checked as one instead of being looked up as an API key.
public enum JSONWebTokenShape {
    public static func matches(_ secret: String) -> Bool {
        var dots = 0
        for b in secret.utf8 {
            if b == UInt8(ascii: ".") { dots += 1; continue }
            let ok = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
            if !ok { return false }
        }
        return dots == 2
    }
}

/// The store-lookup sequence — decide, look the credential up, complete — written once. The
/// event loop calls ``decideFromMemory(_:accounts:now:)`` (no hop when memory answers) and,
/// only when it returns `.lookUp`, ``completeFromStore(_:accounts:now:)`` off the loop; own
/// endpoints, the tunnel watch and `gatehouse explain` call ``decideFully(_:accounts:now:)``,
/// which is those two in a row.
extension RequestGate {
    /// ``decide(_:now:)`` and, for a credential the store knows, the lookup when memory (the
    /// credential cache, sessions, tokens) can answer it. `.lookUp` only when the store must be
    /// asked; without `accounts` such a credential is 503 (the store cannot be asked).
    public func decideFromMemory(_ facts: RequestFacts, accounts: AccountService?, now: Date, digests: DigestMemo? = nil) -> GateDecision {
        let decision = decide(facts, now: now, digests: digests)
        guard case .lookUp(let pending) = decision else { return decision }
        guard let accounts else { return .refuse(.storeUnavailable) }
        guard let answer = accounts.identifyFromMemory(pending, now: now) else { return decision }
        return complete(pending, with: answer)
    }

    /// The rest of a `.lookUp`: the store (and scrypt) asked, then ``complete(_:with:)``.
    public func completeFromStore(_ pending: PendingAuthentication, accounts: AccountService, now: Date) async -> GateDecision {
        complete(pending, with: await accounts.identify(pending, now: now))
    }

    /// The whole decision, store included.
    public func decideFully(_ facts: RequestFacts, accounts: AccountService?, now: Date) async -> GateDecision {
        let decision = decideFromMemory(facts, accounts: accounts, now: now)
        guard case .lookUp(let pending) = decision, let accounts else { return decision }
        return await completeFromStore(pending, accounts: accounts, now: now)
    }
}
