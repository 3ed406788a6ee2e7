import Crypto

/// The SHA-256 of a secret (an API key), the only form in which Gatehouse keeps it.
///
/// Guarantees: hashing and equality never depend on where two digests first differ
/// (``constantTimeEquals(_:)``), and a digest is written as `sha256:<64 lowercase hex>`, which any
/// tool can produce with `printf %s KEY | sha256sum`.
public struct SecretDigest: Sendable, Hashable, CustomStringConvertible {
    // Four words rather than an array: hashing a dictionary key costs no allocation.
    let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    init(bytes: some Sequence<UInt8>) {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var i = 0
        for b in bytes where i < 32 {
            switch i / 8 {
            case 0: words.0 = words.0 << 8 | UInt64(b)
            case 1: words.1 = words.1 << 8 | UInt64(b)
            case 2: words.2 = words.2 << 8 | UInt64(b)
            default: words.3 = words.3 << 8 | UInt64(b)
            }
            i += 1
        }
        (w0, w1, w2, w3) = words
    }

    init(_ digest: SHA256.Digest) {
        self = digest.withUnsafeBytes { raw in
            SecretDigest(
                w0: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                w1: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                w2: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
                w3: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)))
        }
    }

    private init(w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64) {
        (self.w0, self.w1, self.w2, self.w3) = (w0, w1, w2, w3)
    }

    /// The digest of `secret`'s UTF-8 bytes.
    public static func of(_ secret: String) -> SecretDigest {
        var secret = secret
        return secret.withUTF8 { SecretDigest(SHA256.hash(data: UnsafeRawBufferPointer($0))) }
    }

    /// Parses `sha256:<64 hex>` (hex in either case); nil otherwise.
    public init?(parsing text: String) {
        guard text.hasPrefix("sha256:") else { return nil }
        let hex = Array(text.utf8.dropFirst("sha256:".count))
        guard hex.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let hi = hexValue(hex[i]), let lo = hexValue(hex[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        self.init(bytes: bytes)
    }

    /// Equality whose running time does not depend on the contents.
    public func constantTimeEquals(_ other: SecretDigest) -> Bool {
        ((w0 ^ other.w0) | (w1 ^ other.w1) | (w2 ^ other.w2) | (w3 ^ other.w3)) == 0
    }

    public var description: String { "sha256:" + hex(digits: 64) }

    /// The first `digits` (at most 64) lowercase hex digits.
    public func hex(digits: Int) -> String {
        let count = min(max(digits, 0), 64)
        return String(unsafeUninitializedCapacity: count) { out in
            let hexDigits: StaticString = "0123456789abcdef"
            let words = (w0, w1, w2, w3)
            for i in 0..<count {
                let word: UInt64
                switch i / 16 {
                case 0: word = words.0
                case 1: word = words.1
                case 2: word = words.2
                default: word = words.3
                }
                let nibble = Int((word >> UInt64(60 - 4 * (i % 16))) & 0xf)
                out[i] = hexDigits.utf8Start[nibble]
            }
            return count
        }
    }
}

private func hexValue(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x61...0x66: return c - 0x61 + 10
    case 0x41...0x46: return c - 0x41 + 10
    default: return nil
    }
}

/// The digest of the last secret one connection presented, so that a client sending the same
/// key with every request (what API clients and slicers do) has it hashed once per connection.
///
/// Guarantees: the answer is always the SHA-256 of `secret`; the secret it is compared with was
/// presented on the same connection, and the comparison's time depends only on the lengths (a
/// proxy in front may carry several clients' requests on one connection). Use it on one thread.
public final class DigestMemo {
    private var secret: [UInt8] = []
    private var digest: SecretDigest?

    public init() {}

    public func digest(of secret: String) -> SecretDigest {
        var secret = secret
        return secret.withUTF8 { bytes in
            if let digest, bytes.count == self.secret.count {
                var difference: UInt8 = 0
                for i in 0..<bytes.count { difference |= bytes[i] ^ self.secret[i] }
                if difference == 0 { return digest }
            }
            let fresh = SecretDigest(SHA256.hash(data: UnsafeRawBufferPointer(bytes)))
            self.secret = Array(bytes)
            digest = fresh
            return fresh
        }
    }
}
