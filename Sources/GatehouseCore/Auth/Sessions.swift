import Foundation

/// How long browser sign-ins last (`sessions:` in the config).
public struct SessionPolicy: Sendable, Hashable {
    /// A session unused for this long has ended (`idle_timeout`, default 1d).
    public var idleTimeout: ConfigDuration = .seconds(86400)
    /// The absolute end of a session opened with "remember me" (`lifetime`, default 7d); its
    /// cookie is persistent and lasts as long.
    public var rememberLifetime: ConfigDuration = .seconds(7 * 86400)
    /// The absolute end of one opened without it (`short_lifetime`, default 12h); its cookie
    /// ends with the browser.
    public var shortLifetime: ConfigDuration = .seconds(12 * 3600)
    /// `last_seen` is written at most this often per session: idle expiry is accurate to it,
    /// and a busy browser does not turn every request into a write.
    public var touchInterval: TimeInterval = 60

    public init() {}

    public func lifetime(remember: Bool) -> TimeInterval {
        TimeInterval(remember ? rememberLifetime.seconds : shortLifetime.seconds)
    }

    /// Whether `session` is still alive at `now`.
    public func isAlive(_ session: SessionRecord, now: Date) -> Bool {
        now < session.expires && now.timeIntervalSince(session.lastSeen) < TimeInterval(idleTimeout.seconds)
    }

    /// Whether a request at `now` should record itself as the session's last use.
    public func needsTouch(_ session: SessionRecord, now: Date) -> Bool {
        now.timeIntervalSince(session.lastSeen) >= touchInterval
    }
}

/// The `gatehouse_session` cookie: reading it from requests, writing it into responses.
///
/// Guarantees: the value is a fresh 256-bit random secret at every sign-in (a cookie set before
/// sign-in is never promoted: no fixation); the cookie is `HttpOnly; SameSite=Lax; Path=/`, and
/// `Secure` whenever the client reached Gatehouse over HTTPS.
public enum SessionCookie {
    public static let name = "gatehouse_session"

    /// Every `gatehouse_session` value in the request's `Cookie` headers.
    public static func values(in head: RequestHead) -> [String] {
        var found: [String] = []
        for header in head.values(.cookie) {
            forEachPair(in: header) { _, value in
                if let value { found.append(String(value)) }
            }
        }
        return found
    }

    /// A `Cookie` header value without Gatehouse's cookie; nil when nothing else is left.
    ///
    /// Removed in every spelling a device's cookie parser might read as Gatehouse's cookie, not
    /// only the one Gatehouse sets: any case (`GATEHOUSE_SESSION`), quoted or padded names,
    /// percent-encoded names (`gatehouse%5Fsession`), `.`, `-`, `+`, `[` or a space for the `_`
    /// (PHP reads those as `_`), a pair without `=`, pairs joined by `,` instead of `;`
    /// (`a=1, gatehouse_session=…`, as some proxies and old parsers join cookies), and pairs joined
    /// by whitespace (`a=1 gatehouse_session=…`, which Python's `SimpleCookie` splits) — there,
    /// everything from Gatehouse's name to the next `,` goes, so a value after a spaced `=` goes too.
    public static func removing(from cookieHeader: String) -> String? {
        var kept: [String] = []
        var removed = false
        forEachPair(in: cookieHeader) { pair, _ in
            if isOwnSpelling(pair) {
                removed = true
                return
            }
            guard pair.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == 0x20 || $0 == 0x09 }) else {
                if !pair.isEmpty { kept.append(String(pair)) }
                return
            }
            var parts: [String] = []
            var cut = false
            for part in pair.split(separator: ",", omittingEmptySubsequences: false) {
                if isOwnSpelling(part) {
                    cut = true
                    continue
                }
                let words = part.split(whereSeparator: { $0 == " " || $0 == "\t" })
                if let own = words.firstIndex(where: { isOwnSpelling($0) }) {
                    cut = true
                    let before = words[..<own].joined(separator: " ")
                    if !before.isEmpty { parts.append(before) }
                } else {
                    parts.append(part.trimmingASCIIWhitespace())
                }
            }
            guard cut else {
                kept.append(String(pair))  // a value that holds a comma or a space, untouched
                return
            }
            removed = true
            let joined = parts.filter { !$0.isEmpty }.joined(separator: ", ")
            if !joined.isEmpty { kept.append(joined) }
        }
        if !removed && kept.count == 1 && kept[0].utf8.count == cookieHeader.utf8.count { return cookieHeader }
        return kept.isEmpty ? nil : kept.joined(separator: "; ")
    }

    /// Whether one cookie pair's name, however spelled, reads as ``name`` to some cookie parser.
    static func isOwnSpelling(_ pair: Substring) -> Bool {
        let rawName = pair.utf8.firstIndex(of: UInt8(ascii: "=")).map { pair[..<$0] } ?? pair
        var bytes = Array(percentDecode(rawName).utf8)
        let padding: Set<UInt8> = [0x20, 0x09, UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "$")]
        while let first = bytes.first, padding.contains(first) { bytes.removeFirst() }
        while let last = bytes.last, padding.contains(last) { bytes.removeLast() }
        guard bytes.count == name.utf8.count else { return false }
        for (b, wanted) in zip(bytes, name.utf8) {
            let folded: UInt8
            switch b {
            case UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "["), 0x20: folded = UInt8(ascii: "_")
            case 0x41...0x5A: folded = b | 0x20
            default: folded = b
            }
            if folded != wanted { return false }
        }
        return true
    }

    /// Calls `body` with each `;`-separated pair of a `Cookie` header, trimmed of spaces and tabs,
    /// and its value when the pair is Gatehouse's cookie (nil otherwise). Byte scans only: every
    /// boundary is an ASCII byte, so every slice is on a character boundary.
    private static func forEachPair(in header: String, _ body: (Substring, Substring?) -> Void) {
        let isBlank = { (b: UInt8) in b == 0x20 || b == 0x09 }
        let bytes = header.utf8
        var start = bytes.startIndex
        while start <= bytes.endIndex {
            let end = bytes[start...].firstIndex(of: UInt8(ascii: ";")) ?? bytes.endIndex
            var first = start
            while first < end, isBlank(bytes[first]) { first = bytes.index(after: first) }
            var last = end
            while last > first, isBlank(bytes[bytes.index(before: last)]) { last = bytes.index(before: last) }
            let pair = header[first..<last]
            body(pair, ownValue(pair))
            guard end < bytes.endIndex else { break }
            start = bytes.index(after: end)
        }
    }

    /// The value when `pair` (one trimmed `name=value` of a `Cookie` header) is Gatehouse's cookie.
    private static func ownValue(_ pair: Substring) -> Substring? {
        let bytes = pair.utf8
        guard let eq = bytes.firstIndex(of: UInt8(ascii: "=")) else { return nil }
        var nameEnd = eq
        while nameEnd > bytes.startIndex, bytes[bytes.index(before: nameEnd)] == 0x20 || bytes[bytes.index(before: nameEnd)] == 0x09 {
            nameEnd = bytes.index(before: nameEnd)
        }
        guard bytes[bytes.startIndex..<nameEnd].elementsEqual(name.utf8) else { return nil }
        var valueStart = bytes.index(after: eq)
        while valueStart < bytes.endIndex, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart = bytes.index(after: valueStart) }
        return pair[valueStart...]
    }

    /// The `Set-Cookie` value that starts a session.
    public static func setting(_ secret: String, maxAge: TimeInterval?, secure: Bool) -> String {
        var value = "\(name)=\(secret); Path=/; HttpOnly; SameSite=Lax"
        if let maxAge { value += "; Max-Age=\(Int(maxAge))" }
        if secure { value += "; Secure" }
        return value
    }

    /// The `Set-Cookie` value that removes it from the browser.
    public static func clearing(secure: Bool) -> String {
        "\(name)=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0" + (secure ? "; Secure" : "")
    }
}

/// Fresh high-entropy secrets: session ids, one-shot tokens, token ids.
public enum RandomSecret {
    /// 256 bits from the system's secure generator, base64url without padding (43 characters).
    public static func make() -> String { APIKeyGenerator.generate() }
}

extension SessionPolicy {
    /// `sessions:`.
    mutating func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) {
        let m = try reader.mapping(value, known: ["idle_timeout", "lifetime", "short_lifetime"])
        if let x = m["idle_timeout"] { self.idleTimeout = try reader.positiveDuration(x) }
        if let x = m["lifetime"] { self.rememberLifetime = try reader.positiveDuration(x) }
        if let x = m["short_lifetime"] { self.shortLifetime = try reader.positiveDuration(x) }
    }
}
