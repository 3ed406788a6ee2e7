/// Which paths a rule covers.
public enum PathPattern: Sendable, Hashable, CustomStringConvertible {
    /// Exactly this path.
    case exact(String)
    /// This path and everything below it, on segment boundaries: `/static` covers `/static` and
    /// `/static/app.js`, never `/staticsecret`; `/static/` covers only what is below it.
    case prefix(String)
    /// `*` stands for any characters within one segment, `**` for any characters across segments
    /// (`/files/**/*.gcode`, `/api/**`).
    case glob(String)

    public var description: String {
        switch self {
        case .exact(let p): return "path \(p)"
        case .prefix(let p): return "prefix \(p)"
        case .glob(let p): return "glob \(p)"
        }
    }

    /// Compared byte for byte, as the device will read the path: Swift's `==` and `hasPrefix` on
    /// `String` follow Unicode (canonical equivalence, grapheme clusters — `/` followed by a
    /// combining mark is one character that is not `/`), which would let `/admin/\u{30C}x` slip
    /// past `prefix: /admin` while the device routes it under `/admin/`.
    func matches(_ path: String) -> Bool {
        switch self {
        case .exact(let p): return path.bytesEqual(p)
        case .prefix(let p): return PathBytes.isUnder(path, prefix: p)
        case .glob(let p): return Glob.matches(Array(p.utf8)[...], Array(path.utf8)[...])
        }
    }

    func lowercased() -> PathPattern {
        switch self {
        case .exact(let p): return .exact(p.asciiLowercased())
        case .prefix(let p): return .prefix(p.asciiLowercased())
        case .glob(let p): return .glob(p.asciiLowercased())
        }
    }
}

/// What a matching rule decides.
public enum AccessDecision: Sendable, Hashable, CustomStringConvertible {
    /// No credential needed (a credential that is presented and valid still identifies the caller).
    case open
    /// Any authenticated identity.
    case authenticated
    /// An identity holding any of these roles.
    case roles([String])
    /// Nobody: 403 before any credential is looked at.
    case deny

    public var description: String {
        switch self {
        case .open: return "public"
        case .authenticated: return "authenticated"
        case .roles(let roles): return "roles [\(roles.joined(separator: ", "))]"
        case .deny: return "deny"
        }
    }
}

/// A credential that Gatehouse reads from the query string only where a rule allows it.
public enum QueryCredential: String, Sendable, Hashable, CaseIterable {
    /// `?apikey=` (OctoPrint's), off unless `query_api_key: true` or a rule names it.
    case apiKey = "apikey"
}

/// One entry of `access_rules:`.
public struct AccessRule: Sendable, Hashable, CustomStringConvertible {
    public var pattern: PathPattern
    /// Upper-case method names; nil: every method.
    public var methods: Set<String>?
    /// Lower-case host name without port; nil: every host.
    public var host: String?
    /// Match the path without regard to ASCII case (for devices whose paths are case-insensitive).
    public var caseInsensitive: Bool
    public var decision: AccessDecision
    /// Query credentials accepted on the paths this rule covers.
    public var queryCredentials: Set<QueryCredential>
    /// Where it stands in the config file, for messages.
    public var line: Int?

    public init(
        pattern: PathPattern, methods: Set<String>? = nil, host: String? = nil, caseInsensitive: Bool = false,
        decision: AccessDecision, queryCredentials: Set<QueryCredential> = [], line: Int? = nil
    ) {
        self.pattern = caseInsensitive ? pattern.lowercased() : pattern
        self.methods = methods
        self.host = host?.lowercased()
        self.caseInsensitive = caseInsensitive
        self.decision = decision
        self.queryCredentials = queryCredentials
        self.line = line
    }

    /// Whether the rule covers a request; `path` is the matching form from ``AccessPolicy/matchingPath(_:)``.
    public func matches(method: String, host requestHost: String?, path: String) -> Bool {
        if let methods, !methods.contains(method) { return false }
        if let host {
            guard let requestHost, AccessPolicy.hostName(requestHost) == host else { return false }
        }
        return pattern.matches(caseInsensitive ? path.asciiLowercased() : path)
    }

    public var description: String {
        var text = pattern.description
        if let methods { text += " methods [\(methods.sorted().joined(separator: ", "))]" }
        if let host { text += " host \(host)" }
        if caseInsensitive { text += " (any case)" }
        return text + " → " + decision.description
    }

    /// Whether every request this rule covers is covered by `earlier` too (so this one can never
    /// decide). Conservative: false when unsure.
    public func isShadowed(by earlier: AccessRule) -> Bool {
        if let mine = methods {
            if let theirs = earlier.methods, !mine.isSubset(of: theirs) { return false }
        } else if earlier.methods != nil {
            return false
        }
        if let theirs = earlier.host, theirs != host { return false }
        if earlier.caseInsensitive != caseInsensitive && !earlier.caseInsensitive { return false }
        let theirPattern = earlier.pattern
        switch pattern {
        case .exact(let p): return theirPattern.matches(earlier.caseInsensitive ? p.asciiLowercased() : p)
        case .prefix(let p):
            switch theirPattern {
            case .prefix(let q):
                return PathBytes.isUnder(earlier.caseInsensitive ? p.asciiLowercased() : p, prefix: q)
            case .glob(let q):
                // `/a/**` covers every prefix below `/a/`.
                guard q.hasSuffix("/**"), !q.dropLast(3).contains("*") else { return q == "/**" }
                let base = String(q.dropLast(2))
                return (p.hasSuffix("/") ? p : p + "/").hasBytePrefix(base) && !p.bytesEqual(String(base.dropLast()))
            case .exact: return false
            }
        case .glob(let p):
            if case .glob(let q) = theirPattern {
                if q == "/**" { return true }
                return q == p
            }
            return false
        }
    }
}

/// The ordered `access_rules:`: the first rule that covers a request decides; when none does,
/// any authenticated identity may pass.
///
/// Guarantees: rules see the path after ``PathNormalizer`` (the path the device receives), with
/// `;` parameters cut from each segment (`/admin;x=1` and `/admin%3Bx=1` are matched as
/// `/admin`), so a server that ignores such parameters cannot be reached around a rule; a path
/// that holds `;` (or `%3B`) is never public, and neither is a path that is not in normal form. Hosts are compared without case and
/// without port.
public struct AccessPolicy: Sendable, Hashable {
    public let rules: [AccessRule]

    public init(rules: [AccessRule]) { self.rules = rules }

    /// The rule that decides, with its position; nil when none covers the request.
    public func rule(method: String, host: String?, path: String) -> (index: Int, rule: AccessRule)? {
        let matching = Self.matchingPath(path)
        for (index, rule) in rules.enumerated() where rule.matches(method: method, host: host, path: matching) {
            return (index, rule)
        }
        return nil
    }

    /// What the request needs: the first covering rule's decision (a public one downgraded to
    /// `authenticated` when the path holds `;` or is not in normal form), else `authenticated`.
    public func decision(method: String, host: String?, path: String) -> AccessDecision {
        decide(method: method, host: host, path: path).decision
    }

    /// The covering rule (nil: none) and what the request needs, from one pass over the rules.
    public func decide(method: String, host: String?, path: String) -> (rule: AccessRule?, decision: AccessDecision) {
        guard let (_, rule) = rule(method: method, host: host, path: path) else { return (nil, .authenticated) }
        // Never public unless the path is exactly in the form the rules are written for (the
        // server normalizes first; this also holds for any caller that forgot to).
        if rule.decision == .open, Self.holdsParameters(path) || !PathNormalizer.isNormal(path) {
            return (rule, .authenticated)
        }
        return (rule, rule.decision)
    }

    /// Rules that an earlier rule covers completely: (the shadowed rule's index, the earlier one's).
    public func shadowedRules() -> [(rule: Int, by: Int)] {
        var found: [(Int, Int)] = []
        for (i, rule) in rules.enumerated() {
            if let j = rules[..<i].firstIndex(where: { rule.isShadowed(by: $0) }) { found.append((i, j)) }
        }
        return found
    }

    /// `path` with every segment's `;` parameters removed (from its first `;` or `%3B`).
    public static func matchingPath(_ path: String) -> String {
        guard holdsParameters(path) else { return path }
        // Split on bytes: a `/` or `;` followed by a combining mark is still a separator to the device.
        let bytes = Array(path.utf8)
        let segments = bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { segment in
            PathNormalizer.parameterStart(segment).map { segment[segment.startIndex..<$0] } ?? segment
        }
        return String(decoding: Array(segments.joined(separator: [UInt8(ascii: "/")])), as: UTF8.self)
    }

    /// Whether some segment of `path` has `;` parameters (`;` or `%3B`).
    static func holdsParameters(_ path: String) -> Bool {
        var previousPercent = 0
        for b in path.utf8 {
            if b == UInt8(ascii: ";") { return true }
            switch previousPercent {
            case 1: previousPercent = b == UInt8(ascii: "3") ? 2 : 0
            case 2: if b | 0x20 == UInt8(ascii: "b") { return true } else { previousPercent = 0 }
            default: break
            }
            if b == UInt8(ascii: "%") { previousPercent = 1 }
        }
        return false
    }

    /// A `Host` header's name: lower case, without port (IPv6 literals keep their brackets).
    static func hostName(_ host: String) -> String {
        let lower = host.lowercased()
        if lower.hasPrefix("[") { return lower.split(separator: "]", maxSplits: 1).first.map { $0 + "]" } ?? lower }
        return lower.split(separator: ":", maxSplits: 1).first.map(String.init) ?? lower
    }
}

/// `*` and `**` matching over bytes, in time proportional to pattern length × path length (a
/// set of reachable path positions is carried through the pattern; no backtracking, so no path
/// can make a rule slow).
enum Glob {
    static func matches(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        let t = Array(text)
        let p = Array(pattern)
        let slash = UInt8(ascii: "/")
        let star = UInt8(ascii: "*")
        var reachable = [Bool](repeating: false, count: t.count + 1)
        reachable[0] = true
        var beforeDoubleStar: [Bool]?  // set while `/**/` may also match a single `/`
        var k = 0
        while k < p.count {
            if p[k] == star {
                let double = k + 1 < p.count && p[k + 1] == star
                let before = reachable
                for j in 1...max(t.count, 1) where j <= t.count {
                    if !reachable[j] && reachable[j - 1] && (double || t[j - 1] != slash) { reachable[j] = true }
                }
                k += double ? 2 : 1
                beforeDoubleStar = double && k < p.count && p[k] == slash ? before : nil
                continue
            }
            var next = [Bool](repeating: false, count: t.count + 1)
            for j in 0..<t.count where reachable[j] && t[j] == p[k] { next[j + 1] = true }
            if p[k] == slash, let before = beforeDoubleStar {
                for j in 0...t.count where before[j] { next[j] = true }
            }
            beforeDoubleStar = nil
            reachable = next
            k += 1
        }
        return reachable[t.count]
    }
}

/// Path comparisons on UTF-8 bytes, the way the device reads them.
public enum PathBytes {
    /// `path` is `prefix` or lies below it: with a trailing `/` in `prefix`, a byte prefix;
    /// without, the same path or one continuing with `/`.
    public static func isUnder(_ path: String, prefix: String) -> Bool {
        if prefix.utf8.last == UInt8(ascii: "/") { return path.hasBytePrefix(prefix) }
        guard path.hasBytePrefix(prefix) else { return false }
        let rest = path.utf8.dropFirst(prefix.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }
}

extension String {
    /// A prefix of the UTF-8 bytes (no Unicode equivalence, no grapheme clustering).
    public func hasBytePrefix(_ prefix: String) -> Bool { utf8.starts(with: prefix.utf8) }
    /// The same UTF-8 bytes.
    public func bytesEqual(_ other: String) -> Bool { utf8.elementsEqual(other.utf8) }
    /// `A`-`Z` lowered, every other byte kept (Unicode case mapping would make different device
    /// paths match one rule: the Kelvin sign lowers to `k`).
    public func asciiLowercased() -> String {
        String(decoding: utf8.map { ($0 >= 0x41 && $0 <= 0x5A) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}

extension AccessRule {
    /// `access_rules:`, in order.
    static func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) -> [AccessRule] {
        var out: [AccessRule] = []
        for item in try reader.list(value) {
            let m = try reader.mapping(item, known: ["path", "prefix", "glob", "methods", "host", "case_insensitive", "access", "roles", "query_credentials"])
            let patterns = ["path", "prefix", "glob"].compactMap { key in m[key].map { (key, $0) } }
            guard patterns.count == 1, let (kind, patternValue) = patterns.first else {
                throw reader.fail(item, "a rule needs exactly one of path (exact), prefix or glob")
            }
            let text = try reader.string(patternValue)
            let pattern: PathPattern
            switch kind {
            case "glob":
                guard !text.contains("***"), PathNormalizer.isNormal(text) else {
                    throw reader.fail(patternValue, "expected a path starting with / in normal form, with * (one segment) or ** (any depth)")
                }
                pattern = .glob(text)
            default:
                guard PathNormalizer.isNormal(text), !text.contains("*") else {
                    throw reader.fail(patternValue, "expected a path starting with / in normal form (no dot segments, //, %2F or lower-case escapes)")
                }
                pattern = kind == "path" ? .exact(text) : .prefix(text)
            }
            let decision: AccessDecision
            switch (m["access"], m["roles"]) {
            case (let a?, nil):
                switch try reader.string(a) {
                case "public": decision = .open
                case "authenticated": decision = .authenticated
                case "deny": decision = .deny
                default: throw reader.fail(a, "expected public, authenticated or deny (or roles: [...] instead of access)")
                }
            case (nil, let r?):
                let roles = try reader.names(r, what: "role")
                guard !roles.isEmpty else { throw reader.fail(r, "name at least one role") }
                decision = .roles(roles)
            default:
                throw reader.fail(item, "a rule needs exactly one of access (public, authenticated, deny) or roles")
            }
            var methods: Set<String>?
            if let v = m["methods"] {
                var set: Set<String> = []
                for method in try reader.list(v) {
                    let text = try reader.string(method)
                    guard !text.isEmpty, text.utf8.count <= 20, text.utf8.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D }) else {
                        throw reader.fail(method, "expected an upper-case method name like GET")
                    }
                    set.insert(text)
                }
                guard !set.isEmpty else { throw reader.fail(v, "name at least one method, or leave methods out for all") }
                methods = set
            }
            var host: String?
            if let v = m["host"] {
                let text = try reader.string(v)
                guard !text.isEmpty, !text.contains(":"),
                    text.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x2E })
                else {
                    throw reader.fail(v, "expected a host name without port, like printer.local")
                }
                host = text
            }
            var query: Set<QueryCredential> = []
            if let v = m["query_credentials"] {
                for credential in try reader.list(v) {
                    guard let c = QueryCredential(rawValue: try reader.string(credential)) else {
                        throw reader.fail(credential, "expected apikey (?token= one-shot tokens are accepted everywhere)")
                    }
                    query.insert(c)
                }
            }
            let caseInsensitive = try m["case_insensitive"].map { v throws(ConfigError) in try reader.bool(v) } ?? false
            out.append(AccessRule(
                pattern: pattern, methods: methods, host: host, caseInsensitive: caseInsensitive, decision: decision,
                queryCredentials: query, line: item.line))
        }
        return out
    }
}
