/// A refusal decided from a request's head alone, before any credential is read.
public struct AdmissionRefusal: Sendable, Hashable {
    public let status: Int
    /// The `detail` of the JSON answer: what was wrong, naming the field.
    public let detail: String
    /// Extra response headers (`Allow` on a 405).
    public let headers: [HeaderField]
    /// The connection is closed after the answer: the head was malformed, so nothing after it
    /// on the connection can be trusted to start where the client meant it to.
    public let close: Bool

    public init(status: Int, detail: String, headers: [HeaderField] = [], close: Bool) {
        self.status = status
        self.detail = detail
        self.headers = headers
        self.close = close
    }
}

/// A header name and value, hashable (for values that are compared in tests).
public struct HeaderField: Sendable, Hashable {
    public let name: String
    public let value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// Gatehouse's own endpoints that need no store, and where the rest live.
public enum OwnPaths {
    public static let prefix = "/_gatehouse"
    public static let healthz = "/_gatehouse/healthz"
    public static let readyz = "/_gatehouse/readyz"
}

/// Where a request goes once its head was admitted.
public enum AdmissionOutcome: Sendable {
    /// Answered at once; the device sees nothing.
    case refuse(AdmissionRefusal)
    /// A CORS preflight on a CORS path, answered 200 with these headers; never forwarded.
    case preflight([HeaderField])
    /// `healthz`: answered `ok` (GET, HEAD) or 405.
    case healthz
    /// `readyz`: the upstream and the store are checked.
    case readyz
    /// Another of Gatehouse's own endpoints under `/_gatehouse/` (the body is collected, then answered).
    case ownEndpoint
    /// A device path Gatehouse answers itself (``DevicePaths``).
    case deviceEndpoint
    /// Decided by the ``RequestGate`` with these facts.
    case gate(RequestFacts)
}

/// The head-level verdict on a request: its normalized target (once the path was accepted),
/// the CORS headers its answer carries, and where it goes.
public struct Admission: Sendable {
    /// The normalized target (what the rules see and the device receives); nil when the request
    /// was refused before its path was read.
    public let target: RequestTarget?
    /// CORS headers for the answer (an allowed origin on a CORS path), else nil.
    public let corsHeaders: [HeaderField]?
    public let outcome: AdmissionOutcome
}

/// Everything Gatehouse decides about a request from its head alone, in one fixed order, as a
/// pure function — the one sequence that `serve` and `gatehouse explain` both run. Framing
/// (smuggling shapes, control bytes, `Host`, an origin-form target without `#`) was checked
/// when the head was read (``RequestHeadScanner``: 400 and close); then:
///
/// 1. The target's length (414).
/// 2. The method (``MethodPolicy``): 405 with `Allow`.
/// 3. The path (``PathNormalizer``): 400 and close, or the normal form everything after sees.
/// 4. `Connection` naming a header the request needs or Gatehouse sets: 400 and close.
/// 5. A WebSocket upgrade without exactly one `Sec-WebSocket-Key` of 16 bytes: 400.
/// 6. CORS: a preflight on a CORS path is answered here.
/// 7. A declared body over `limits.max_body_bytes`: 413 and close.
/// 8. `/_gatehouse/…`: Gatehouse's own endpoints (an `Upgrade` to one is never honoured); a path
///    that becomes one of them or a claimed device path only once its `;` parameters are cut is 400.
/// 9. Device paths Gatehouse answers itself, unless a `deny` rule covers them (an `Upgrade`
///    to one is 400).
/// 10. Everything else goes to the gate, with ``RequestFacts`` built on the normalized target.
public final class AdmissionPolicy: Sendable {
    public let limits: GatehouseConfig.Limits
    public let methods: MethodPolicy
    public let cors: CORSPolicy
    public let devicePaths: DevicePaths
    public let headerPolicy: UpstreamHeaderPolicy
    public let accessPolicy: AccessPolicy
    /// A store stands behind Gatehouse, so its sign-in page and JSON API are served.
    public let servesOwnEndpoints: Bool

    public init(
        limits: GatehouseConfig.Limits, methods: MethodPolicy, cors: CORSPolicy, devicePaths: DevicePaths,
        headerPolicy: UpstreamHeaderPolicy, accessPolicy: AccessPolicy, servesOwnEndpoints: Bool
    ) {
        self.limits = limits
        self.methods = methods
        self.cors = cors
        self.devicePaths = servesOwnEndpoints ? devicePaths : DevicePaths(moonrakerOneshot: false, octoPrintAppKeys: false)
        self.headerPolicy = headerPolicy
        self.accessPolicy = accessPolicy
        self.servesOwnEndpoints = servesOwnEndpoints
    }

    /// The policy a config gives; `storeBacked`: a store stands behind Gatehouse.
    public convenience init(config: GatehouseConfig, storeBacked: Bool) {
        self.init(
            limits: config.limits, methods: MethodPolicy(extra: config.methodsAllowed), cors: config.cors,
            devicePaths: DevicePaths(moonrakerOneshot: config.moonrakerOneshot, octoPrintAppKeys: config.octoPrintAppKeys),
            headerPolicy: UpstreamHeaderPolicy(config: config), accessPolicy: config.accessPolicy, servesOwnEndpoints: storeBacked)
    }

    /// The verdict on a head that ``RequestHeadScanner`` read (its framing, control bytes,
    /// `Host` and target form were checked there).
    /// - Parameter peer: the socket peer (nil for a unix-socket client).
    public func admit(_ head: RequestHead, peer: IPAddress?) -> Admission {
        func refuse(_ status: Int, _ detail: String, headers: [HeaderField] = [], close: Bool, target: RequestTarget? = nil, cors: [HeaderField]? = nil) -> Admission {
            Admission(target: target, corsHeaders: cors, outcome: .refuse(AdmissionRefusal(status: status, detail: detail, headers: headers, close: close)))
        }
        let method = head.method
        let uri = head.uri
        if uri.utf8.count > limits.maxURIBytes { return refuse(414, "The request target is longer than allowed.", close: false) }
        guard methods.allows(method) else {
            return refuse(405, "The method \(method.prefix(20)) is not allowed here.", headers: [HeaderField("Allow", methods.allowHeader)], close: false)
        }
        let received = RequestTarget(uri)
        let target: RequestTarget
        switch PathNormalizer.normalize(received.path) {
        case .success(let path): target = RequestTarget(path: path, query: received.query)
        case .failure(let refusal): return refuse(400, "The request path is refused: \(refusal).", close: true)
        }
        if let named = headerPolicy.connectionViolation(in: head) {
            return refuse(400, "The Connection header names \(named), which the request needs.", close: true, target: target)
        }
        let asksUpgrade = head.asksUpgrade
        let isWebSocket = asksUpgrade && method == "GET" && Self.isWebSocketUpgrade(head)
        if isWebSocket && WebSocketHandshake.key(in: head) == nil {
            return refuse(400, "A WebSocket upgrade needs exactly one Sec-WebSocket-Key of 16 base64-encoded bytes.", close: true, target: target)
        }
        var corsHeaders: [HeaderField]?
        if cors.applies(toPath: target.path) {
            if CORSPolicy.isPreflight(method: method, head) {
                guard let allowed = cors.preflightHeaders(head) else {
                    return refuse(403, "Calls from this origin are not allowed.", close: false, target: target)
                }
                return Admission(target: target, corsHeaders: nil, outcome: .preflight(allowed.map { HeaderField($0.name, $0.value) }))
            }
            corsHeaders = cors.responseHeaders(origin: head.value(.origin))?.map { HeaderField($0.name, $0.value) }
        }
        if limits.maxBodyBytes > 0, case .contentLength(let length) = head.framing, length > limits.maxBodyBytes {
            return refuse(413, "The request body is larger than allowed.", close: true, target: target, cors: corsHeaders)
        }
        // A path that only names Gatehouse's own or a claimed device path once its `;`
        // parameters are cut would be judged by the rules as that path but reach the device.
        let matching = AccessPolicy.matchingPath(target.path)
        if !matching.bytesEqual(target.path), PathBytes.isUnder(matching, prefix: OwnPaths.prefix) || devicePaths.claims(matching) {
            return refuse(400, "The request path has ; parameters on a path Gatehouse answers itself.", close: true, target: target, cors: corsHeaders)
        }
        if PathBytes.isUnder(target.path, prefix: OwnPaths.prefix) {
            let outcome: AdmissionOutcome
            if target.path.bytesEqual(OwnPaths.healthz) {
                outcome = .healthz
            } else if asksUpgrade || (!servesOwnEndpoints && !target.path.bytesEqual(OwnPaths.readyz)) {
                return refuse(404, "No such Gatehouse endpoint.", close: false, target: target, cors: corsHeaders)
            } else if target.path.bytesEqual(OwnPaths.readyz) {
                guard method == "GET" || method == "HEAD" else {
                    return refuse(405, "Use GET.", headers: [HeaderField("Allow", "GET, HEAD")], close: false, target: target, cors: corsHeaders)
                }
                outcome = .readyz
            } else {
                outcome = .ownEndpoint
            }
            return Admission(target: target, corsHeaders: corsHeaders, outcome: outcome)
        }
        let host = head.value(.host)
        if devicePaths.claims(target.path) {
            // A device endpoint Gatehouse answers itself: the device never sees these requests —
            // not as an upgrade either. A `deny` rule still wins: the gate refuses it.
            if asksUpgrade { return refuse(400, "This is not a WebSocket endpoint.", close: false, target: target, cors: corsHeaders) }
            if accessPolicy.decide(method: method, host: host, path: target.path).decision != .deny {
                return Admission(target: target, corsHeaders: corsHeaders, outcome: .deviceEndpoint)
            }
        }
        let facts = RequestFacts(head: head, target: target, peer: peer, isWebSocketUpgrade: isWebSocket)
        return Admission(target: target, corsHeaders: corsHeaders, outcome: .gate(facts))
    }

    /// `Connection` names `upgrade` and `Upgrade` names exactly `websocket` (one token, in one
    /// or several lines): a request that also asks for another protocol (`h2c`) is not one.
    public static func isWebSocketUpgrade(_ head: RequestHead) -> Bool {
        let connectionUpgrade = head.values(.connection).contains { value in
            value.split(separator: ",").contains(where: { $0.trimmingASCIIWhitespace().equalsCaseInsensitive("upgrade") })
        }
        let protocols = head.values(.upgrade).flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingASCIIWhitespace() } }
        return connectionUpgrade && protocols.count == 1 && protocols[0].equalsCaseInsensitive("websocket")
    }
}

extension UpstreamHeaderPolicy {
    /// The header policy a config gives.
    public convenience init(config: GatehouseConfig) {
        self.init(
            identityHeaders: config.identityHeaders, stripHeaders: config.stripHeaders, forwardCredentials: config.forwardCredentials,
            forwardClientAddress: config.forwardClientAddress, forwardUnderscoreHeaders: config.forwardUnderscoreHeaders,
            forwardIdentityFamily: config.forwardIdentityFamily)
    }
}

/// The rules every state-changing own endpoint (under `/_gatehouse/`, and device paths
/// Gatehouse answers itself) applies before it reads anything: a request a browser marks as
/// coming from another site is refused (403) unless `cors.allowed_origins` names its origin, and
/// a body sent to the JSON API must be `application/json` (415) — what an HTML form on another
/// site can send (`text/plain`, form encoding) never reaches an endpoint that acts on it.
/// `serve` and `gatehouse explain` both ask it.
public enum OwnEndpointGuard {
    public struct Refusal: Sendable, Hashable {
        public let status: Int
        public let detail: String
        /// Answered as a page (the sign-in page's forms), not JSON.
        public let asPage: Bool
    }

    public static func refusal(
        method: String, path: String, head: RequestHead, hasBody: Bool, peerIsTrustedProxy: Bool, cors: CORSPolicy
    ) -> Refusal? {
        guard method != "GET", method != "HEAD", method != "OPTIONS" else { return nil }
        let api = path.hasBytePrefix("/_gatehouse/api/")
        if CrossSiteCheck.isCrossSite(head, peerIsTrustedProxy: peerIsTrustedProxy), !cors.namesExplicitly(origin: head.value(.origin)) {
            return Refusal(
                status: 403, detail: api ? "Requests from another site are not accepted here." : "Requests from another site are not accepted.",
                asPage: !api)
        }
        if api, hasBody, !isJSON(head.value(.contentType)) {
            return Refusal(status: 415, detail: "Content-Type: the body must be sent as application/json.", asPage: false)
        }
        return nil
    }

    /// `application/json`, with or without parameters (`; charset=utf-8`).
    public static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let type = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingASCIIWhitespace().asciiLowercased() }
        return type == "application/json"
    }
}

/// OctoPrint's CSRF pair goes only with a state-changing request authenticated by a credential
/// a browser never sends on its own (an API key or token, in a header or the query, or a
/// one-shot token) — the waiver OctoPrint gives its own API keys. Never with Gatehouse's session
/// cookie, HTTP Basic (a browser replays it) or a trusted network (no credential at all).
public enum DeviceCSRFPolicy {
    public static func applies(to plan: ForwardPlan, method: String) -> Bool {
        plan.identity != nil && method != "GET" && method != "HEAD" && method != "OPTIONS"
            && !plan.consumed.isEmpty && plan.consumed.isDisjoint(with: [.sessionCookie, .authorizationBasic])
    }
}

extension UpstreamHeaderPolicy {
    /// The framing header the request goes upstream with: its `Content-Length`, or
    /// `Transfer-Encoding: chunked` (the chunks pass as they came), or none.
    public static func framing(of head: RequestHead) -> HeaderField? {
        switch head.framing {
        case .none: return nil
        case .contentLength(let n): return HeaderField("Content-Length", String(n))
        case .chunked: return HeaderField("Transfer-Encoding", "chunked")
        }
    }
}
