/// Where a credential was found in the request; the place Gatehouse removes it from before
/// forwarding (unless `forward_credentials` is on).
public enum CredentialSource: String, Sendable, Hashable {
    case apiKeyHeader = "X-Api-Key"
    case authorizationBearer = "Authorization: Bearer"
    case authorizationToken = "Authorization: Token"
    case apiKeyQueryParameter = "apikey"
    /// A one-shot token in `?token=`.
    case oneShotQueryParameter = "token"
    /// The `gatehouse_session` cookie.
    case sessionCookie = "gatehouse_session"
}

/// A credential a request carries, before it is checked.
public struct PresentedCredential: Sendable, Hashable {
    public let secret: String
    public let source: CredentialSource
}

/// Finds the credentials in a request.
///
/// Guarantees: the places are read in one fixed order — `X-Api-Key`, then `Authorization`
/// (`Bearer` or `Token`, scheme case-insensitive), then the `apikey` query parameter (only when
/// enabled), then the `token` query parameter (one-shot tokens). The `gatehouse_session` cookie
/// counts only when none of these is present: a browser that is signed in may still call with an
/// explicit key, and the key decides. Several copies carrying *different* secrets are refused as a whole
/// (``AuthenticationFailure/conflictingCredentials``) rather than letting one win: a proxy and its
/// device must never disagree on who is calling. An `Authorization` header with another scheme
/// (Basic, Digest…) or no token is a presented-but-unusable credential, never ignored.
public struct CredentialExtractor: Sendable {
    public let queryAPIKeyEnabled: Bool

    public init(queryAPIKeyEnabled: Bool) { self.queryAPIKeyEnabled = queryAPIKeyEnabled }

    /// - Parameter acceptQueryAPIKey: read `?apikey=` here even when ``queryAPIKeyEnabled`` is off
    ///   (an access rule allows it on this path).
    public func extract(
        headers: [(name: String, value: String)], query: QueryString, acceptQueryAPIKey: Bool = false
    ) -> Result<[PresentedCredential], AuthenticationFailure> {
        var found: [PresentedCredential] = []
        for (name, value) in headers where name.equalsCaseInsensitive("x-api-key") {
            let key = value.trimmingASCIIWhitespace()
            guard !key.isEmpty else { return .failure(.malformedAuthorization(reason: "X-Api-Key is empty")) }
            found.append(PresentedCredential(secret: key, source: .apiKeyHeader))
        }
        for (name, value) in headers where name.equalsCaseInsensitive("authorization") {
            switch Self.parseAuthorization(value) {
            case .success(let credential): found.append(credential)
            case .failure(let failure): return .failure(failure)
            }
        }
        if queryAPIKeyEnabled || acceptQueryAPIKey {
            for value in query.values(named: "apikey") {
                guard !value.isEmpty else { return .failure(.malformedAuthorization(reason: "apikey is empty")) }
                found.append(PresentedCredential(secret: value, source: .apiKeyQueryParameter))
            }
        }
        for value in query.values(named: "token") {
            guard !value.isEmpty else { return .failure(.malformedAuthorization(reason: "token is empty")) }
            found.append(PresentedCredential(secret: value, source: .oneShotQueryParameter))
        }
        if let first = found.first, found.contains(where: { $0.secret != first.secret }) {
            return .failure(.conflictingCredentials)
        }
        if found.isEmpty {
            let cookies = SessionCookie.values(in: headers)
            if let first = cookies.first {
                guard cookies.allSatisfy({ $0 == first }) else { return .failure(.conflictingCredentials) }
                // An empty cookie (a cleared one) is no credential at all.
                if !first.isEmpty { found.append(PresentedCredential(secret: first, source: .sessionCookie)) }
            }
        }
        return .success(found)
    }

    static func parseAuthorization(_ value: String) -> Result<PresentedCredential, AuthenticationFailure> {
        // Byte scans: every boundary found is an ASCII byte, so it is also a character boundary.
        let isBlank = { (b: UInt8) in b == 0x20 || b == 0x09 }
        let bytes = value.utf8
        guard let first = bytes.firstIndex(where: { !isBlank($0) }), let last = bytes.lastIndex(where: { !isBlank($0) }) else {
            return .failure(.malformedAuthorization(reason: "it is empty"))
        }
        let trimmed = value[first...last]
        guard let schemeEnd = trimmed.utf8.firstIndex(of: 0x20),
            let tokenStart = trimmed.utf8[schemeEnd...].firstIndex(where: { !isBlank($0) })
        else {
            return .failure(.malformedAuthorization(reason: "no credential follows the scheme"))
        }
        let scheme = trimmed[..<schemeEnd]
        let token = trimmed[tokenStart...]
        guard !token.utf8.contains(where: isBlank) else {
            return .failure(.malformedAuthorization(reason: "the credential contains spaces"))
        }
        if scheme.equalsCaseInsensitive("bearer") {
            return .success(PresentedCredential(secret: String(token), source: .authorizationBearer))
        }
        if scheme.equalsCaseInsensitive("token") {
            return .success(PresentedCredential(secret: String(token), source: .authorizationToken))
        }
        let printable = scheme.utf8.count <= 20 && scheme.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        return .failure(.unsupportedAuthorizationScheme(printable ? String(scheme) : "?"))
    }
}

extension StringProtocol {
    /// ASCII case-insensitive equality with a lowercase literal.
    @inlinable
    public func equalsCaseInsensitive(_ lowercase: String) -> Bool {
        var a = self.utf8.makeIterator()
        var b = lowercase.utf8.makeIterator()
        while true {
            switch (a.next(), b.next()) {
            case (nil, nil): return true
            case (let x?, let y?):
                let lx = (x >= 0x41 && x <= 0x5A) ? x | 0x20 : x
                if lx != y { return false }
            default: return false
            }
        }
    }
}
