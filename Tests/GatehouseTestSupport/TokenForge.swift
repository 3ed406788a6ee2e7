import Crypto
import Foundation

/// Builds JSON Web Tokens by hand, for tests that must present forged, tampered and re-signed
/// tokens (Gatehouse itself signs through jwt-kit).
public enum TokenForge {
    public static func b64url(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func b64urlJSON(_ object: [String: Any]) -> String {
        b64url((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    public static func decode(_ part: Substring) -> [String: Any] {
        var s = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return (try? JSONSerialization.jsonObject(with: Data(base64Encoded: s) ?? Data())) as? [String: Any] ?? [:]
    }

    /// A token with this header and payload, signed with `secret` under `algorithm` (nil: unsigned).
    public static func forge(header: [String: Any], payload: [String: Any], secret: [UInt8]?, sha512: Bool = false) -> String {
        let input = b64urlJSON(header) + "." + b64urlJSON(payload)
        guard let secret else { return input + "." }
        let key = SymmetricKey(data: secret)
        let mac: [UInt8] = sha512
            ? Array(HMAC<SHA512>.authenticationCode(for: Array(input.utf8), using: key))
            : Array(HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: key))
        return input + "." + b64url(mac)
    }

}
