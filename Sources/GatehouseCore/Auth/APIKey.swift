import Crypto
import Foundation

/// One API key as configured: who it speaks for and what it may do. The key itself is never
/// held, only its ``digest``.
public struct APIKeyRecord: Sendable, Hashable {
    public let name: String
    public let user: String
    public let roles: [String]
    public let digest: SecretDigest
    public let readOnly: Bool
    public let expires: Date?
    public let disabled: Bool

    public init(
        name: String, user: String, roles: [String], digest: SecretDigest,
        readOnly: Bool = false, expires: Date? = nil, disabled: Bool = false
    ) {
        self.name = name
        self.user = user
        self.roles = roles
        self.digest = digest
        self.readOnly = readOnly
        self.expires = expires
        self.disabled = disabled
    }
}

/// Makes new API keys.
///
/// Guarantees: 32 bytes (256 bits) from the system's secure random generator, written URL-safe
/// (base64url without padding: 43 characters of `A-Z a-z 0-9 - _`), so a key can go into a
/// header, a query string or a slicer's settings field unchanged.
public enum APIKeyGenerator {
    public static func generate() -> String {
        let key = SymmetricKey(size: .bits256)
        let raw = key.withUnsafeBytes { Data($0) }
        return raw.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// Recognises API keys.
///
/// Guarantees: a presented key is hashed and looked up by its digest, then the digest is compared
/// in constant time, so a key that differs from a real one in its last character takes as long to
/// refuse as one that differs everywhere. The key store is a dictionary: lookup cost does not
/// grow with the number of keys.
///
/// ```swift
/// let keys = APIKeyAuthenticator(keys: config.apiKeys)
/// switch keys.authenticate(key: "…", now: Date()) {
/// case .success(let identity): …   // identity.method == .apiKey
/// case .failure(let reason): …     // .unknownKey, .expiredKey, .disabledKey
/// }
/// ```
public struct APIKeyAuthenticator: Sendable {
    private let keysByDigest: [SecretDigest: APIKeyRecord]

    /// Keys with equal digests are a configuration error caught by the loader; here the first wins.
    public init(keys: [APIKeyRecord]) {
        var table: [SecretDigest: APIKeyRecord] = [:]
        table.reserveCapacity(keys.count)
        for key in keys where table[key.digest] == nil { table[key.digest] = key }
        self.keysByDigest = table
    }

    public func authenticate(key: String, now: Date) -> Result<Identity, AuthenticationFailure> {
        authenticate(digest: SecretDigest.of(key), now: now)
    }

    /// The same, for a key whose digest the caller computed already.
    public func authenticate(digest: SecretDigest, now: Date) -> Result<Identity, AuthenticationFailure> {
        guard let record = keysByDigest[digest], record.digest.constantTimeEquals(digest) else {
            return .failure(.unknownAPIKey)
        }
        if record.disabled { return .failure(.disabledAPIKey) }
        if let expires = record.expires, expires <= now { return .failure(.expiredAPIKey) }
        return .success(
            Identity(user: record.user, roles: record.roles, method: .apiKey, readOnly: record.readOnly, source: record.name, expires: record.expires))
    }
}

extension APIKeyRecord {
    /// `api_keys:`: names and hashes each unique.
    static func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> [APIKeyRecord] {
        var out: [APIKeyRecord] = []
        var keyNames: Set<String> = []
        var digests: Set<SecretDigest> = []
        for item in try reader.list(value) {
            let m = try reader.mapping(item, known: ["name", "user", "roles", "hash", "read_only", "expires", "disabled"])
            guard let n = m["name"], let u = m["user"], let h = m["hash"] else {
                throw reader.fail(item, "an API key needs name, user and hash")
            }
            let keyName = try reader.name(n, what: "key name")
            guard keyNames.insert(keyName).inserted else { throw reader.fail(n, "another key already has the name '\(keyName)'") }
            guard let digest = SecretDigest(parsing: try reader.string(h)) else {
                throw reader.fail(h, "expected sha256: and 64 hex digits (gatehouse key generate prints one; never put the key itself here)")
            }
            guard digests.insert(digest).inserted else { throw reader.fail(h, "another key already has this hash") }
            var expires: Date?
            if let e = m["expires"], !e.isNull {
                guard let date = InternetDate.parse(try reader.string(e)) else {
                    throw reader.fail(e, "expected a date like 2027-01-31T00:00:00Z")
                }
                expires = date
            }
            out.append(
                APIKeyRecord(
                    name: keyName, user: try reader.name(u, what: "user name"), roles: try reader.names(m["roles"], what: "role"),
                    digest: digest, readOnly: try m["read_only"].map { v throws(ConfigError) in try reader.bool(v) } ?? false,
                    expires: expires, disabled: try m["disabled"].map { v throws(ConfigError) in try reader.bool(v) } ?? false))
        }
        return out
    }
}
