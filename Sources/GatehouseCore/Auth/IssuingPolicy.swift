import Foundation

/// What a credential-issuing endpoint was asked for: the new credential's roles (nil: its
/// user's roles at each request), whether it may only read, and when it ends (nil: never).
public struct CredentialGrant: Sendable, Hashable {
    public var roles: [String]?
    public var readOnly: Bool
    public var expires: Date?

    public init(roles: [String]? = nil, readOnly: Bool = false, expires: Date? = nil) {
        self.roles = roles
        self.readOnly = readOnly
        self.expires = expires
    }
}

/// The one rule every endpoint that hands out a credential (run-time keys, one-shot tokens,
/// Moonraker's one-shot tokens, OctoPrint app keys, user creation) applies to
/// the credential that asked: what is issued never exceeds it.
///
/// Guarantees of ``bound(_:by:now:)``:
/// - A credential that may not issue (``Identity/mayIssue``: one-shot tokens, read-only keys,
///   HTTP Basic, trusted networks) gets 403, whatever it asks for.
/// - Roles: the grant's roles are a subset of the caller's; a grant that names none inherits the
///   caller's own when the caller is itself limited (a key, an expiring credential), and its
///   user's when the caller is the user's sign-in (a session or a sign-in token).
/// - Expiry: never later than the caller's; a grant that names none ends with the caller.
/// - A read-only caller cannot issue at all, so read-only stays read-only.
/// The result is the grant to issue; a refusal is ``AccountError/forbidden(_:)`` naming the field.
public enum IssuingPolicy {
    public static func bound(_ asked: CredentialGrant, by caller: Identity, now: Date) throws(AccountError) -> CredentialGrant {
        guard caller.mayIssue else {
            throw .forbidden(
                "This credential cannot issue others (one-shot tokens, read-only keys, HTTP Basic and trusted networks never do); sign in, or use a token or a writable key.")
        }
        var grant = asked
        if let roles = grant.roles {
            let missing = roles.filter { !caller.roles.contains($0) }
            guard missing.isEmpty else {
                throw .forbidden("roles: a new credential cannot carry roles the one asking for it lacks (\(missing.joined(separator: ", "))).")
            }
        } else if !isSignIn(caller) {
            grant.roles = caller.roles
        }
        if let end = caller.expires {
            if let asked = grant.expires {
                guard asked <= end else {
                    throw .forbidden("expires: a new credential cannot outlive the one asking for it (it ends \(InternetDate.format(end))).")
                }
            } else {
                grant.expires = end
            }
        }
        if caller.readOnly { grant.readOnly = true }
        return grant
    }

    /// Whether the caller may act as its user with no limit of its own: a session, or a JSON Web
    /// Token without an end of its own beyond the sign-in's.
    public static func isSignIn(_ caller: Identity) -> Bool {
        (caller.method == .session || caller.method == .jwt) && caller.expires == nil
    }

    /// For creating a user, whose password is a credential without an end: the caller must be
    /// able to issue and have no end of its own. The roles an admin's own sign-in (a session or
    /// sign-in token) gives are the admin role's to choose; a delegated credential (a key) may
    /// give only roles it holds itself.
    public static func boundNewUser(roles: [String], by caller: Identity) throws(AccountError) {
        _ = try bound(CredentialGrant(roles: isSignIn(caller) ? nil : roles), by: caller, now: Date())
        guard caller.expires == nil else {
            throw .forbidden("A credential that ends cannot create users, whose passwords do not; use a session, a token or a key without an end.")
        }
    }
}
