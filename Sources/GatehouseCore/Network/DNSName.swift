/// A host name as it may appear in a certificate or a TLS server name (RFC 1123 syntax).
///
/// Guarantees: only non-empty labels of ASCII letters, digits and hyphens, none starting or
/// ending with a hyphen and none longer than 63 bytes, at most 253 bytes in all, no leading or
/// trailing dot, and a last label that is not all digits (so a mistyped IP address such as
/// `192.168.1.500` is refused rather than taken for a name).
public enum DNSName {
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else { return false }
        let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for label in labels {
            guard !label.isEmpty, label.count <= 63,
                label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-"),
                label.allSatisfy({ isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "-") })
            else { return false }
        }
        return !(labels.last ?? []).allSatisfy(isDigit)
    }

    private static func isLetter(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) }
    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
}
