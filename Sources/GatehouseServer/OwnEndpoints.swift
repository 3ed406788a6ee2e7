import Foundation
import GatehouseCore

/// A request to one of Gatehouse's own endpoints, with its whole (small) body.
struct OwnRequest: Sendable {
    let head: RequestHead
    /// The normalized target.
    let target: RequestTarget
    let body: [UInt8]
    let peer: IPAddress?
    /// The client reached Gatehouse's own TLS listener.
    var overTLS = false

    var method: String { head.method }

    /// The first value of a header Gatehouse reads (``HeaderName``).
    func header(_ name: HeaderName) -> String? { head.value(name) }
}

/// A response from one of Gatehouse's own endpoints.
struct OwnResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    static func json(_ status: Int, _ object: [String: any Sendable], headers: [(name: String, value: String)] = []) -> OwnResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return OwnResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(data) + [0x0A])
    }

    static func detail(_ status: Int, _ detail: String, headers: [(name: String, value: String)] = []) -> OwnResponse {
        json(status, ["detail": detail], headers: headers)
    }

    static func error(_ error: AccountError) -> OwnResponse { reply(ErrorReply(error)) }

    /// The JSON answer for any refusal (``ErrorReply`` decides its headers).
    static func reply(_ reply: ErrorReply) -> OwnResponse {
        detail(reply.status, reply.detail, headers: reply.headers.map { (name: $0.name, value: $0.value) })
    }

    static func html(_ status: Int, _ page: String, headers: [(name: String, value: String)] = []) -> OwnResponse {
        OwnResponse(
            status: status, headers: [("Content-Type", "text/html; charset=utf-8")] + LoginPage.securityHeaders + headers,
            body: Array(page.utf8))
    }

    static func redirect(_ location: String, headers: [(name: String, value: String)] = []) -> OwnResponse {
        OwnResponse(status: 303, headers: [("Location", location)] + LoginPage.securityHeaders + headers, body: [])
    }
}

/// Gatehouse's own pages and JSON API under `/_gatehouse/`: the sign-in page, logout, and the
/// API in Moonraker's shapes (`/_gatehouse/api/…`).
///
/// Guarantees: an endpoint that needs a caller authenticates it through the same ``RequestGate``
/// as proxied requests (so read-only and same-site rules hold here too); admin-only endpoints
/// need the `admin` role; every error is JSON `{"detail": …}` naming the field at fault, with
/// 400/401/403/404/405/409/429/503. Nothing here ever reaches the upstream.
struct OwnEndpoints: Sendable {
    let accounts: AccountService
    let gate: RequestGate
    /// Served at `/_gatehouse/metrics` to identities holding one of `metricsRoles`.
    var metrics: GatehouseMetrics? = nil
    var metricsRoles: [String] = ["admin"]
    /// Device endpoints answered here instead of by the device.
    var devicePaths = DevicePaths(moonrakerOneshot: false, octoPrintAppKeys: false)
    /// Pending OctoPrint app-key requests (shared by every settings of one server).
    var appKeys: (any AppKeyRequestBook)? = nil
    /// Largest body accepted by an own endpoint.
    static let maxBodyBytes = 64 * 1024
    /// Origins named in `cors.allowed_origins` may call the JSON API from their pages (never to
    /// get a cookie).
    var cors = CORSPolicy()

    /// The answer to one request under `/_gatehouse/`; over HTTPS (directly or per a trusted
    /// proxy) it carries `Strict-Transport-Security`.
    func respond(_ request: OwnRequest, now: Date) async -> OwnResponse {
        var response = await route(request, now: now)
        if isSecure(request) { response.headers.append(("Strict-Transport-Security", "max-age=31536000")) }
        return response
    }

    private func route(_ request: OwnRequest, now: Date) async -> OwnResponse {
        let path = request.target.path
        if let refusal = refusedAsForeign(request) { return refusal }
        if devicePaths.claims(path) { return await deviceEndpoint(request, now: now) }
        switch (path, request.method) {
        case ("/_gatehouse/login", "GET"), ("/_gatehouse/login", "HEAD"):
            let next = LoginRedirect.safeReturnPath(request.target.query.values(named: "next").first)
            return .html(200, LoginPage.render(next: next, message: nil))
        case ("/_gatehouse/login", "POST"): return await formLogin(request, now: now)
        case ("/_gatehouse/logout", "POST"): return await formLogout(request)
        case ("/_gatehouse/login", _), ("/_gatehouse/logout", _): return .detail(405, "Method not allowed here.")
        case ("/_gatehouse/metrics", "GET"):
            do {
                return try await metricsText(request, now: now)
            } catch {
                return .error(error)
            }
        case ("/_gatehouse/metrics", _): return .detail(405, "Use GET.")
        case (Self.appKeysPendingPage, "GET"): return await appKeysPendingList(request, now: now)
        default: break
        }
        guard path.hasBytePrefix("/_gatehouse/api/") else { return .detail(404, "No such Gatehouse endpoint.") }
        let route = String(path.dropFirst("/_gatehouse/api/".count))
        do {
            return try await api(route, request, now: now)
        } catch {
            return .error(error)
        }
    }

    /// ``OwnEndpointGuard``: refused as from another site, or not JSON.
    private func refusedAsForeign(_ request: OwnRequest) -> OwnResponse? {
        guard let refusal = OwnEndpointGuard.refusal(
            method: request.method, path: request.target.path, head: request.head, hasBody: !request.body.isEmpty,
            peerIsTrustedProxy: gate.clientAddresses.isTrustedProxy(request.peer), cors: cors)
        else { return nil }
        if refusal.asPage { return .html(refusal.status, LoginPage.render(next: "/", message: refusal.detail)) }
        return .detail(refusal.status, refusal.detail)
    }

    /// Prometheus text for a caller holding one of ``metricsRoles`` (by credential or trusted network).
    private func metricsText(_ request: OwnRequest, now: Date) async throws(AccountError) -> OwnResponse {
        let identity = try await caller(request, now: now)
        guard identity.roles.contains(where: metricsRoles.contains) else {
            throw .forbidden("Metrics need one of the roles: \(metricsRoles.joined(separator: ", ")).")
        }
        guard let metrics else { throw .notFound("No metrics here.") }
        return OwnResponse(
            status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
            body: await metrics.render(lockoutsStarted: accounts.throttle.lockoutsStarted))
    }

    // MARK: Browser sign-in

    private func clientAddress(_ request: OwnRequest) -> IPAddress? {
        gate.clientAddresses.clientAddress(peer: request.peer, head: request.head)
    }

    /// Whether the client reached Gatehouse over HTTPS: Gatehouse's own TLS listener, or a
    /// trusted proxy in front of it saying so.
    func isSecure(_ request: OwnRequest) -> Bool {
        if request.overTLS { return true }
        guard gate.clientAddresses.isTrustedProxy(request.peer) else { return false }
        return request.header(.xForwardedProto)?.trimmingCharacters(in: .whitespaces).lowercased() == "https"
    }

    private func formLogin(_ request: OwnRequest, now: Date) async -> OwnResponse {
        guard let form = FormBody.parse(request.body) else {
            return .html(400, LoginPage.render(next: "/", message: "The form could not be read."))
        }
        let next = LoginRedirect.safeReturnPath(form["next"])
        guard CrossSiteCheck.isSameSite(request.head, peerIsTrustedProxy: gate.clientAddresses.isTrustedProxy(request.peer)) else {
            return .html(403, LoginPage.render(next: next, message: "Sign-in from another site is not accepted."))
        }
        let username = form["username"] ?? ""
        let password = form["password"] ?? ""
        let remember = form["remember"] != nil
        let client = clientAddress(request)
        do {
            let user = try await accounts.checkPassword(username: username, password: password, client: client, via: "login_page", now: now)
            let session = try await accounts.openSession(for: user, remember: remember, client: client, now: now)
            let cookie = SessionCookie.setting(
                session.secret, maxAge: remember ? session.record.expires.timeIntervalSince(now) : nil, secure: isSecure(request))
            return .redirect(next, headers: [("Set-Cookie", cookie)])
        } catch {
            let reply = ErrorReply(error)
            return .html(reply.status, LoginPage.render(next: next, message: reply.detail), headers: reply.headers.map { (name: $0.name, value: $0.value) })
        }
    }

    private func formLogout(_ request: OwnRequest) async -> OwnResponse {
        // The cookie is a browser's: only a request the browser says comes from this site ends it.
        guard CrossSiteCheck.isSameSite(request.head, peerIsTrustedProxy: gate.clientAddresses.isTrustedProxy(request.peer)) else {
            return .html(403, LoginPage.render(next: "/", message: "Sign-out from another site is not accepted."))
        }
        for secret in SessionCookie.values(in: request.head) where !secret.isEmpty {
            do { try await accounts.closeSession(secret: secret, client: clientAddress(request)) } catch { return .error(error) }
        }
        return .redirect(LoginRedirect.loginPath, headers: [("Set-Cookie", SessionCookie.clearing(secure: isSecure(request)))])
    }

    // MARK: JSON API

    func caller(_ request: OwnRequest, now: Date) async throws(AccountError) -> Identity {
        let facts = RequestFacts(head: request.head, target: request.target, peer: request.peer)
        switch await gate.decideFully(facts, accounts: accounts, now: now) {
        case .forward(let plan):
            guard let identity = plan.identity else { throw .unauthenticated(.missingCredential) }
            return identity
        case .refuse(let failure):
            if failure.status == 403 { throw .forbidden(failure.detail) }
            if failure == .storeUnavailable { throw .unavailable }
            throw .unauthenticated(failure)
        case .lookUp:
            throw .unavailable
        }
    }

    private func admin(_ request: OwnRequest, now: Date) async throws(AccountError) -> Identity {
        let identity = try await caller(request, now: now)
        guard identity.roles.contains("admin") else { throw .forbidden("This needs the admin role.") }
        return identity
    }

    private func api(_ route: String, _ request: OwnRequest, now: Date) async throws(AccountError) -> OwnResponse {
        switch (route, request.method) {
        case ("login", "POST"): return try await login(request, now: now)
        case ("logout", "POST"): return try await logout(request, now: now)
        case ("refresh_jwt", "POST"): return try await refresh(request, now: now)
        case ("info", "GET"): return await info(request, now: now)
        case ("tokens/provision", "POST"): return try await provision(request, now: now)
        case ("user", "GET"):
            let identity = try await caller(request, now: now)
            let user = try await accounts.user(named: identity.user)
            return .json(200, userJSON(identity: identity, user: user))
        case ("user", "POST"):
            let admin = try await admin(request, now: now)
            let body = try JSONFields(request.body)
            let roles = try body.strings("roles") ?? []
            try IssuingPolicy.boundNewUser(roles: roles, by: admin)
            let user = try await accounts.createUser(
                username: try body.string("username"), password: try body.string("password"),
                roles: roles, actor: admin.user, now: now)
            return .json(201, ["username": user.username, "roles": user.roles, "action": "user_created"])
        case ("user", "DELETE"):
            let identity = try await admin(request, now: now)
            let body = try JSONFields(request.body, query: request.target.query)
            let username = try body.string("username")
            guard username != identity.user else { throw .conflict("You cannot delete your own user.") }
            try await accounts.deleteUser(named: username, actor: identity.user, now: now)
            return .json(200, ["username": username, "action": "user_deleted"])
        case ("users/list", "GET"):
            _ = try await admin(request, now: now)
            let users = try await accounts.users()
            return .json(200, ["users": users.map { ["username": $0.username, "roles": $0.roles, "created": $0.created.timeIntervalSince1970, "disabled": $0.disabled] as [String: any Sendable] }])
        case ("user/password", "POST"):
            let identity = try await caller(request, now: now)
            guard identity.method == .session || identity.method == .jwt else {
                throw .forbidden("Change a password while signed in as that user (session or token).")
            }
            let body = try JSONFields(request.body)
            try await accounts.changePassword(
                username: identity.user, current: try body.string("password"), new: try body.string("new_password"),
                client: clientAddress(request), now: now)
            return .json(200, ["username": identity.user, "action": "user_password_reset"])
        case ("oneshot_token", "GET"):
            let identity = try await caller(request, now: now)
            let token = try await accounts.oneShotToken(for: identity, now: now)
            return .json(200, ["token": token, "expires_in": Int(accounts.credentials.oneShotTokens.lifetime)])
        case ("keys", "GET"):
            let identity = try await caller(request, now: now)
            let all = identity.roles.contains("admin") && request.target.query.values(named: "all").first == "true"
            let keys = try await accounts.keys(ofUser: all ? nil : identity.user)
            return .json(200, ["keys": keys.map(keyJSON)])
        case ("keys", "POST"):
            let identity = try await caller(request, now: now)
            let body = try JSONFields(request.body)
            let asked = CredentialGrant(roles: try body.strings("roles"), readOnly: try body.bool("read_only") ?? false, expires: try body.date("expires"))
            let grant = try IssuingPolicy.bound(asked, by: identity, now: now)
            let created = try await accounts.createKey(
                owner: identity.user, name: try body.optionalString("name"), roles: grant.roles,
                readOnly: grant.readOnly, expires: grant.expires,
                description: try body.optionalString("description") ?? "", actor: identity.user, now: now)
            var json = keyJSON(created.record)
            json["key"] = created.key
            return .json(201, json)
        case ("keys", "DELETE"):
            let identity = try await caller(request, now: now)
            let body = try JSONFields(request.body, query: request.target.query)
            let name = try body.string("name")
            try await accounts.revokeKey(named: name, by: identity, now: now)
            return .json(200, ["name": name, "action": "key_revoked"])
        default:
            let known = ["login", "logout", "refresh_jwt", "info", "tokens/provision", "user", "users/list", "user/password", "oneshot_token", "keys"]
            if known.contains(route) { return .detail(405, "Method \(request.method) is not allowed on /_gatehouse/api/\(route).") }
            return .detail(404, "No such Gatehouse endpoint.")
        }
    }

    private func login(_ request: OwnRequest, now: Date) async throws(AccountError) -> OwnResponse {
        let body = try JSONFields(request.body)
        let username = try body.string("username")
        let password = try body.string("password")
        let wantsSession = try body.bool("session") ?? false
        let remember = try body.bool("remember") ?? false
        let client = clientAddress(request)
        // A cookie is set only for this site's own pages (login CSRF: another site's page would
        // sign the victim's browser in to the attacker's account).
        if wantsSession && CrossSiteCheck.isCrossSite(request.head, peerIsTrustedProxy: gate.clientAddresses.isTrustedProxy(request.peer)) {
            throw .forbidden("session: a session cookie is not set for another site's request.")
        }
        let user = try await accounts.checkPassword(username: username, password: password, client: client, now: now)
        let pair = try await accounts.issueTokens(for: user, now: now)
        var headers: [(name: String, value: String)] = []
        if wantsSession {
            let session = try await accounts.openSession(for: user, remember: remember, client: client, now: now)
            headers.append(("Set-Cookie", SessionCookie.setting(
                session.secret, maxAge: remember ? session.record.expires.timeIntervalSince(now) : nil, secure: isSecure(request))))
        }
        return .json(200, ["username": user.username, "token": pair.access, "refresh_token": pair.refresh, "action": "user_logged_in"], headers: headers)
    }

    private func logout(_ request: OwnRequest, now: Date) async throws(AccountError) -> OwnResponse {
        let identity = try await caller(request, now: now)
        var headers: [(name: String, value: String)] = []
        switch identity.method {
        case .session:
            for secret in SessionCookie.values(in: request.head) where !secret.isEmpty {
                try await accounts.closeSession(secret: secret, client: clientAddress(request), now: now)
            }
            headers.append(("Set-Cookie", SessionCookie.clearing(secure: isSecure(request))))
        case .jwt:
            if let bearer = request.header(.authorization)?.split(separator: " ", maxSplits: 1).last {
                try await accounts.revokeTokenFamily(String(bearer), now: now)
            }
        default:
            break
        }
        return .json(200, ["username": identity.user, "action": "user_logged_out"], headers: headers)
    }

    private func refresh(_ request: OwnRequest, now: Date) async throws(AccountError) -> OwnResponse {
        let body = try JSONFields(request.body)
        let (user, pair) = try await accounts.refresh(try body.string("refresh_token"), now: now)
        return .json(200, ["username": user.username, "token": pair.access, "refresh_token": pair.refresh, "action": "user_jwt_refresh"])
    }

    private func provision(_ request: OwnRequest, now: Date) async throws(AccountError) -> OwnResponse {
        let body = try JSONFields(request.body)
        let created = try await accounts.provision(
            username: try body.string("username"), password: try body.string("password"), expires: try body.date("expires"),
            writeEnabled: try body.bool("write_enabled") ?? true, description: try body.optionalString("description") ?? "",
            client: clientAddress(request), now: now)
        var json = keyJSON(created.record)
        json["key"] = created.key
        json["write_enabled"] = !created.record.readOnly
        return .json(201, json)
    }

    private func info(_ request: OwnRequest, now: Date) async -> OwnResponse {
        let client = clientAddress(request)
        let trusted = gate.trustedNetworks.authenticate(client: client) != nil
        var json: [String: any Sendable] = [
            "auth_methods": ["api_key", "jwt", "session", "oneshot_token", "trusted_network"],
            "trusted": trusted, "login_required": !trusted, "login_url": LoginRedirect.loginPath,
        ]
        if let identity = try? await caller(request, now: now) { json["user"] = identity.user }
        return .json(200, json)
    }

    private func userJSON(identity: Identity, user: UserRecord?) -> [String: any Sendable] {
        var json: [String: any Sendable] = ["username": identity.user, "roles": identity.roles, "source": identity.method.rawValue]
        if let user { json["created"] = user.created.timeIntervalSince1970 }
        return json
    }

    private func keyJSON(_ key: StoredAPIKey) -> [String: any Sendable] {
        var json: [String: any Sendable] = [
            "name": key.name, "user": key.username, "read_only": key.readOnly, "description": key.description,
            "created": key.created.timeIntervalSince1970,
        ]
        json["roles"] = key.roles.map { $0 as any Sendable } ?? NSNull()
        json["expires"] = key.expires.map { $0.timeIntervalSince1970 as any Sendable } ?? NSNull()
        json["last_used"] = key.lastUsed.map { $0.timeIntervalSince1970 as any Sendable } ?? NSNull()
        return json
    }
}

/// The fields of a JSON object body (and, for DELETE, the query string), read with errors that
/// name the field.
struct JSONFields {
    private let object: [String: Any]

    init(_ body: [UInt8], query: QueryString? = nil) throws(AccountError) {
        var object: [String: Any] = [:]
        if let query {
            for name in ["username", "name"] { if let v = query.values(named: name).first { object[name] = v } }
        }
        if !body.isEmpty {
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(body)), let dict = parsed as? [String: Any] else {
                throw .badRequest("The body must be a JSON object.")
            }
            object.merge(dict) { _, new in new }
        } else if query == nil {
            throw .badRequest("The body must be a JSON object.")
        }
        self.object = object
    }

    func optionalString(_ name: String) throws(AccountError) -> String? {
        guard let value = object[name], !(value is NSNull) else { return nil }
        guard let text = value as? String else { throw .badRequest("\(name): expected a string") }
        return text
    }

    func string(_ name: String) throws(AccountError) -> String {
        guard let text = try optionalString(name) else { throw .badRequest("\(name): required") }
        return text
    }

    func bool(_ name: String) throws(AccountError) -> Bool? {
        guard let value = object[name], !(value is NSNull) else { return nil }
        guard let flag = value as? Bool else { throw .badRequest("\(name): expected true or false") }
        return flag
    }

    func strings(_ name: String) throws(AccountError) -> [String]? {
        guard let value = object[name], !(value is NSNull) else { return nil }
        guard let list = value as? [String] else { throw .badRequest("\(name): expected a list of strings") }
        return list
    }

    /// An ISO 8601 date (`2027-01-31T00:00:00Z`); nil when absent or null (never expires).
    func date(_ name: String) throws(AccountError) -> Date? {
        guard let text = try optionalString(name) else { return nil }
        guard let date = InternetDate.parse(text) else { throw .badRequest("\(name): expected a date like 2027-01-31T00:00:00Z") }
        return date
    }
}
