import Foundation

/// Dates as Gatehouse reads and writes them everywhere (config, JSON API, command line):
/// RFC 3339 / ISO 8601 internet date-time, like `2027-01-31T00:00:00Z`.
public enum InternetDate {
    /// The date, or nil when `text` is not an internet date-time.
    public static func parse(_ text: String) -> Date? { formatter().date(from: text) }

    public static func format(_ date: Date) -> String { formatter().string(from: date) }

    // A new formatter per call: ISO8601DateFormatter is not Sendable, and these calls are rare.
    private static func formatter() -> ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter
    }
}
