import Crypto
import Foundation
import GatehouseCore

/// The properties the fuzz targets (`Fuzz/`) check on arbitrary bytes, shared with the test
/// suite, which runs every kept input (`Fuzz/Regressions/`) through the same checks.
///
/// Guarantees: each check returns nil when the code under test behaved — it answered (a value or
/// a typed refusal) and the answer has the property stated — and otherwise a sentence saying
/// what went wrong. A crash inside the code under test is a crash here too (that is what the
/// fuzzer looks for); a property violation is reported, and the fuzz targets turn it into a
/// trap so that libFuzzer keeps the input.
public enum FuzzChecks {
    /// The config loader: any text gives a config or a ``ConfigError`` with a message, and a
    /// line, when it has one, inside the text.
    public static func configLoader(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            _ = try ConfigLoader.parse(yaml: text, fileName: "fuzz.yml")
            return nil
        } catch {
            return problem(with: error, in: text)
        }
    }

    /// What is wrong with `error` as the answer to `text`: no message, or a line outside the text.
    public static func problem(with error: ConfigError, in text: String) -> String? {
        if error.message.isEmpty { return "a config error without a message" }
        if let line = error.line {
            // Yams may point one line past the last for an error at the very end.
            let lines = yamlLineCount(text)
            if line < 1 || line > lines + 1 { return "config error at line \(line) of a \(lines)-line text: \(error)" }
        }
        return nil
    }

    /// Lines as YAML counts them: CR LF, a lone CR, LF, NEL, LS and PS each end one (an editor
    /// shows a lone CR as a line break too).
    static func yamlLineCount(_ text: String) -> Int {
        var lines = 1
        var previousCR = false
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: if !previousCR { lines += 1 }
            case 0x0D, 0x85, 0x2028, 0x2029: lines += 1
            default: break
            }
            previousCR = scalar.value == 0x0D
        }
        return lines
    }

    /// The path normalizer: a result is absolute, idempotent, and free of everything the
    /// normalizer promises to remove or refuse.
    public static func pathNormalizer(_ bytes: [UInt8]) -> String? {
        let path = String(decoding: bytes, as: UTF8.self)
        guard case .success(let normal) = PathNormalizer.normalize(path) else { return nil }
        return problem(withNormalized: normal, of: path)
    }

    /// What is wrong with `normal` as the normal form of `path`.
    public static func problem(withNormalized normal: String, of path: String) -> String? {
        // Bytes throughout: `/` followed by a combining mark is one Swift Character (not "/"),
        // but still a separator to the device.
        guard normal.utf8.first == UInt8(ascii: "/") else { return "\(debug(path)) normalized to a relative \(debug(normal))" }
        guard case .success(let again) = PathNormalizer.normalize(normal), again.bytesEqual(normal) else {
            return "normalizing \(debug(normal)) again changes it"
        }
        let segments = normal.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        if segments.dropLast().contains(where: \.isEmpty) { return "\(debug(normal)) keeps an empty segment (//)" }
        if segments.contains(where: { $0.elementsEqual(".".utf8) || $0.elementsEqual("..".utf8) }) { return "\(debug(normal)) keeps a dot segment" }
        // Every `/`-bounded byte prefix of the path covers it, as a prefix rule must.
        for (index, byte) in normal.utf8.enumerated() where byte == UInt8(ascii: "/") && index > 0 {
            let prefix = String(decoding: normal.utf8.prefix(index), as: UTF8.self)
            if !PathBytes.isUnder(normal, prefix: prefix) { return "\(debug(normal)) is not under its own prefix \(debug(prefix))" }
        }
        let upper = normal.uppercased()
        for forbidden in ["%2F", "%5C", "\\", "%00", "%2E"] where upper.contains(forbidden) {
            return "\(debug(normal)) still holds \(forbidden)"
        }
        if normal.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "\(debug(normal)) holds a control byte" }
        // The rules see the path with `;` parameters cut; a server that cuts them too must see
        // the same segments: none may become empty or a dot segment by the cut.
        let matching = AccessPolicy.matchingPath(normal)
        let cutSegments = matching.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        if cutSegments.count != segments.count { return "cutting the parameters of \(debug(normal)) changed its segments" }
        for (cut, whole) in zip(cutSegments, segments) where cut.count != whole.count {
            if cut.isEmpty || cut.elementsEqual(".".utf8) || cut.elementsEqual("..".utf8) {
                return "\(debug(normal)) holds a segment that is empty or a dot segment once its ; parameters are cut"
            }
        }
        return nil
    }

    /// The credential parsers: the request's headers (one `name: value` per line; a line
    /// `?query` is the query string) through ``CredentialExtractor`` with every source enabled.
    /// Found credentials are never empty; a Basic credential decodes to what Foundation's base64
    /// decoder reads from the same header, with no control characters; the session cookie's
    /// removal leaves no `gatehouse_session`.
    public static func credentialParsers(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        var headers: [(name: String, value: String)] = []
        var query: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("?") { query = String(line.dropFirst()); continue }
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
        }
        // Lines that could not arrive in a request (control bytes, framing) are never read.
        guard let head = try? RequestHead(method: "GET", uri: "/", versionMinor: 0, headers: headers) else { return nil }
        headers = head.headerStrings
        let extractor = CredentialExtractor(queryAPIKeyEnabled: true, basicAuthEnabled: true)
        if case .success(let found) = extractor.extract(head, query: QueryString(query)) {
            for credential in found {
                if credential.secret.isEmpty { return "an empty \(credential.source.rawValue) credential" }
                guard let user = credential.basicUser else { continue }
                if (user + credential.secret).unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
                    return "a Basic credential with a control character"
                }
                for (name, value) in headers where name.lowercased() == "authorization" {
                    if let problem = problem(withBasic: user, credential.secret, from: value) { return problem }
                }
            }
        }
        for (name, value) in headers where name.lowercased() == "cookie" {
            if let rest = SessionCookie.removing(from: value),
                let remaining = try? RequestHead(method: "GET", uri: "/", versionMinor: 0, headers: [("Cookie", rest)]),
                !SessionCookie.values(in: remaining).isEmpty
            {
                return "the session cookie survives its removal from \(debug(value))"
            }
        }
        return nil
    }

    /// What is wrong with `user`/`password` as the reading of the `Authorization` value
    /// `header`: it must be what Foundation's base64 decoder reads there (nil for other schemes).
    public static func problem(withBasic user: String, _ password: String, from header: String) -> String? {
        let parts = header.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count == 2, parts[0].lowercased() == "basic" else { return nil }
        var encoded = String(parts[1])
        while encoded.utf8.count % 4 != 0 { encoded += "=" }
        guard let data = Data(base64Encoded: encoded) else { return "Basic \(debug(String(parts[1]))) accepted, but it is not base64" }
        if Array(data) != Array((user + ":" + password).utf8) { return "Basic \(debug(String(parts[1]))) decoded differently from Foundation" }
        return nil
    }

    /// The JSON Web Token verifier. An input whose first byte is odd is split at its first `.`
    /// into header and payload JSON, which the check signs with the verifier's own secret, so
    /// that the header and claims rules are reached; otherwise the bytes are the token. A token
    /// that verifies has a valid HS256 signature by that secret, a header of only `alg: HS256`
    /// and `typ: JWT`, and a subject that is a valid name.
    public static func jsonWebToken(_ bytes: [UInt8]) -> String? {
        guard let first = bytes.first else { return nil }
        let token: String
        if first & 1 == 1 {
            let rest = bytes.dropFirst()
            let dot = rest.firstIndex(of: UInt8(ascii: ".")) ?? rest.endIndex
            let signingInput = base64URL(rest[..<dot]) + "." + base64URL(rest[dot...].dropFirst())
            token = signedWithTheFuzzingSecret(signingInput)
        } else {
            token = String(decoding: bytes.dropFirst(), as: UTF8.self)
        }
        return problem(verifying: token)
    }

    /// Verifies `token` with the fuzzing secret; what is wrong if it passed when it should not have.
    public static func problem(verifying token: String) -> String? {
        guard case .success(let verified) = verify(token) else { return nil }
        return problem(withVerified: token, subject: verified.username)
    }

    /// Whether the verifier accepts `token` (signed with the fuzzing secret) at the checks' fixed time.
    public static func verifies(_ token: String) -> Bool {
        if case .success = verify(token) { return true }
        return false
    }

    private static func verify(_ token: String) -> Result<VerifiedToken, AuthenticationFailure> {
        blocking { await fuzzAuthority.verify(token, now: Date(timeIntervalSince1970: 1_900_000_000)) }
    }

    /// What is wrong with `token` (for `subject`) having passed the verifier.
    public static func problem(withVerified token: String, subject: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return "a token of \(parts.count) parts verified" }
        guard token == signedWithTheFuzzingSecret(parts[0] + "." + parts[1]) else { return "a token verified whose signature is not HMAC-SHA256 by the secret" }
        guard let headerData = decodeBase64URL(String(parts[0])),
            let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any]
        else { return "a token verified whose header is not a JSON object" }
        guard header["alg"] as? String == "HS256", Set(header.keys).isSubset(of: ["alg", "typ"]) else {
            return "a token verified with header \(header)"
        }
        guard Identity.isValidName(subject) else { return "a token verified for the subject \(debug(subject))" }
        return nil
    }

    /// `signingInput` (`header.payload`, base64url) with its HS256 signature by the fuzzing secret.
    public static func signedWithTheFuzzingSecret(_ signingInput: String) -> String {
        signingInput + "." + base64URL(HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: fuzzSecret)))
    }

    /// base64url without padding, as in a JSON Web Token.
    public static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    private static let fuzzSecret: [UInt8] = Array("gatehouse fuzzing secret, not a real one".utf8)
    private static let fuzzAuthority = TokenAuthority(secret: fuzzSecret, settings: JWTSettings())

    private static func decodeBase64URL(_ text: String) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.utf8.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }

    /// Runs an async call to completion from synchronous code (libFuzzer's callback).
    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            box.value = await body()
            done.signal()
        }
        done.wait()
        return box.value!
    }

    private static func debug(_ text: String) -> String { String(reflecting: String(text.prefix(120))) }
}

/// Carries a value out of a task to a thread that waits on a semaphore (which orders the accesses).
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
