import Foundation
import GatehouseCore

/// OctoPrint's application-key pairing (`/plugin/appkeys/...`, as OctoPrint 1.11 answers it),
/// answered by Gatehouse with a Gatehouse API key — so Cura, OctoApp, OctoDash and Home
/// Assistant pair through Gatehouse unchanged and get a key Gatehouse accepts.
///
/// Guarantees: `probe`, `request` and polling need no credential (an app has none yet) but are
/// bounded by ``AppKeyPairing``; deciding needs a user signed in to Gatehouse with a browser
/// session — not a trusted network, not a key — and a same-site request (the session cookie's
/// rule); the approval page shows the app's name only HTML-escaped; the key is created when the
/// app collects it, owned by the user who allowed it, with that user's roles, and audited as
/// `key_created`.
extension OwnEndpoints {
    static let appKeysPendingPage = "/_gatehouse/appkeys"

    func appKeysEndpoint(_ request: OwnRequest, now: Date) async -> OwnResponse {
        guard let pairing = appKeys else { return Self.appKeysError(404, "Not found") }
        let rest = String(request.target.path.dropFirst(DevicePaths.appKeysPrefix.count))
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        switch (parts.first ?? "", parts.count, request.method) {
        case ("probe", 1, "GET"):
            return OwnResponse(status: 204, headers: [], body: [])
        case ("request", 1, "POST"):
            return await requestKey(request, pairing: pairing, now: now)
        case ("request", 2, "GET"):
            return await collect(appToken: parts[1], pairing: pairing, now: now)
        case ("auth", 2, "GET"):
            return await approvalPage(decisionToken: parts[1], request, pairing: pairing, now: now)
        case ("decision", 2, "POST"):
            return await decide(decisionToken: parts[1], request, pairing: pairing, now: now)
        case ("probe", 1, _), ("request", 1, _), ("request", 2, _), ("auth", 2, _), ("decision", 2, _):
            return Self.appKeysError(405, "Method not allowed")
        default:
            return Self.appKeysError(404, "Not found")
        }
    }

    /// `POST /plugin/appkeys/request {"app", "user"?}` → 201 with the app token, the approval
    /// page's address and `Location` to poll.
    private func requestKey(_ request: OwnRequest, pairing: any AppKeyRequestBook, now: Date) async -> OwnResponse {
        guard let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any] else {
            return Self.appKeysError(400, "The body must be a JSON object with \"app\"")
        }
        guard let app = object["app"] as? String, !app.isEmpty, app.utf8.count <= 200,
            !app.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            return Self.appKeysError(400, "\"app\" must be a name of at most 200 bytes")
        }
        var user: String?
        if let named = object["user"], !(named is NSNull) {
            guard let text = named as? String else { return Self.appKeysError(400, "\"user\" must be a string") }
            if !text.isEmpty {
                // A name Gatehouse could never match is refused, not kept as a prompt nobody can answer.
                guard Identity.isValidName(text) else { return Self.appKeysError(400, "\"user\" is not a valid user name") }
                user = text
            }
        }
        let tokens: (appToken: String, decisionToken: String)
        do {
            tokens = try await pairing.request(app: app, user: user, client: gate.clientAddresses.clientAddress(peer: request.peer, head: request.head), now: now)
        } catch .unavailable {
            return Self.appKeysUnavailable
        } catch {
            return Self.appKeysError(429, "You have made too many app key requests. Please try again later.")
        }
        let base = baseURL(request)
        let poll = "\(DevicePaths.appKeysPrefix)/request/\(tokens.appToken)"
        return .json(
            201, ["app_token": tokens.appToken, "auth_dialog": "\(base)\(DevicePaths.appKeysPrefix)/auth/\(tokens.decisionToken)"],
            headers: [("Location", base + poll)])
    }

    /// `GET /plugin/appkeys/request/<app_token>`: 202 while pending, 200 with the key once, 404 after.
    private func collect(appToken: String, pairing: any AppKeyRequestBook, now: Date) async -> OwnResponse {
        let answer: AppKeyPairing.PollResult
        do { answer = try await pairing.poll(appToken: appToken, now: now) } catch { return Self.appKeysUnavailable }
        switch answer {
        case .pending:
            return .json(202, ["message": "Awaiting decision"])
        case .gone:
            return Self.appKeysError(404, "No such request")
        case .approved(let user, let app, let grant):
            do {
                let created = try await accounts.createKey(
                    owner: user, name: Self.keyName(for: app), roles: grant.roles, readOnly: grant.readOnly, expires: grant.expires,
                    description: String("app key for \(app)".utf8.prefix(200)) ?? "app key", actor: user, now: now)
                return .json(200, ["api_key": created.key])
            } catch {
                return .error(error)
            }
        }
    }

    /// The page where a signed-in user allows or denies one request.
    private func approvalPage(decisionToken: String, _ request: OwnRequest, pairing: any AppKeyRequestBook, now: Date) async -> OwnResponse {
        let user: Identity
        switch await browserUser(request, now: now) {
        case .success(let identity): user = identity
        case .failure(let box): return box.response
        }
        let found: AppKeyPairing.Pending?
        do { found = try await pairing.pending(decisionToken: decisionToken, for: user.user, now: now) } catch { return Self.appKeysUnavailablePage }
        guard let pending = found else {
            return .html(404, AppKeyPage.render(title: "No such request", body: "This request has expired, was decided already, or is for another user."))
        }
        return .html(200, AppKeyPage.approval(pending, user: user.user))
    }

    /// `POST /plugin/appkeys/decision/<token>` from the approval page (form `decision=allow|deny`)
    /// or OctoPrint's own UI (JSON `{"decision": true|false}`).
    private func decide(decisionToken: String, _ request: OwnRequest, pairing: any AppKeyRequestBook, now: Date) async -> OwnResponse {
        let user: Identity
        switch await browserUser(request, now: now) {
        case .success(let identity): user = identity
        case .failure(let box): return box.response
        }
        let isJSON = request.header(.contentType)?.lowercased().hasPrefix("application/json") ?? false
        let allow: Bool
        if isJSON {
            guard let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any], let decision = object["decision"] else {
                return Self.appKeysError(400, "Need a decision")
            }
            allow = (decision as? Bool) == true
        } else {
            guard let decision = FormBody.parse(request.body)?["decision"] else {
                return .html(400, AppKeyPage.render(title: "Not decided", body: "The form could not be read."))
            }
            allow = decision == "allow"
        }
        // What the app's key may be: no more than the session that allows it (IssuingPolicy).
        let grant: CredentialGrant
        do {
            grant = try IssuingPolicy.bound(CredentialGrant(), by: user, now: now)
        } catch {
            return isJSON ? Self.appKeysError(403, error.detail) : .html(403, AppKeyPage.render(title: "Not allowed", body: error.detail))
        }
        let decided: Bool
        do {
            decided = try await pairing.decide(decisionToken: decisionToken, allow: allow, by: user.user, grant: grant, now: now)
        } catch {
            return isJSON ? Self.appKeysUnavailable : Self.appKeysUnavailablePage
        }
        guard decided else {
            return isJSON ? Self.appKeysError(404, "No such request")
                : .html(404, AppKeyPage.render(title: "No such request", body: "This request has expired, was decided already, or is for another user."))
        }
        if isJSON { return OwnResponse(status: 204, headers: [], body: []) }
        return .html(200, AppKeyPage.render(
            title: allow ? "Access granted" : "Access denied",
            body: allow ? "The app receives a key for \(user.user) when it next asks; you can revoke it with gatehouse key revoke." : "The app gets no key."))
    }

    /// `GET /_gatehouse/appkeys`: the requests the signed-in user may decide (for apps that do
    /// not open the approval page themselves).
    func appKeysPendingList(_ request: OwnRequest, now: Date) async -> OwnResponse {
        guard let pairing = appKeys, devicePaths.octoPrintAppKeys else { return .detail(404, "App-key pairing is off (octoprint_appkeys).") }
        switch await browserUser(request, now: now) {
        case .success(let user):
            do { return .html(200, AppKeyPage.list(try await pairing.pending(for: user.user, now: now))) } catch { return Self.appKeysUnavailablePage }
        case .failure(let box): return box.response
        }
    }

    /// The caller, if signed in with a browser session; otherwise the sign-in page (coming back
    /// here) or a refusal.
    private func browserUser(_ request: OwnRequest, now: Date) async -> Result<Identity, OwnResponseBox> {
        do {
            let identity = try await caller(request, now: now)
            guard identity.method == .session else {
                return .failure(OwnResponseBox(.html(403, AppKeyPage.render(title: "Sign in with a browser", body: "App keys are allowed or denied by a user signed in on the Gatehouse sign-in page."))))
            }
            return .success(identity)
        } catch {
            let response = OwnResponse.error(error)
            guard response.status == 401, request.method == "GET" else { return .failure(OwnResponseBox(response)) }
            return .failure(OwnResponseBox(.redirect(LoginRedirect.location(returningTo: request.target.path))))
        }
    }

    /// `http(s)://host` as the client addressed Gatehouse, for the addresses handed to the app;
    /// empty (relative addresses) when the `Host` is not a plain host name.
    private func baseURL(_ request: OwnRequest) -> String {
        guard let host = request.header(.host), HTTPSRedirectHandler.hostName(host) != nil else { return "" }
        return (isSecure(request) ? "https://" : "http://") + host
    }

    /// `app-<name>-<random>`: unique, and a valid key name whatever the app calls itself.
    static func keyName(for app: String) -> String {
        let cleaned = String(app.unicodeScalars.map { Identity.isValidName(String($0)) ? Character($0) : "-" }.prefix(40))
        return "app-\(cleaned)-\(RandomSecret.make().prefix(6).map { $0.isLetter || $0.isNumber ? $0 : "x" }.map(String.init).joined())"
    }

    /// The answer while the shared store holding the requests cannot be reached.
    static let appKeysUnavailable = appKeysError(503, "The store holding app key requests cannot be reached; try again shortly.")
    static let appKeysUnavailablePage = OwnResponse.html(
        503, AppKeyPage.render(title: "Try again shortly", body: "The store holding app key requests cannot be reached."))

    /// OctoPrint's error body: `{"error": "…"}`.
    static func appKeysError(_ status: Int, _ message: String) -> OwnResponse {
        .json(status, ["error": message])
    }
}

/// Lets an `OwnResponse` travel as a `Result` failure.
struct OwnResponseBox: Error {
    let response: OwnResponse
    init(_ response: OwnResponse) { self.response = response }
}

/// The approval pages: plain HTML, no script, every value escaped.
enum AppKeyPage {
    static func approval(_ pending: AppKeyPairing.Pending, user: String) -> String {
        let from = pending.client.map { " from \(LoginPage.escape($0.description))" } ?? ""
        return render(
            title: "Allow an app?",
            body: "",
            html: """
                <p>An app calling itself <strong>\(LoginPage.escape(pending.app))</strong>\(from) asks for a key to act as <strong>\(LoginPage.escape(user))</strong>, with your roles.</p>
                <p>Allow it only if you started this pairing yourself.</p>
                <form method="post" action="\(DevicePaths.appKeysPrefix)/decision/\(LoginPage.escape(pending.decisionToken))">
                <button type="submit" name="decision" value="allow">Allow</button>
                <button type="submit" name="decision" value="deny">Deny</button>
                </form>
                """)
    }

    static func list(_ pending: [AppKeyPairing.Pending]) -> String {
        guard !pending.isEmpty else { return render(title: "App requests", body: "No app is waiting for a key.") }
        let items = pending.map { p in
            "<li><a href=\"\(DevicePaths.appKeysPrefix)/auth/\(LoginPage.escape(p.decisionToken))\">\(LoginPage.escape(p.app))</a>\(p.client.map { " from " + LoginPage.escape($0.description) } ?? "")</li>"
        }.joined(separator: "\n")
        return render(title: "App requests", body: "", html: "<ul>\n\(items)\n</ul>")
    }

    static func render(title: String, body: String, html: String = "") -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(LoginPage.escape(title)) · Gatehouse</title>
        <style>
        body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}
        button{margin:1.2rem .6rem 0 0;padding:.6rem 1.2rem;font-size:1rem}
        </style></head><body>
        <h1>\(LoginPage.escape(title))</h1>
        \(body.isEmpty ? "" : "<p>\(LoginPage.escape(body))</p>")
        \(html)
        </body></html>

        """
    }
}
