/// The `public_paths` shorthand: path prefixes that pass without authentication.
///
/// Guarantees:
/// - A prefix matches on segment boundaries: `/static` matches `/static` and `/static/app.js`,
///   never `/staticsecret`; `/static/` matches only below it.
/// - A path that is not already in canonical form — dot segments, `//`, any `%` escape of `.`,
///   `/` or `\`, a backslash, or a control byte — is never public, because the device might
///   resolve it to a protected path that the prefix check did not see. Such a request needs a
///   credential like any other. (Full normalization comes with the access rules.)
public struct PublicPaths: Sendable {
    public let prefixes: [String]

    public init(prefixes: [String]) { self.prefixes = prefixes }

    public func isPublic(path: String) -> Bool {
        guard !prefixes.isEmpty, Self.isCanonical(path) else { return false }
        return prefixes.contains { prefix in
            if prefix.hasSuffix("/") { return path.hasPrefix(prefix) }
            return path == prefix || path.hasPrefix(prefix + "/")
        }
    }

    static func isCanonical(_ path: String) -> Bool {
        guard path.hasPrefix("/") else { return false }
        let bytes = Array(path.utf8)
        for (i, b) in bytes.enumerated() {
            if b < 0x20 || b == 0x7F || b == UInt8(ascii: "\\") { return false }
            if b == UInt8(ascii: "%") {
                let escape = bytes.dropFirst(i + 1).prefix(2).map { $0 | 0x20 }
                if escape == Array("2e".utf8) || escape == Array("2f".utf8) || escape == Array("5c".utf8) { return false }
            }
        }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            if segment == "." || segment == ".." { return false }
        }
        return !path.contains("//")
    }
}
