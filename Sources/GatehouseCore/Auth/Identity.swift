import Foundation

/// How a request's identity was established; its ``rawValue`` is what the device sees in the
/// method identity header (`X-Remote-Auth` by default).
public enum AuthenticationMethod: String, Sendable, Hashable, CaseIterable {
    case apiKey = "api_key"
    case trustedNetwork = "trusted_network"
    /// The `gatehouse_session` cookie of a browser sign-in.
    case session = "session"
    /// A JSON Web Token Gatehouse issued (`Authorization: Bearer`).
    case jwt = "jwt"
    /// A single-use token in `?token=`.
    case oneShotToken = "oneshot_token"
    /// A user name and password in `Authorization: Basic` (`basic_auth: true`).
    case password = "basic"
}

/// Who a request was attributed to.
///
/// Guarantees: ``user`` and every role match ``Identity/isValidName(_:)`` (checked when the
/// config is loaded), so they can be written into a header without escaping and a role can never
/// smuggle a comma into the comma-separated roles header.
public struct Identity: Sendable, Hashable {
    public let user: String
    public let roles: [String]
    public let method: AuthenticationMethod
    /// Only GET, HEAD and OPTIONS are allowed (and no WebSocket upgrades).
    public let readOnly: Bool
    /// The name of the key or network rule that produced this identity, for the access log.
    public let source: String
    /// When the credential behind this identity ends: an expiring key's or long-lived token's
    /// end, a one-shot token's. Nil for a sign-in (session, sign-in token, password) and for
    /// credentials that never expire.
    public let expires: Date?
    /// Whether the credential may ask Gatehouse for another one (a key, a one-shot token), which
    /// ``IssuingPolicy`` then keeps within this one. Only writable API keys, sessions and JSON Web
    /// Tokens may; one-shot tokens, read-only keys, trusted networks and HTTP Basic never do.
    public let mayIssue: Bool

    public init(
        user: String, roles: [String], method: AuthenticationMethod, readOnly: Bool = false, source: String, expires: Date? = nil,
        mayIssue: Bool = true
    ) {
        self.user = user
        self.roles = roles
        self.method = method
        self.readOnly = readOnly
        self.source = source
        self.expires = expires
        self.mayIssue = mayIssue && !readOnly && (method == .apiKey || method == .session || method == .jwt)
    }

    /// The same identity, unable to issue anything (a credential a browser replays on its own).
    public func withoutIssuing() -> Identity {
        Identity(user: user, roles: roles, method: method, readOnly: readOnly, source: source, expires: expires, mayIssue: false)
    }

    /// User and role names: 1–64 characters of `A-Z a-z 0-9 . _ @ -`.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 64 else { return false }
        return name.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == 0x2E || b == 0x5F || b == 0x40 || b == 0x2D
        }
    }
}
