import Foundation

/// How long browser sign-ins last (`sessions:` in the config).
public struct SessionPolicy: Sendable, Hashable {
    /// A session unused for this long has ended (`idle_timeout`, default 1d).
    public var idleTimeout: ConfigDuration = .seconds(86400)
    /// The absolute end of a session opened with "remember me" (`lifetime`, default 7d); its
    /// cookie is persistent and lasts as long.
    public var rememberLifetime: ConfigDuration = .seconds(7 * 86400)
    /// The absolute end of one opened without it (`short_lifetime`, default 12h); its cookie
    /// ends with the browser.
    public var shortLifetime: ConfigDuration = .seconds(12 * 3600)
    /// `last_seen` is written at most this often per session: idle expiry is accurate to it,
    /// and a busy browser does not turn every request into a write.
    public var touchInterval: TimeInterval = 60

    public init() {}

    public func lifetime(remember: Bool) -> TimeInterval {
        TimeInterval(remember ? rememberLifetime.seconds : shortLifetime.seconds)
    }

    /// Whether `session` is still alive at `now`.
    public func isAlive(_ session: SessionRecord, now: Date) -> Bool {
        now < session.expires && now.timeIntervalSince(session.lastSeen) < TimeInterval(idleTimeout.seconds)
    }

    /// Whether a request at `now` should record itself as the session's last use.
    public func needsTouch(_ session: SessionRecord, now: Date) -> Bool {
        now.timeIntervalSince(session.lastSeen) >= touchInterval
    }
}

/// The `gatehouse_session` cookie: reading it from requests, writing it into responses.
///
/// Guarantees: the value is a fresh 256-bit random secret at every sign-in (a cookie set before
/// sign-in is never promoted: no fixation); the cookie is `HttpOnly; SameSite=Lax; Path=/`, and
/// `Secure` whenever the client reached Gatehouse over HTTPS.
public enum SessionCookie {
    public static let name = "gatehouse_session"

    /// Every `gatehouse_session` value in the request's `Cookie` headers.
    public static func values(in headers: [(name: String, value: String)]) -> [String] {
        headers.filter { $0.name.equalsCaseInsensitive("cookie") }
            .flatMap { $0.value.split(separator: ";") }
            .compactMap(ownValue)
    }

    /// The value when `pair` (one `name=value` of a `Cookie` header) is Gatehouse's cookie.
    private static func ownValue(_ pair: Substring) -> String? {
        let trimmed = pair.trimmingASCIIWhitespace()
        guard let eq = trimmed.firstIndex(of: "="), trimmed[..<eq].trimmingASCIIWhitespace() == name else { return nil }
        return String(trimmed[trimmed.index(after: eq)...]).trimmingASCIIWhitespace()
    }

    /// A `Cookie` header value without Gatehouse's cookie; nil when nothing else is left.
    public static func removing(from cookieHeader: String) -> String? {
        let kept = cookieHeader.split(separator: ";").filter { ownValue($0) == nil }
            .map { $0.trimmingASCIIWhitespace() }.filter { !$0.isEmpty }
        return kept.isEmpty ? nil : kept.joined(separator: "; ")
    }

    /// The `Set-Cookie` value that starts a session.
    public static func setting(_ secret: String, maxAge: TimeInterval?, secure: Bool) -> String {
        var value = "\(name)=\(secret); Path=/; HttpOnly; SameSite=Lax"
        if let maxAge { value += "; Max-Age=\(Int(maxAge))" }
        if secure { value += "; Secure" }
        return value
    }

    /// The `Set-Cookie` value that removes it from the browser.
    public static func clearing(secure: Bool) -> String {
        "\(name)=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0" + (secure ? "; Secure" : "")
    }
}

/// Fresh high-entropy secrets: session ids, one-shot tokens, token ids.
public enum RandomSecret {
    /// 256 bits from the system's secure generator, base64url without padding (43 characters).
    public static func make() -> String { APIKeyGenerator.generate() }
}
