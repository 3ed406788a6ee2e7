/// Why a request was refused. Each case maps to exactly one status code in ``status`` and carries
/// a ``detail`` sentence for the JSON body: what was wrong, never the credential itself.
public enum AuthenticationFailure: Error, Sendable, Hashable {
    case missingCredential
    case unknownAPIKey
    case expiredAPIKey
    case disabledAPIKey
    case malformedAuthorization(reason: String)
    case unsupportedAuthorizationScheme(String)
    case conflictingCredentials
    case readOnlyCredential(method: String)
    case readOnlyUpgrade
    /// The session cookie names no live session (unknown, logged out, idle too long, past its end).
    case invalidSession
    /// A JSON Web Token was refused; `reason` says which check failed (never the token).
    case invalidToken(reason: String)
    /// The one-shot token is unknown, spent or older than its few seconds.
    case invalidOneShotToken
    /// The credential is fine but its user was disabled.
    case disabledUser
    /// A state-changing request authenticated by the session cookie came from another site.
    case crossSiteRequest
    /// The store could not be read; the request is refused rather than guessed at.
    case storeUnavailable
    /// An access rule denies the request to everyone.
    case deniedByRule
    /// An access rule asks for a role the caller does not hold.
    case missingRole
    /// An HTTP Basic user name and password that do not match (never says which part was wrong).
    case wrongPassword
    /// Too many failed password checks for this user name or client address; retry after so many seconds.
    case lockedOut(retryAfter: Int)

    /// 401 when no valid credential was presented; 403 when the caller is known but not allowed;
    /// 429 while a lockout lasts; 503 when the store cannot be read (never a guess).
    public var status: Int {
        switch self {
        case .missingCredential, .unknownAPIKey, .expiredAPIKey, .disabledAPIKey, .malformedAuthorization,
            .unsupportedAuthorizationScheme, .conflictingCredentials, .invalidSession, .invalidToken, .invalidOneShotToken,
            .disabledUser, .wrongPassword:
            return 401
        case .lockedOut:
            return 429
        case .readOnlyCredential, .readOnlyUpgrade, .crossSiteRequest, .deniedByRule, .missingRole:
            return 403
        case .storeUnavailable:
            return 503
        }
    }

    /// A short machine-readable reason, for the access log and metrics.
    public var code: String {
        switch self {
        case .missingCredential: return "missing_credential"
        case .unknownAPIKey: return "unknown_key"
        case .expiredAPIKey: return "expired_key"
        case .disabledAPIKey: return "disabled_key"
        case .malformedAuthorization: return "malformed_authorization"
        case .unsupportedAuthorizationScheme: return "unsupported_scheme"
        case .conflictingCredentials: return "conflicting_credentials"
        case .readOnlyCredential: return "read_only"
        case .readOnlyUpgrade: return "read_only_upgrade"
        case .invalidSession: return "invalid_session"
        case .invalidToken: return "invalid_token"
        case .invalidOneShotToken: return "invalid_oneshot_token"
        case .disabledUser: return "disabled_user"
        case .crossSiteRequest: return "cross_site"
        case .storeUnavailable: return "store_unavailable"
        case .deniedByRule: return "denied_by_rule"
        case .missingRole: return "missing_role"
        case .wrongPassword: return "wrong_password"
        case .lockedOut: return "locked_out"
        }
    }

    public var detail: String {
        switch self {
        case .missingCredential: return "Authentication required: sign in, or send an API key or token."
        case .unknownAPIKey: return "The API key is not valid."
        case .expiredAPIKey: return "The API key has expired."
        case .disabledAPIKey: return "The API key is disabled."
        case .malformedAuthorization(let reason): return "The Authorization header is malformed: \(reason)."
        case .unsupportedAuthorizationScheme(let scheme):
            return "The Authorization scheme '\(scheme)' is not accepted here; use Bearer or Token."
        case .conflictingCredentials: return "More than one different credential was presented."
        case .readOnlyCredential(let method): return "This credential is read-only; \(method) is not allowed."
        case .readOnlyUpgrade: return "This credential is read-only; it cannot open a WebSocket."
        case .invalidSession: return "The session has ended; sign in again."
        case .invalidToken(let reason): return "The token is not valid: \(reason)."
        case .invalidOneShotToken: return "The one-shot token is not valid (unknown, used, or expired)."
        case .disabledUser: return "The user is disabled."
        case .crossSiteRequest:
            return "Cross-site request refused: a request signed in by cookie or HTTP Basic must come from this site."
        case .storeUnavailable: return "Gatehouse cannot read its store right now."
        case .deniedByRule: return "This path is not available through Gatehouse."
        case .missingRole: return "Your account lacks the role this path requires."
        case .wrongPassword: return "Wrong user name or password."
        case .lockedOut(let seconds): return "Too many failed sign-ins; try again in \(seconds) seconds."
        }
    }
}
