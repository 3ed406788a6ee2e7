/// What Gatehouse answers when it refuses something, whatever refused it — admission, the gate,
/// an own endpoint, the connection limit: the status, the `detail` sentence of the JSON body,
/// and the headers that status calls for. The one place a typed error becomes a response.
///
/// Guarantees: every 401 carries the `WWW-Authenticate: Bearer realm="gatehouse"` challenge;
/// every 429 (and a 503 that knows when to come back) carries `Retry-After`; the detail says
/// what was wrong and never repeats a credential.
public struct ErrorReply: Sendable, Hashable {
    public let status: Int
    public let detail: String
    public let headers: [HeaderField]

    /// - Parameter extra: headers the refusal itself adds (`Allow` on a 405).
    public init(status: Int, detail: String, retryAfter: Int? = nil, extra: [HeaderField] = []) {
        self.status = status
        self.detail = detail
        var headers = extra
        if status == 401 { headers.append(HeaderField("WWW-Authenticate", "Bearer realm=\"gatehouse\"")) }
        if let retryAfter { headers.append(HeaderField("Retry-After", String(retryAfter))) }
        self.headers = headers
    }

    public init(_ failure: AuthenticationFailure) {
        self.init(status: failure.status, detail: failure.detail, retryAfter: failure.retryAfter)
    }

    public init(_ error: AccountError) {
        self.init(status: error.status, detail: error.detail, retryAfter: error.retryAfter)
    }

    public init(_ refusal: AdmissionRefusal) {
        self.init(status: refusal.status, detail: refusal.detail, extra: refusal.headers)
    }
}

extension AuthenticationFailure {
    /// Seconds a 429 asks the client to wait (`Retry-After`).
    public var retryAfter: Int? {
        if case .lockedOut(let seconds) = self { return seconds }
        return nil
    }
}
