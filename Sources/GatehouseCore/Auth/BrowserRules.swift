import Foundation

/// The same-site rule for requests a browser sends with the session cookie (as OctoPrint's CSRF
/// protection does for its cookie sessions).
///
/// Guarantees: a request counts as same-site only when the browser said so — `Sec-Fetch-Site`
/// is `same-origin` or `none` (typed into the address bar) and any `Origin` beside it names this
/// very host, or, without `Sec-Fetch-Site`, `Origin` names this very host. Headers that
/// contradict each other (a foreign `Origin` with `Sec-Fetch-Site: none`) are cross-site. A request carrying neither header is *not* same-site: every browser
/// of the last years sends one of them on a state-changing request, so their absence means a
/// client Gatehouse cannot vouch for.
///
/// ``isCrossSite(_:peerIsTrustedProxy:)`` is the weaker test for HTTP Basic credentials,
/// which a browser also replays on its own but which non-browser clients (slicers, phone apps)
/// send without either header: only a request a browser marked as coming from elsewhere fails it.
public enum CrossSiteCheck {
    /// What the request's `Sec-Fetch-Site` / `Origin` say about where it came from.
    enum Verdict { case sameSite, crossSite, unstated }

    public static func isSameSite(_ head: RequestHead, peerIsTrustedProxy: Bool) -> Bool {
        verdict(head, peerIsTrustedProxy: peerIsTrustedProxy) == .sameSite
    }

    /// A browser said the request comes from another site (or sent contradicting headers).
    public static func isCrossSite(_ head: RequestHead, peerIsTrustedProxy: Bool) -> Bool {
        verdict(head, peerIsTrustedProxy: peerIsTrustedProxy) == .crossSite
    }

    static func verdict(_ head: RequestHead, peerIsTrustedProxy: Bool) -> Verdict {
        if head.count(.secFetchSite) > 1 || head.count(.origin) > 1 { return .crossSite }
        let fetchSite = head.value(.secFetchSite).map { $0.lowercased() }
        let origin = head.value(.origin).map { $0.lowercased() }
        let forwardedHost = peerIsTrustedProxy ? head.value(.xForwardedHost)?.lowercased() : nil
        let siteHost = forwardedHost ?? head.value(.host)?.lowercased()
        if let fetchSite {
            guard fetchSite == "same-origin" || fetchSite == "none" else { return .crossSite }
            // Headers that contradict each other are not a browser's: a foreign Origin beside a
            // same-origin Sec-Fetch-Site is cross-site. (`null` is what a browser sends for a
            // same-origin form under a no-referrer policy.)
            if let origin, origin != "null", !Self.origin(origin, names: siteHost) { return .crossSite }
            return .sameSite
        }
        guard let origin else { return .unstated }
        return Self.origin(origin, names: siteHost) ? .sameSite : .crossSite
    }

    /// Whether `origin` (lower case) is `http(s)://` and exactly `siteHost`.
    private static func origin(_ origin: String, names siteHost: String?) -> Bool {
        guard let siteHost, !siteHost.isEmpty else { return false }
        for scheme in ["https://", "http://"] where origin.hasPrefix(scheme) {
            return String(origin.dropFirst(scheme.count)) == siteHost
        }
        return false
    }
}

/// Where a browser goes when it needs to sign in, and where it may return to.
public enum LoginRedirect {
    public static let loginPath = "/_gatehouse/login"

    /// A browser navigation: GET or HEAD whose `Accept` lists `text/html` with a weight no lower
    /// than any other type's (browsers' page loads; `fetch()` sends `*/*` and gets 401).
    public static func isBrowserNavigation(method: String, _ head: RequestHead) -> Bool {
        guard method == "GET" || method == "HEAD", head.has(.accept) else { return false }
        var html: Double?
        var best = 0.0
        for value in head.values(.accept) {
            for item in value.split(separator: ",") {
                let parts = item.split(separator: ";").map { $0.trimmingASCIIWhitespace().lowercased() }
                guard let type = parts.first, !type.isEmpty else { continue }
                var q = 1.0
                for p in parts.dropFirst() where p.hasPrefix("q=") { q = Double(p.dropFirst(2)) ?? 0 }
                if type == "text/html" { html = max(html ?? 0, q) }
                best = max(best, q)
            }
        }
        guard let html, html > 0 else { return false }
        return html >= best
    }

    /// Whether a refusal is answered with a redirect to the sign-in page instead of itself: a
    /// 401 to a browser's page load, where a sign-in page is served (a store stands behind
    /// Gatehouse). Both `serve` and `gatehouse explain` decide it here.
    public static func redirects(_ failure: AuthenticationFailure, method: String, _ head: RequestHead, signInServed: Bool) -> Bool {
        failure.status == 401 && signInServed && isBrowserNavigation(method: method, head)
    }

    /// The login page's address for a browser that wanted `pathAndQuery`.
    public static func location(returningTo pathAndQuery: String) -> String {
        let next = safeReturnPath(pathAndQuery)
        if next == "/" { return loginPath }
        return loginPath + "?next=" + percentEncode(next)
    }

    /// `next` if it is a path on this site, else `/`. Refused: anything not starting with one
    /// `/` (`//evil.example`, `/\evil`, `https://…`, `javascript:`), any backslash or control or
    /// non-ASCII byte (browsers turn `\` into `/`), and Gatehouse's own sign-in pages.
    public static func safeReturnPath(_ next: String?) -> String {
        guard let next, next.utf8.count <= 2048, next.hasPrefix("/") else { return "/" }
        let bytes = Array(next.utf8)
        if bytes.count > 1 && (bytes[1] == UInt8(ascii: "/") || bytes[1] == UInt8(ascii: "\\")) { return "/" }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) else { return "/" }
        // An encoded slash or backslash right after the first one is decoded by some servers.
        let lowered = next.lowercased()
        if lowered.hasPrefix("/%2f") || lowered.hasPrefix("/%5c") { return "/" }
        if next == loginPath || next.hasPrefix(loginPath + "?") || next.hasPrefix("/_gatehouse/logout") { return "/" }
        return next
    }

    static func percentEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? "/"
    }
}
