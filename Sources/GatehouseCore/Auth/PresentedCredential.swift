/// Where a credential was found in the request; the place Gatehouse removes it from before
/// forwarding (unless `forward_credentials` is on).
public enum CredentialSource: String, Sendable, Hashable {
    case apiKeyHeader = "X-Api-Key"
    case authorizationBearer = "Authorization: Bearer"
    case authorizationToken = "Authorization: Token"
    /// `Authorization: Basic` (only with `basic_auth: true`): a user name and password, or an API
    /// key as the password.
    case authorizationBasic = "Authorization: Basic"
    case apiKeyQueryParameter = "apikey"
    /// A one-shot token in `?token=`.
    case oneShotQueryParameter = "token"
    /// The `gatehouse_session` cookie.
    case sessionCookie = "gatehouse_session"
}

/// A set of ``CredentialSource``s, as bits: what a request's credentials were found in (and
/// what is removed before forwarding). No allocation per request.
public struct CredentialSources: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public init(_ source: CredentialSource) {
        switch source {
        case .apiKeyHeader: self = .apiKeyHeader
        case .authorizationBearer: self = .authorizationBearer
        case .authorizationToken: self = .authorizationToken
        case .authorizationBasic: self = .authorizationBasic
        case .apiKeyQueryParameter: self = .apiKeyQueryParameter
        case .oneShotQueryParameter: self = .oneShotQueryParameter
        case .sessionCookie: self = .sessionCookie
        }
    }

    public init<S: Sequence>(_ sources: S) where S.Element == CredentialSource {
        self = []
        for source in sources { insert(CredentialSources(source)) }
    }

    public static let apiKeyHeader = CredentialSources(rawValue: 1 << 0)
    public static let authorizationBearer = CredentialSources(rawValue: 1 << 1)
    public static let authorizationToken = CredentialSources(rawValue: 1 << 2)
    public static let authorizationBasic = CredentialSources(rawValue: 1 << 3)
    public static let apiKeyQueryParameter = CredentialSources(rawValue: 1 << 4)
    public static let oneShotQueryParameter = CredentialSources(rawValue: 1 << 5)
    public static let sessionCookie = CredentialSources(rawValue: 1 << 6)

    /// The header-borne sources, removed together when a request's credentials were unusable.
    public static let allHeaders: CredentialSources = [.apiKeyHeader, .authorizationBearer, .authorizationToken, .authorizationBasic]
}

/// A credential a request carries, before it is checked.
public struct PresentedCredential: Sendable, Hashable {
    /// The key, token or cookie value; for HTTP Basic, the password.
    public let secret: String
    public let source: CredentialSource
    /// The user name of an HTTP Basic credential (possibly empty); nil for every other source.
    public let basicUser: String?

    public init(secret: String, source: CredentialSource, basicUser: String? = nil) {
        self.secret = secret
        self.source = source
        self.basicUser = basicUser
    }
}

/// Finds the credentials in a request.
///
/// Guarantees: the places are read in one fixed order — `X-Api-Key`, then `Authorization`
/// (`Bearer` or `Token`, and `Basic` when ``basicAuthEnabled``; scheme case-insensitive), then the `apikey` query parameter (only when
/// enabled), then the `token` query parameter (one-shot tokens). The `gatehouse_session` cookie
/// counts only when none of these is present: a browser that is signed in may still call with an
/// explicit key, and the key decides. Several copies carrying *different* secrets are refused as a whole
/// (``AuthenticationFailure/conflictingCredentials``) rather than letting one win: a proxy and its
/// device must never disagree on who is calling (a Basic password counts as its secret). An
/// `Authorization` header with another scheme (Digest, or Basic while it is off), no token, or a
/// Basic value that is not base64 of UTF-8 `user:password` without control characters is a
/// presented-but-unusable credential, never ignored.
public struct CredentialExtractor: Sendable {
    public let queryAPIKeyEnabled: Bool
    public let basicAuthEnabled: Bool

    public init(queryAPIKeyEnabled: Bool, basicAuthEnabled: Bool = false) {
        self.queryAPIKeyEnabled = queryAPIKeyEnabled
        self.basicAuthEnabled = basicAuthEnabled
    }

    /// - Parameter acceptQueryAPIKey: read `?apikey=` here even when ``queryAPIKeyEnabled`` is off
    ///   (an access rule allows it on this path).
    public func extract(
        _ head: RequestHead, query: QueryString, acceptQueryAPIKey: Bool = false
    ) -> Result<[PresentedCredential], AuthenticationFailure> {
        var found: [PresentedCredential] = []
        // X-Api-Key comes before Authorization in the fixed order.
        if head.has(.xAPIKey) {
            for field in head.fields where field.reads(.xAPIKey) {
                let key = head.value(of: field)
                guard !key.isEmpty else { return .failure(.malformedAuthorization(reason: "X-Api-Key is empty")) }
                found.append(PresentedCredential(secret: key, source: .apiKeyHeader))
            }
        }
        if head.has(.authorization) {
            for field in head.fields where field.reads(.authorization) {
                switch Self.parseAuthorization(head.value(of: field), basicAuthEnabled: basicAuthEnabled) {
                case .success(let credential): found.append(credential)
                case .failure(let failure): return .failure(failure)
                }
            }
        }
        if !query.isEmpty, queryAPIKeyEnabled || acceptQueryAPIKey {
            for value in query.values(named: "apikey") {
                guard !value.isEmpty else { return .failure(.malformedAuthorization(reason: "apikey is empty")) }
                found.append(PresentedCredential(secret: value, source: .apiKeyQueryParameter))
            }
        }
        for value in query.isEmpty ? [] : query.values(named: "token") {
            guard !value.isEmpty else { return .failure(.malformedAuthorization(reason: "token is empty")) }
            found.append(PresentedCredential(secret: value, source: .oneShotQueryParameter))
        }
        if found.count > 1 {
            if found.contains(where: { $0.secret != found[0].secret }) { return .failure(.conflictingCredentials) }
            // The same password for two different users is two identities too.
            if Set(found.compactMap(\.basicUser)).count > 1 { return .failure(.conflictingCredentials) }
        }
        if found.isEmpty && head.has(.cookie) {
            let cookies = SessionCookie.values(in: head)
            if let first = cookies.first {
                guard cookies.allSatisfy({ $0 == first }) else { return .failure(.conflictingCredentials) }
                // An empty cookie (a cleared one) is no credential at all.
                if !first.isEmpty { found.append(PresentedCredential(secret: first, source: .sessionCookie)) }
            }
        }
        return .success(found)
    }

    static func parseAuthorization(_ value: String, basicAuthEnabled: Bool) -> Result<PresentedCredential, AuthenticationFailure> {
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
        if basicAuthEnabled && scheme.equalsCaseInsensitive("basic") {
            return BasicCredential.parse(token).map { PresentedCredential(secret: $0.password, source: .authorizationBasic, basicUser: $0.user) }
        }
        let printable = scheme.utf8.count <= 20 && scheme.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        return .failure(.unsupportedAuthorizationScheme(printable ? String(scheme) : "?"))
    }
}

/// The `user:password` pair of an `Authorization: Basic` header (RFC 7617).
enum BasicCredential {
    /// Decodes base64 (standard alphabet, padding optional but never misplaced) into UTF-8
    /// `user:password`, split at the first colon. Refused: anything else, a control character
    /// in either part (RFC 7617 forbids them; they could forge log lines), an empty password, and
    /// values over 4 KiB.
    static func parse(_ encoded: Substring) -> Result<(user: String, password: String), AuthenticationFailure> {
        func malformed(_ reason: String) -> Result<(user: String, password: String), AuthenticationFailure> {
            .failure(.malformedAuthorization(reason: reason))
        }
        guard encoded.utf8.count <= 4096, let bytes = decodeBase64(encoded.utf8) else {
            return malformed("the Basic credential is not base64")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return malformed("the Basic credential is not UTF-8") }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || ($0.value >= 0x7F && $0.value < 0xA0) }) else {
            return malformed("the Basic credential contains control characters")
        }
        guard let colon = text.firstIndex(of: ":") else { return malformed("the Basic credential has no ':' between user and password") }
        let password = String(text[text.index(after: colon)...])
        guard !password.isEmpty else { return malformed("the Basic password is empty") }
        return .success((String(text[..<colon]), password))
    }

    /// Strict base64: a length that padding makes a multiple of four, `=` only at the end.
    static func decodeBase64(_ input: Substring.UTF8View) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        var padding = 0
        var count = 0
        for c in input {
            count += 1
            if c == UInt8(ascii: "=") { padding += 1; continue }
            guard padding == 0 else { return nil }
            let value: UInt8
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            default: return nil
            }
            accumulator = (accumulator << 6) | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        let dataCount = count - padding
        // A lone sixth bit group cannot hold a byte; padding, when present, completes the quad.
        guard dataCount % 4 != 1, padding == 0 || (dataCount % 4 != 0 && padding == 4 - dataCount % 4), accumulator == 0 else { return nil }
        return out
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
