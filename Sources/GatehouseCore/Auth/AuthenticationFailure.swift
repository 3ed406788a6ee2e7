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

    /// 401 when no valid credential was presented; 403 when the caller is known but not allowed.
    public var status: Int {
        switch self {
        case .missingCredential, .unknownAPIKey, .expiredAPIKey, .disabledAPIKey, .malformedAuthorization,
            .unsupportedAuthorizationScheme, .conflictingCredentials:
            return 401
        case .readOnlyCredential, .readOnlyUpgrade:
            return 403
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
        }
    }

    public var detail: String {
        switch self {
        case .missingCredential: return "Authentication required: send an API key in the X-Api-Key header."
        case .unknownAPIKey: return "The API key is not valid."
        case .expiredAPIKey: return "The API key has expired."
        case .disabledAPIKey: return "The API key is disabled."
        case .malformedAuthorization(let reason): return "The Authorization header is malformed: \(reason)."
        case .unsupportedAuthorizationScheme(let scheme):
            return "The Authorization scheme '\(scheme)' is not accepted here; use Bearer or Token."
        case .conflictingCredentials: return "More than one different credential was presented."
        case .readOnlyCredential(let method): return "This credential is read-only; \(method) is not allowed."
        case .readOnlyUpgrade: return "This credential is read-only; it cannot open a WebSocket."
        }
    }
}
