/// A length of time written in the config as `30s`, `5m`, `1h`, `7d` (or `0`).
///
/// Guarantees: the value is never negative and never overflows; the textual form
/// round-trips through ``description``. Fractions and combined units (`1h30m`) are refused
/// rather than guessed at.
public struct ConfigDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Whole seconds.
    public let seconds: Int64

    public init(seconds: Int64) {
        precondition(seconds >= 0, "a duration is never negative")
        self.seconds = seconds
    }

    public static func seconds(_ s: Int64) -> ConfigDuration { ConfigDuration(seconds: s) }
    public static func minutes(_ m: Int64) -> ConfigDuration { ConfigDuration(seconds: m * 60) }
    public static let zero = ConfigDuration(seconds: 0)

    /// Parses `30s`, `5m`, `1h`, `7d` or `0`; nil when the text is anything else.
    public init?(parsing text: String) {
        let trimmed = text.trimmingASCIIWhitespace()
        if trimmed == "0" {
            self.seconds = 0
            return
        }
        guard let unit = trimmed.last, trimmed.count >= 2 else { return nil }
        let digits = trimmed.dropLast()
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), digits.count <= 12,
            let amount = Int64(digits)
        else { return nil }
        let multiplier: Int64
        switch unit {
        case "s": multiplier = 1
        case "m": multiplier = 60
        case "h": multiplier = 3600
        case "d": multiplier = 86400
        default: return nil
        }
        self.seconds = amount * multiplier
    }

    public var description: String {
        if seconds == 0 { return "0" }
        if seconds % 86400 == 0 { return "\(seconds / 86400)d" }
        if seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    public static func < (lhs: ConfigDuration, rhs: ConfigDuration) -> Bool { lhs.seconds < rhs.seconds }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and horizontal tabs (HTTP's OWS).
    func trimmingASCIIWhitespace() -> String {
        let isBlank = { (b: UInt8) in b == 0x20 || b == 0x09 }
        let text = Substring(self)
        // The common case: nothing to trim (a whole String comes back without a copy).
        if let first = text.utf8.first, let last = text.utf8.last, !isBlank(first), !isBlank(last) { return String(text) }
        guard let first = text.utf8.firstIndex(where: { !isBlank($0) }), let last = text.utf8.lastIndex(where: { !isBlank($0) }) else {
            return ""
        }
        return String(text[first...last])
    }
}
