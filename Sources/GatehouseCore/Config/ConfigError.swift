/// A configuration problem, located: `config.yml:14: api_keys[2].expires: expected a date like …`.
///
/// Guarantees: ``description`` always names the file and, when the problem sits at a place in
/// the file, its line and key path; it never contains a secret from the file (values are quoted
/// only for keys that are not secret).
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    public let file: String
    /// 1-based; nil when the problem is not at one place (e.g. the file cannot be read).
    public let line: Int?
    /// `api_keys[2].expires`; empty for the document itself.
    public let keyPath: String
    public let message: String

    public init(file: String, line: Int?, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        var out = file
        if let line { out += ":\(line)" }
        out += ": "
        if !keyPath.isEmpty { out += keyPath + ": " }
        return out + message
    }
}
