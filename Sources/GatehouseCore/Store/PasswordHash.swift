import Crypto
import CryptoExtras
import Foundation

/// The cost parameters of scrypt, stored beside every password hash so they can be raised later
/// without invalidating existing hashes.
public struct ScryptParameters: Sendable, Hashable {
    /// CPU/memory cost; a power of two. Memory used is about 128 × `n` × `r` bytes.
    public var n: Int
    public var r: Int
    public var p: Int

    /// N=2^14, r=8, p=1: the scrypt paper's interactive-login setting, 16 MiB per check, which a
    /// Raspberry Pi beside the device can afford while staying within its memory budget.
    public static let interactive = ScryptParameters(n: 1 << 14, r: 8, p: 1)

    public init(n: Int, r: Int, p: Int) {
        self.n = n
        self.r = r
        self.p = p
    }

    var isValid: Bool {
        n >= 2 && n <= 1 << 20 && n & (n - 1) == 0 && (1...32).contains(r) && (1...16).contains(p)
    }
}

/// A password as Gatehouse stores it: scrypt of its UTF-8 bytes with a per-user random salt.
///
/// Guarantees: the password itself is never kept; the stored text
/// (`scrypt$N$r$p$<salt base64>$<hash base64>`) names every parameter needed to check it;
/// ``verify(_:)`` compares in constant time.
public struct PasswordHash: Sendable, Hashable, CustomStringConvertible {
    public let parameters: ScryptParameters
    let salt: [UInt8]
    let hash: [UInt8]

    /// Hashes `password` with a fresh 16-byte random salt.
    public static func make(_ password: String, parameters: ScryptParameters = .interactive) throws(PasswordError) -> PasswordHash {
        let salt = randomBytes(16)
        guard parameters.isValid else { throw .badParameters }
        return PasswordHash(parameters: parameters, salt: salt, hash: try derive(password, salt: salt, parameters: parameters))
    }

    /// A hash with no password behind it, as costly to check as a real one with `parameters`:
    /// a random salt and random hash bytes, so no password is known to match it. Checked when
    /// the user named does not exist, so that a sign-in for an unknown name takes as long as a
    /// wrong password. Made without running scrypt: building it at start costs neither time
    /// nor scrypt's memory block (16 MiB at the default cost).
    public static func decoy(parameters: ScryptParameters = .interactive) -> PasswordHash? {
        guard parameters.isValid else { return nil }
        return PasswordHash(parameters: parameters, salt: randomBytes(16), hash: randomBytes(32))
    }

    /// `count` bytes from the system's random source.
    private static func randomBytes(_ count: Int) -> [UInt8] {
        var random = SystemRandomNumberGenerator()
        return (0..<count).map { _ in random.next() }
    }

    /// Parses the stored text form; nil when it is not one Gatehouse wrote.
    public init?(stored text: String) {
        let parts = text.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt",
            let n = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
            let salt = Data(base64Encoded: String(parts[4])), let hash = Data(base64Encoded: String(parts[5])),
            salt.count >= 16, hash.count == 32
        else { return nil }
        let parameters = ScryptParameters(n: n, r: r, p: p)
        guard parameters.isValid else { return nil }
        self.init(parameters: parameters, salt: Array(salt), hash: Array(hash))
    }

    private init(parameters: ScryptParameters, salt: [UInt8], hash: [UInt8]) {
        self.parameters = parameters
        self.salt = salt
        self.hash = hash
    }

    /// The text stored in the database.
    public var description: String {
        "scrypt$\(parameters.n)$\(parameters.r)$\(parameters.p)$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }

    /// Whether `password` is the one this hash was made from. Takes as long for any wrong
    /// password as for the right one.
    public func verify(_ password: String) -> Bool {
        guard let candidate = try? Self.derive(password, salt: salt, parameters: parameters) else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(candidate, hash) { difference |= a ^ b }
        return difference == 0 && candidate.count == hash.count
    }

    /// Whether this hash was made with weaker parameters than `current` (rehash at next login).
    public func needsRehash(current: ScryptParameters = .interactive) -> Bool {
        parameters.n < current.n || parameters.r < current.r || parameters.p < current.p
    }

    private static func derive(_ password: String, salt: [UInt8], parameters: ScryptParameters) throws(PasswordError) -> [UInt8] {
        do {
            let key = try KDF.Scrypt.deriveKey(
                from: Array(password.utf8), salt: salt, outputByteCount: 32,
                rounds: parameters.n, blockSize: parameters.r, parallelism: parameters.p)
            return key.withUnsafeBytes { Array($0) }
        } catch {
            throw .badParameters
        }
    }
}

/// Why a password was not accepted or could not be hashed.
public enum PasswordError: Error, Equatable, CustomStringConvertible {
    case tooShort(minimum: Int)
    case tooLong(maximum: Int)
    case notText
    case badParameters

    public var description: String {
        switch self {
        case .tooShort(let minimum): return "the password must be at least \(minimum) characters long"
        case .tooLong(let maximum): return "the password must be at most \(maximum) bytes long"
        case .notText: return "the password must be text without control characters"
        case .badParameters: return "the password hash parameters are not valid scrypt parameters"
        }
    }
}

/// What makes a password acceptable.
///
/// Guarantees: the minimum counts characters as a person sees them (so a passphrase in any
/// script is judged fairly); any password up to 1024 UTF-8 bytes is accepted, so nobody is
/// forced below the 256 bytes the issue promises; control characters (which a prompt cannot
/// show) are refused.
public struct PasswordPolicy: Sendable, Hashable {
    public var minimumLength: Int
    public static let maximumBytes = 1024

    public init(minimumLength: Int = 10) { self.minimumLength = minimumLength }

    public func check(_ password: String) throws(PasswordError) {
        guard password.count >= minimumLength else { throw .tooShort(minimum: minimumLength) }
        guard password.utf8.count <= Self.maximumBytes else { throw .tooLong(maximum: Self.maximumBytes) }
        guard !password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { throw .notText }
    }
}

extension PasswordPolicy {
    /// `passwords:`.
    mutating func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) {
        let m = try reader.mapping(value, known: ["min_length"])
        if let x = m["min_length"] { self.minimumLength = Int(try reader.int(x, min: 1, max: 256)) }
    }
}
