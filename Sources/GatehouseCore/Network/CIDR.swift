/// An address block such as `192.168.1.0/24`, `10.0.0.7` (a /32) or `fd00::/8`.
///
/// Guarantees: a block written in IPv4 notation matches IPv4 peers and their IPv4-mapped IPv6
/// forms and nothing else; a block written in IPv6 notation has an IPv6 prefix length (0–128),
/// so it never matches an IPv4 peer unless it covers part of `::ffff:0:0/96`. A block with host
/// bits set (`192.168.1.7/24`) is refused at parse time, because it usually means a typo.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let network: IPAddress
    /// Prefix length counted over the 128-bit (IPv4-mapped) form.
    public let prefixLength128: Int
    public let description: String

    /// Why a CIDR text was refused.
    public enum ParseError: Error, Equatable, Sendable {
        case badAddress(String)
        case badPrefix(String)
        case hostBitsSet(String)
    }

    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2, let address = IPAddress(String(parts[0])) else {
            throw .badAddress(text)
        }
        let writtenAsIPv4 = !parts[0].contains(":")
        let maxPrefix = writtenAsIPv4 ? 32 : 128
        var prefix = maxPrefix
        if parts.count == 2 {
            guard parts[1].count <= 3, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
                let p = Int(parts[1]), p <= maxPrefix
            else { throw .badPrefix(text) }
            prefix = p
        }
        let prefix128 = writtenAsIPv4 ? prefix + 96 : prefix
        guard CIDR.mask(address.bytes, prefix128) == address.bytes else { throw .hostBitsSet(text) }
        self.network = address
        self.prefixLength128 = prefix128
        self.description = parts.count == 2 ? text : "\(text)/\(maxPrefix)"
    }

    /// Whether `address` lies inside this block.
    public func contains(_ address: IPAddress) -> Bool {
        CIDR.mask(address.bytes, prefixLength128) == network.bytes
    }

    private static func mask(_ bytes: [UInt8], _ prefix: Int) -> [UInt8] {
        var out = bytes
        for i in 0..<16 {
            let bitsHere = max(0, min(8, prefix - i * 8))
            let m: UInt8 = bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
            out[i] &= m
        }
        return out
    }
}
