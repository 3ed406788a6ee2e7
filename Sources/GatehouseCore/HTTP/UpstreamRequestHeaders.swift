/// The names of the headers through which Gatehouse tells the device who is calling.
public struct IdentityHeaderNames: Sendable, Hashable {
    public var user: String
    public var roles: String
    public var method: String

    public init(user: String = "X-Remote-User", roles: String = "X-Remote-Roles", method: String = "X-Remote-Auth") {
        self.user = user
        self.roles = roles
        self.method = method
    }

    public var all: [String] { [user, roles, method] }
}

/// Builds the header list sent to the device from the one received.
///
/// Guarantees:
/// - Identity reaches the device only through headers set here: every client copy of an identity
///   header, of any header of ``IdentityHeaderFamily`` (the names other authentication proxies
///   use: `Remote-User`, `X-Forwarded-User`, `X-Auth-Request-*`, …) or of a `strip_headers`
///   entry is removed first, compared case-insensitively with `_` and `-` as the same character
///   (WSGI servers merge `X_Remote_User` into `X-Remote-User`).
/// - A header whose name holds `_` is not forwarded at all (nginx's `underscores_in_headers off`),
///   unless `forward_underscore_headers` names it: a WSGI or PHP device would read `X_Api_Key` as
///   `X-Api-Key`, so an alias could stand in for a header Gatehouse consumed or set.
/// - Hop-by-hop headers are dropped: `Connection` and every header it names, `Keep-Alive`,
///   `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding` and `Content-Length` (framing is set
///   by the forwarder), `HTTP2-Settings`, and `Upgrade`; a WebSocket upgrade gets exactly
///   `Upgrade: websocket` and `Connection: Upgrade` from Gatehouse (never a second protocol such as `h2c`).
/// - The consumed credential is removed unless `forwardCredentials`; Gatehouse's session cookie is
///   always removed from `Cookie`, in every spelling a device's cookie parser might read as it
///   (``SessionCookie/removing(from:)``); other cookies pass.
/// - `X-Forwarded-For` is appended to only when the peer is a trusted proxy; otherwise it is
///   replaced by the peer, and `X-Forwarded-Proto`/`-Host`, `Forwarded` and `X-Real-IP` from an
///   untrusted peer are dropped, so a client cannot claim to be someone it is not. From a trusted
///   proxy, `X-Real-IP` and `Forwarded` are replaced by the client address Gatehouse derived
///   (Tornado devices read `X-Real-IP` first), never passed on as sent.
/// - Without `forwardClientAddress`, no `X-Forwarded-For`, `X-Real-IP` or `Forwarded` reaches the
///   device at all, from anyone (a device that trusts by address then sees only Gatehouse's).
public final class UpstreamHeaderPolicy: Sendable {
    public let identityHeaders: IdentityHeaderNames
    public let forwardCredentials: Bool
    public let forwardClientAddress: Bool
    /// Identity headers and `strip_headers`, folded (lower case, `_` as `-`).
    private let strippedNames: [[UInt8]]
    /// `forward_underscore_headers`, lower case (the `_` kept).
    private let forwardedUnderscoreNames: [[UInt8]]
    /// `forward_identity_family`: family names clients may still send, folded.
    private let allowedFamilyNames: [[UInt8]]

    public init(
        identityHeaders: IdentityHeaderNames, stripHeaders: [String], forwardCredentials: Bool, forwardClientAddress: Bool = true,
        forwardUnderscoreHeaders: [String] = [], forwardIdentityFamily: [String] = []
    ) {
        self.identityHeaders = identityHeaders
        self.forwardCredentials = forwardCredentials
        self.forwardClientAddress = forwardClientAddress
        self.strippedNames = (identityHeaders.all + stripHeaders).map(HeaderName.foldedBytes)
        self.forwardedUnderscoreNames = forwardUnderscoreHeaders.map { Array($0.asciiLowercased().utf8) }
        self.allowedFamilyNames = forwardIdentityFamily.map(HeaderName.foldedBytes)
    }

    /// Lowercase with `_` folded into `-`: the form two header names are compared in for stripping.
    public static func canonicalName(_ name: String) -> String {
        String(decoding: name.utf8.map(HeaderName.fold), as: UTF8.self)
    }

    /// Headers Gatehouse reads to decide or frame a request, or sets for the device (canonical
    /// form): no `forward_underscore_headers` entry may fold onto one, and `Connection` may not
    /// name the ones the device needs (``protectedFromConnection(_:)``).
    public static let readOrSet: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive",
        "proxy-connection", "http2-settings", "authorization", "x-api-key", "cookie", "origin", "sec-fetch-site",
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip", "x-csrf-token", "accept",
        "content-type", "sec-websocket-key", "sec-websocket-version", "access-control-request-method",
        "access-control-request-headers",
    ]

    /// Whether a client's header named `name` (as received) is dropped because its name holds `_`
    /// and `forward_underscore_headers` does not name it.
    public func dropsUnderscoreHeader(_ name: String) -> Bool { dropsUnderscoreHeader(bytes: name.utf8) }

    /// ``dropsUnderscoreHeader(_:)`` for the bytes of a name.
    public func dropsUnderscoreHeader<C: Collection<UInt8>>(bytes name: C) -> Bool {
        guard name.contains(UInt8(ascii: "_")) else { return false }
        return !forwardedUnderscoreNames.contains { allowed in
            allowed.count == name.count && zip(allowed, name).allSatisfy { $0 == (($1 >= 0x41 && $1 <= 0x5A) ? $1 | 0x20 : $1) }
        }
    }

    /// Whether the header (as received) is Gatehouse's to set: a configured identity header, one
    /// of the identity family (unless `forward_identity_family` lets it through), or a
    /// `strip_headers` entry.
    public func isIdentityOrStripped(name: String) -> Bool { isIdentityOrStripped(bytes: name.utf8) }

    /// ``isIdentityOrStripped(name:)`` for the bytes of a name.
    public func isIdentityOrStripped<C: Collection<UInt8>>(bytes name: C) -> Bool {
        if strippedNames.contains(where: { HeaderName.foldedEquals(bytes: name, folded: $0) }) { return true }
        return IdentityHeaderFamily.contains(bytes: name) && !allowedFamilyNames.contains { HeaderName.foldedEquals(bytes: name, folded: $0) }
    }

    /// ``isIdentityOrStripped(name:)`` for a name in canonical form.
    public func isIdentityOrStripped(canonical: String) -> Bool { isIdentityOrStripped(name: canonical) }

    /// A header the device needs from the client, or one Gatehouse sets, that a `Connection`
    /// header may not name (it would delete it on the way): `Host`, `Content-Length`,
    /// `Transfer-Encoding`, `X-Forwarded-*`, `Forwarded`, `X-Real-IP` and identity headers.
    public func protectedFromConnection<C: Collection<UInt8>>(bytes name: C) -> Bool {
        switch HeaderName.classify(utf8: name) {
        case .host, .contentLength, .transferEncoding, .forwarded, .xRealIP: return true
        default: break
        }
        return HeaderName.foldedHasPrefix(bytes: name, "x-forwarded-") || strippedNames.contains { HeaderName.foldedEquals(bytes: name, folded: $0) }
            || IdentityHeaderFamily.contains(bytes: name)
    }

    public func protectedFromConnection(_ name: String) -> Bool { protectedFromConnection(bytes: name.utf8) }

    /// The first header a `Connection` header names that it may not (``protectedFromConnection(_:)``), if any.
    public func connectionViolation(in head: RequestHead) -> String? {
        guard head.has(.connection) else { return nil }
        for value in head.values(.connection) {
            for token in value.split(separator: ",") {
                let trimmed = token.trimmingASCIIWhitespace()
                if protectedFromConnection(bytes: trimmed.utf8) { return String(trimmed.prefix(64)) }
            }
        }
        return nil
    }

    /// One header line of the head sent to the device.
    public enum ForwardedField {
        /// A field of the client's head, forwarded as it arrived.
        case received(RequestHead.Field)
        /// A field Gatehouse writes (or rewrote).
        case set(name: String, value: String)
        /// A field Gatehouse writes with the value of a field of the client's head.
        case setReceivedValue(name: StaticString, of: RequestHead.Field)
    }

    /// The header lines sent to the device, in order, handed to `emit` one by one (the server
    /// writes them straight into the head it sends; nothing is collected).
    ///
    /// - Parameters:
    ///   - scheme: how the client reached Gatehouse (`http`).
    ///   - peer: the socket peer's address (nil for a unix-socket client).
    ///   - peerText: `peer` as text, when the caller has it already (a connection computes it once).
    ///   - deviceCSRFToken: a CSRF pair for the device (OctoPrint's `csrf_token` cookie and
    ///     `X-CSRF-Token` header): the client's own are replaced by it.
    public func forEachField(
        of head: RequestHead, plan: ForwardPlan, isWebSocketUpgrade: Bool, scheme: String, peer: IPAddress?, peerText: String? = nil,
        deviceCSRFToken: String? = nil, _ emit: (ForwardedField) -> Void
    ) {
        // Headers a `Connection` header names are dropped too (hop-by-hop by the client's word).
        var named: [[UInt8]] = []
        if head.has(.connection) {
            for value in head.values(.connection) {
                for token in value.split(separator: ",") {
                    let folded = HeaderName.foldedBytes(token.trimmingASCIIWhitespace())
                    // `keep-alive` and `close` name no header that would pass anyway.
                    if folded != Array("keep-alive".utf8) && folded != Array("close".utf8) { named.append(folded) }
                }
            }
        }
        var forwardedFor: [String] = []
        var host: RequestHead.Field?
        var proto: String?
        var forwardedHost: String?
        var realIPSent = false
        var forwardedSent = false
        var deviceCookies: [String] = []
        let bytes = head.bytes
        for field in head.fields {
            let name = bytes[field.nameRange]
            if field.hasUnderscore, dropsUnderscoreHeader(bytes: name) { continue }
            let kind = field.kind
            if kind == .host { host = field }
            if kind == .other, isIdentityOrStripped(bytes: name) { continue }
            if kind.isHopByHop || kind == .contentLength { continue }
            if !named.isEmpty, named.contains(where: { HeaderName.foldedEquals(bytes: name, folded: $0) }) { continue }
            switch kind {
            case .xForwardedFor, .xForwardedProto, .xForwardedHost, .forwarded, .xRealIP:
                guard plan.peerIsTrustedProxy else { continue }
                if !forwardClientAddress && (kind == .xForwardedFor || kind == .forwarded || kind == .xRealIP) { continue }
                switch kind {
                case .xForwardedFor: forwardedFor.append(head.value(of: field))
                case .xForwardedProto: proto = proto ?? head.value(of: field)
                case .xForwardedHost: forwardedHost = forwardedHost ?? head.value(of: field)
                case .xRealIP: realIPSent = true
                default: forwardedSent = true
                }
                continue
            case .xAPIKey:
                if !forwardCredentials && plan.consumed.contains(.apiKeyHeader) { continue }
            case .authorization:
                if !forwardCredentials && (plan.consumed.contains(.authorizationBearer) || plan.consumed.contains(.authorizationToken)
                    || plan.consumed.contains(.authorizationBasic))
                {
                    continue
                }
            case .cookie:
                // Gatehouse's own cookie never reaches the device, whatever else is configured.
                guard let rest = SessionCookie.removing(from: head.value(of: field)) else { continue }
                if deviceCSRFToken != nil {
                    // Gathered into the one Cookie header written below (a WSGI device would join
                    // two with a comma, which no cookie parser splits on).
                    deviceCookies += rest.split(separator: ";").map { $0.trimmingASCIIWhitespace() }.filter { !$0.isEmpty && !$0.hasPrefix("csrf_token") }
                } else {
                    emit(.set(name: head.name(of: field), value: rest))
                }
                continue
            case .xCSRFToken:
                if deviceCSRFToken != nil { continue }
            default:
                break
            }
            emit(.received(field))
        }
        if let deviceCSRFToken {
            emit(.set(name: "Cookie", value: (deviceCookies + ["csrf_token=" + deviceCSRFToken]).joined(separator: "; ")))
            emit(.set(name: "X-CSRF-Token", value: deviceCSRFToken))
        }
        if isWebSocketUpgrade {
            emit(.set(name: "Upgrade", value: "websocket"))
            emit(.set(name: "Connection", value: "Upgrade"))
        }
        if let peer, forwardClientAddress {
            let client = peerText ?? peer.description
            emit(.set(name: "X-Forwarded-For", value: forwardedFor.isEmpty ? client : (forwardedFor + [client]).joined(separator: ", ")))
        } else if !forwardedFor.isEmpty {
            emit(.set(name: "X-Forwarded-For", value: forwardedFor.joined(separator: ", ")))
        }
        let clientProto = proto ?? scheme
        emit(.set(name: "X-Forwarded-Proto", value: clientProto))
        if let forwardedHost {
            emit(.set(name: "X-Forwarded-Host", value: forwardedHost))
        } else if let host {
            emit(.setReceivedValue(name: "X-Forwarded-Host", of: host))
        }
        // From a trusted proxy these said who the client is; they now say what Gatehouse derived.
        if let client = plan.clientAddress, forwardClientAddress {
            if realIPSent { emit(.set(name: "X-Real-IP", value: client.description)) }
            if forwardedSent {
                let node = !client.isIPv4 ? "\"[\(client.description)]\"" : client.description
                let protoToken = clientProto.utf8.allSatisfy(HTTPSyntax.isTokenByte) && !clientProto.isEmpty ? ";proto=" + clientProto : ""
                emit(.set(name: "Forwarded", value: "for=" + node + protoToken))
            }
        }
        if let identity = plan.identity {
            emit(.set(name: identityHeaders.user, value: identity.user))
            emit(.set(name: identityHeaders.roles, value: identity.roles.count == 1 ? identity.roles[0] : identity.roles.joined(separator: ",")))
            emit(.set(name: identityHeaders.method, value: identity.method.rawValue))
        }
    }

    /// ``forEachField(of:plan:isWebSocketUpgrade:scheme:peer:peerText:deviceCSRFToken:_:)`` as a
    /// list of strings (`gatehouse explain`, tests).
    public func headers(
        from head: RequestHead, plan: ForwardPlan, isWebSocketUpgrade: Bool,
        scheme: String, peer: IPAddress?, peerText: String? = nil, deviceCSRFToken: String? = nil
    ) -> [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        forEachField(
            of: head, plan: plan, isWebSocketUpgrade: isWebSocketUpgrade, scheme: scheme, peer: peer, peerText: peerText,
            deviceCSRFToken: deviceCSRFToken
        ) { field in
            switch field {
            case .received(let received): out.append((name: head.name(of: received), value: head.value(of: received)))
            case .set(let name, let value): out.append((name: name, value: value))
            case .setReceivedValue(let name, let received): out.append((name: name.description, value: head.value(of: received)))
            }
        }
        return out
    }

    /// The request target sent upstream: the `apikey` and `token` parameters removed when they
    /// were consumed.
    public func target(_ target: RequestTarget, plan: ForwardPlan) -> RequestTarget {
        guard !forwardCredentials else { return target }
        var query = target.query
        if plan.consumed.contains(.apiKeyQueryParameter) { query = query.removing(named: "apikey") }
        if plan.consumed.contains(.oneShotQueryParameter) { query = query.removing(named: "token") }
        if query == target.query { return target }
        return RequestTarget(path: target.path, query: query)
    }
}

extension IdentityHeaderNames {
    /// `identity_headers:` — three different header names.
    mutating func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) {
        let m = try reader.mapping(value, known: ["user", "roles", "method"])
        if let u = m["user"] { self.user = try reader.headerName(u) }
        if let r = m["roles"] { self.roles = try reader.headerName(r) }
        if let x = m["method"] { self.method = try reader.headerName(x) }
        let canonical = Set(self.all.map(UpstreamHeaderPolicy.canonicalName))
        guard canonical.count == 3 else { throw reader.fail(value, "the three identity headers must have different names") }
    }
}
