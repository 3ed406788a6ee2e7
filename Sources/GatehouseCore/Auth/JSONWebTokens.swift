import Crypto
import Foundation
import JWTKit

#if canImport(Glibc)
import Glibc
#endif

/// `jwt:` in the config.
public struct JWTSettings: Sendable, Hashable {
    /// The HS256 secret; created with 32 random bytes and mode 0600 when missing.
    public var secretFile: String = "./jwt.secret"
    public var issuer: String = "gatehouse"
    public var audience: String = "gatehouse"
    /// Access tokens (default 1h, Moonraker's); 0 means they never expire.
    public var accessExpiry: ConfigDuration = .seconds(3600)
    /// Refresh tokens (default 30d); 0 means they never expire.
    public var refreshExpiry: ConfigDuration = .seconds(30 * 86400)
    /// Clock difference tolerated on `exp`, `nbf` and `iat`.
    public var leeway: TimeInterval = 30

    public init() {}

    public func lifetime(of kind: IssuedTokenKind) -> TimeInterval? {
        let seconds = kind == .refresh ? refreshExpiry.seconds : accessExpiry.seconds
        return seconds == 0 ? nil : TimeInterval(seconds)
    }
}

/// Why the JWT secret file cannot be used.
public enum JWTSecretError: Error, Equatable, CustomStringConvertible {
    case insecurePermissions(path: String, mode: String)
    case tooShort(path: String, bytes: Int)
    case cannotUse(path: String, reason: String)
    /// Missing where it may not be made (a shared store: replicas must all sign with one secret).
    case missingShared(path: String)

    public var description: String {
        switch self {
        case .insecurePermissions(let path, let mode):
            return "jwt.secret_file \(path) has mode \(mode): readable by other users; run chmod 600 on it"
        case .tooShort(let path, let bytes):
            return "jwt.secret_file \(path) holds \(bytes) bytes; an HS256 secret needs at least 32"
        case .cannotUse(let path, let reason): return "jwt.secret_file \(path): \(reason)"
        case .missingShared(let path):
            return "jwt.secret_file \(path) does not exist; with a shared store (store.url) every Gatehouse must sign with the same secret: "
                + "make it once (head -c 32 /dev/urandom > \(path); chmod 600 \(path)) and give each one a copy"
        }
    }
}

/// Reads the HS256 secret, creating it on first start (unless `create` is false).
///
/// Guarantees: a new file gets 32 bytes from the system's secure generator and mode 0600 and is
/// created exclusively (never overwrites one that appeared meanwhile); an existing file readable by
/// group or others, or shorter than 32 bytes, is refused.
public enum JWTSecretFile {
    public static func loadOrCreate(path: String, create: Bool = true) throws(JWTSecretError) -> [UInt8] {
        var info = stat()
        if stat(path, &info) != 0 {
            guard errno == ENOENT else { throw .cannotUse(path: path, reason: String(cString: strerror(errno))) }
            guard create else { throw .missingShared(path: path) }
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw .cannotUse(path: path, reason: String(cString: strerror(errno))) }
            let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
            let written = secret.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd)
            close(fd)
            guard written == secret.count, synced == 0 else {
                unlink(path)
                throw .cannotUse(path: path, reason: "could not write the new secret")
            }
            return secret
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else { throw .insecurePermissions(path: path, mode: String(mode, radix: 8)) }
        guard let data = FileManager.default.contents(atPath: path) else { throw .cannotUse(path: path, reason: "cannot read it") }
        guard data.count >= 32 else { throw .tooShort(path: path, bytes: data.count) }
        return Array(data)
    }
}

/// The claims of every token Gatehouse issues.
struct GatehouseClaims: JWTPayload {
    var iss: IssuerClaim
    var aud: AudienceClaim
    var sub: SubjectClaim
    var iat: IssuedAtClaim
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var jti: IDClaim
    var roles: [String]
    var type: String

    /// Time checks happen in ``TokenAuthority/verify(_:now:)`` against its injected clock.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A token that passed every check that needs no store: signature, algorithm, issuer, audience, times.
public struct VerifiedToken: Sendable, Hashable {
    public let jti: String
    public let username: String
    public let roles: [String]
    public let kind: IssuedTokenKind
    public let expires: Date?
}

/// A freshly signed token and its record.
public struct SignedToken: Sendable {
    public let token: String
    public let record: IssuedToken
}

/// Signs and verifies Gatehouse's JSON Web Tokens (HS256, through jwt-kit).
///
/// Guarantees of ``verify(_:now:)``: the header must say `alg: HS256` and may hold nothing but
/// `alg` and `typ: JWT` — `none`, every other algorithm, and `kid`/`jku`/`jwk`/`x5u`/`x5c`/`crit`
/// are refused before any key is touched; then the signature, `iss`, `aud`, `exp` (with
/// ``JWTSettings/leeway``), `nbf` and `iat` (not in the future), `sub` and `type`. It does not
/// know about revocation or users: ``StoredCredentialAuthenticator`` asks the store for that.
public final class TokenAuthority: Sendable {
    public let settings: JWTSettings
    private let keys: JWTKeyCollection
    private let ready: Task<Void, Never>

    public init(secret: [UInt8], settings: JWTSettings) {
        self.settings = settings
        let keys = JWTKeyCollection()
        self.keys = keys
        ready = Task { await keys.add(hmac: HMACKey(key: SymmetricKey(data: secret)), digestAlgorithm: .sha256) }
    }

    /// Signs a new token for `username`. `family` groups a refresh token with the tokens it begets.
    public func issue(
        kind: IssuedTokenKind, username: String, roles: [String], family: String?, now: Date,
        lifetime: TimeInterval?? = .none, description: String = ""
    ) async throws -> SignedToken {
        await ready.value
        let jti = RandomSecret.make()
        let seconds: TimeInterval? = lifetime ?? settings.lifetime(of: kind)
        let expires = seconds.map { now.addingTimeInterval($0) }
        let claims = GatehouseClaims(
            iss: IssuerClaim(value: settings.issuer), aud: AudienceClaim(value: [settings.audience]),
            sub: SubjectClaim(value: username), iat: IssuedAtClaim(value: now), exp: expires.map(ExpirationClaim.init(value:)),
            nbf: nil, jti: IDClaim(value: jti), roles: roles, type: kind == .refresh ? "refresh" : "access")
        let token = try await keys.sign(claims, header: ["typ": "JWT"])
        let record = IssuedToken(
            jti: jti, username: username, kind: kind, family: family, created: now, expires: expires, description: description)
        return SignedToken(token: token, record: record)
    }

    /// Refuses a token whose `exp` (with the leeway) has passed at `now`; nil while it is valid.
    public func expiryFailure(_ token: VerifiedToken, now: Date) -> AuthenticationFailure? {
        expiryFailure(expires: token.expires, now: now)
    }

    private func expiryFailure(expires: Date?, now: Date) -> AuthenticationFailure? {
        guard let expires, expires.addingTimeInterval(settings.leeway) <= now else { return nil }
        return .invalidToken(reason: "it has expired")
    }

    public func verify(_ token: String, now: Date) async -> Result<VerifiedToken, AuthenticationFailure> {
        let header: JWTHeader
        do {
            header = try DefaultJWTParser().parse(Array(token.utf8), as: GatehouseClaims.self).header
        } catch {
            return .failure(.invalidToken(reason: "it cannot be read as a Gatehouse token"))
        }
        guard case .string("HS256")? = header.fields["alg"] else {
            return .failure(.invalidToken(reason: "only HS256 is accepted"))
        }
        for (name, value) in header.fields where name != "alg" {
            guard name == "typ", case .string(let typ) = value, typ.uppercased() == "JWT" else {
                return .failure(.invalidToken(reason: "the header field '\(name.prefix(20))' is not accepted"))
            }
        }
        await ready.value
        let claims: GatehouseClaims
        do {
            claims = try await keys.verify(token, as: GatehouseClaims.self)
        } catch {
            return .failure(.invalidToken(reason: "the signature does not match"))
        }
        let leeway = settings.leeway
        guard claims.iss.value == settings.issuer else { return .failure(.invalidToken(reason: "wrong issuer")) }
        guard claims.aud.value.contains(settings.audience) else { return .failure(.invalidToken(reason: "wrong audience")) }
        if let failure = expiryFailure(expires: claims.exp?.value, now: now) { return .failure(failure) }
        if let nbf = claims.nbf, nbf.value.addingTimeInterval(-leeway) > now {
            return .failure(.invalidToken(reason: "it is not valid yet"))
        }
        if claims.iat.value.addingTimeInterval(-leeway) > now { return .failure(.invalidToken(reason: "it is issued in the future")) }
        guard Identity.isValidName(claims.sub.value), claims.roles.allSatisfy(Identity.isValidName) else {
            return .failure(.invalidToken(reason: "its subject or roles are not valid names"))
        }
        let kind: IssuedTokenKind
        switch claims.type {
        case "access": kind = .access
        case "refresh": kind = .refresh
        default: return .failure(.invalidToken(reason: "unknown token type"))
        }
        return .success(
            VerifiedToken(jti: claims.jti.value, username: claims.sub.value, roles: claims.roles, kind: kind, expires: claims.exp?.value))
    }
}

extension JWTSettings {
    /// `jwt:`.
    mutating func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) {
        let m = try reader.mapping(value, known: ["secret_file", "issuer", "audience", "access_expiry", "refresh_expiry"])
        if let x = m["secret_file"] {
            let path = try reader.string(x)
            guard !path.isEmpty, !path.hasSuffix("/") else { throw reader.fail(x, "expected a file path, like ./jwt.secret") }
            self.secretFile = path
        }
        if let x = m["issuer"] { self.issuer = try reader.nonEmpty(x) }
        if let x = m["audience"] { self.audience = try reader.nonEmpty(x) }
        if let x = m["access_expiry"] { self.accessExpiry = try reader.duration(x) }
        if let x = m["refresh_expiry"] { self.refreshExpiry = try reader.duration(x) }
    }
}
