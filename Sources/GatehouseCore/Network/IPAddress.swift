#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as 16 bytes, IPv4 held in its IPv4-mapped IPv6 form
/// (`::ffff:a.b.c.d`) so one comparison covers both families.
///
/// Guarantees: an IPv4 peer and the same address seen as an IPv4-mapped IPv6 peer are equal,
/// so a rule written for `192.168.1.0/24` matches a client reaching a dual-stack listener.
/// Parsing uses the C library's `inet_pton`, never a hand-written parser; zone ids (`%eth0`)
/// are refused.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// Network-order bytes, always 16.
    public let bytes: [UInt8]

    /// Whether this is an IPv4 address (held as IPv4-mapped IPv6).
    public var isIPv4: Bool {
        bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
    }

    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self.bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + bytes
        case 16: self.bytes = bytes
        default: return nil
        }
    }

    /// Parses a textual IPv4 (`192.0.2.1`) or IPv6 (`2001:db8::1`, `::ffff:192.0.2.1`) address.
    /// Brackets are accepted around IPv6 (`[::1]`), as in `X-Forwarded-For` from some proxies.
    public init?(_ text: String) {
        var text = text
        if text.hasPrefix("[") && text.hasSuffix("]") {
            text = String(text.dropFirst().dropLast())
        }
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        if text.contains(":") {
            var storage = in6_addr()
            guard inet_pton(AF_INET6, text, &storage) == 1 else { return nil }
            let raw = withUnsafeBytes(of: &storage) { Array($0) }
            self.init(bytes: raw)
        } else {
            var storage = in_addr()
            guard inet_pton(AF_INET, text, &storage) == 1 else { return nil }
            let raw = withUnsafeBytes(of: &storage) { Array($0) }
            self.init(bytes: raw)
        }
    }

    public var description: String {
        if isIPv4 {
            return bytes[12..<16].map(String.init).joined(separator: ".")
        }
        var storage = in6_addr()
        withUnsafeMutableBytes(of: &storage) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &storage, &buffer, socklen_t(buffer.count)) != nil else {
            return bytes.map { String($0, radix: 16) }.joined(separator: ":")
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
