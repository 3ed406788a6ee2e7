import Foundation

/// Which paths of the device's own API Gatehouse answers itself.
///
/// Guarantees: a claimed path never reaches the device; nothing is claimed unless its setting
/// is on; the claim is by exact path or whole segments, on the normalized path.
public struct DevicePaths: Sendable {
    /// Moonraker's `GET /access/oneshot_token`.
    public let moonrakerOneshot: Bool
    /// OctoPrint's `/plugin/appkeys/...` pairing.
    public let octoPrintAppKeys: Bool

    public static let moonrakerOneshotPath = "/access/oneshot_token"
    public static let appKeysPrefix = "/plugin/appkeys"

    public init(moonrakerOneshot: Bool, octoPrintAppKeys: Bool) {
        self.moonrakerOneshot = moonrakerOneshot
        self.octoPrintAppKeys = octoPrintAppKeys
    }

    /// Whether Gatehouse answers `path` (normalized) itself.
    public func claims(_ path: String) -> Bool {
        (moonrakerOneshot && path.bytesEqual(Self.moonrakerOneshotPath))
            || (octoPrintAppKeys && PathBytes.isUnder(path, prefix: Self.appKeysPrefix))
    }

    /// `path` for the access log: under `/plugin/appkeys/` only the first segment is kept
    /// (`/plugin/appkeys/request/…`), since the next one is a pairing token — Gatehouse's or,
    /// with the pairing left to OctoPrint, OctoPrint's. Whoever reads the log must not be able to
    /// collect a key with it.
    public static func withoutTokens(_ path: String) -> String {
        guard PathBytes.isUnder(path, prefix: appKeysPrefix) else { return path }
        let rest = path.utf8.dropFirst(appKeysPrefix.utf8.count + 1)
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return path }
        return String(decoding: path.utf8[..<slash], as: UTF8.self) + "/…"
    }
}
