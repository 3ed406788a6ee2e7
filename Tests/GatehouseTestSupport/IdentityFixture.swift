import Foundation
import GatehouseCore
import GatehouseServer
import GatehouseStore
import NIOPosix
import Synchronization
import XCTest

/// A clock the test moves by hand: every expiry Gatehouse judges uses it.
public final class TestClock: Sendable {
    private let current = Mutex(Date(timeIntervalSince1970: 1_900_000_000))
    public func now() -> Date { current.withLock { $0 } }
    public func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// A Gatehouse with a real SQLite store (in a fresh temporary directory), a real JWT secret file,
/// a thread pool for store calls and a hand-moved clock, in front of a recording upstream.
/// Users: `alice` (operator) and `root` (admin), both with ``password``.
public final class IdentityFixture {
    public static let password = "correct horse battery staple"
    /// Cheap scrypt for tests (a debug build runs the production cost slowly); the production
    /// parameters are covered by PasswordTests.
    public static let scrypt = ScryptParameters(n: 1 << 10, r: 8, p: 1)
    public let directory: String
    public let store: SQLiteStore
    public let threadPool: NIOThreadPool
    public let clock: TestClock
    public let accounts: AccountService
    public let proxy: ProxyFixture
    public var upstream: RecordingUpstream { proxy.upstream }
    public var port: Int { proxy.port }

    public init(
        directory: String? = nil, addUsers: Bool = true, audit: AuditLog? = nil, log: CapturedLog? = nil,
        _ customize: (inout GatehouseConfig) -> Void = { _ in }
    ) async throws {
        let dir = directory ?? NSTemporaryDirectory() + "gatehouse-identity-" + UUID().uuidString
        self.directory = dir
        store = try SQLiteStore(path: dir + "/gatehouse.db")
        if addUsers {
            let hash = try PasswordHash.make(Self.password, parameters: Self.scrypt)
            try store.addUser(UserRecord(username: "alice", passwordHash: hash, roles: ["operator"], created: Date()))
            try store.addUser(UserRecord(username: "root", passwordHash: hash, roles: ["admin"], created: Date()))
        }
        var config = GatehouseConfig()
        customize(&config)
        let secret = try JWTSecretFile.loadOrCreate(path: dir + "/jwt.secret")
        threadPool = NIOThreadPool(numberOfThreads: 2)
        threadPool.start()
        let clock = TestClock()
        self.clock = clock
        let credentials = StoredCredentialAuthenticator(
            store: OffloadedCredentialStore(store, on: ThreadPoolExecutor(pool: threadPool)),
            tokens: TokenAuthority(secret: secret, settings: config.jwt), sessions: config.sessions,
            oneShotTokens: OneShotTokens(), now: { clock.now() })
        accounts = AccountService(
            credentials: credentials, throttle: LoginThrottle(policy: config.loginThrottle), passwordPolicy: config.passwordPolicy,
            passwordParameters: Self.scrypt, passwordWork: ThreadPoolExecutor(pool: threadPool), audit: audit)
        proxy = try await ProxyFixture(accounts: accounts, log: log) { proxyConfig in
            proxyConfig.sessions = config.sessions
            proxyConfig.jwt = config.jwt
            customize(&proxyConfig)
        }
    }

    public static func with(
        audit: AuditLog? = nil, _ customize: (inout GatehouseConfig) -> Void = { _ in }, _ body: (IdentityFixture) async throws -> Void
    ) async throws {
        let fx = try await IdentityFixture(audit: audit, customize)
        do {
            try await body(fx)
        } catch {
            await fx.stop(removeFiles: true)
            throw error
        }
        await fx.stop(removeFiles: true)
    }

    public func stop(removeFiles: Bool) async {
        await proxy.stop()
        try? await threadPool.shutdownGracefully()
        if removeFiles { try? FileManager.default.removeItem(atPath: directory) }
    }

    public func client() throws -> RawClient { try proxy.client() }

    /// Sends one request; `body` with its Content-Length.
    public func send(
        _ method: String, _ target: String, headers: [String] = [], body: String? = nil
    ) throws -> RawResponse {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: gatehouse.test\r\n"
        for line in headers { text += line + "\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "Connection: close\r\n\r\n" + (body ?? "")
        return try client().request(text)
    }

    /// The status of a request once a change another process committed before `since` must
    /// have reached Gatehouse: sends until the answer is `expected`, or until a request that
    /// started after `since` plus the credential cache's confirmation limit has answered (from
    /// then on the cache cannot answer for a revision older than the change). Returns the last status.
    public func status(
        _ method: String, _ target: String, headers: [String], becoming expected: Int, afterChangeAt since: ContinuousClock.Instant
    ) throws -> Int {
        let bound = accounts.credentials.cache.confirmationLimit + .milliseconds(50)
        while true {
            let started = ContinuousClock.now
            let status = try send(method, target, headers: headers).status
            if status == expected || started - since >= bound { return status }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// A JSON request to the API.
    public func api(_ method: String, _ route: String, json: [String: Any]? = nil, headers: [String] = []) throws -> (RawResponse, [String: Any]) {
        let body = try json.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
        let response = try send(method, "/_gatehouse/api/" + route, headers: headers + (body == nil ? [] : ["Content-Type: application/json"]), body: body)
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        return (response, object)
    }

    /// Signs in through the JSON API; returns the access and refresh tokens.
    public func login(_ username: String = "alice", password: String = IdentityFixture.password) throws -> (access: String, refresh: String) {
        let (response, json) = try api("POST", "login", json: ["username": username, "password": password])
        guard response.status == 200, let access = json["token"] as? String, let refresh = json["refresh_token"] as? String else {
            throw RawClientError.malformed("login failed: \(response.status) \(response.bodyText)")
        }
        return (access, refresh)
    }

    /// Signs in through the login form; returns the session cookie value.
    public func formLogin(_ username: String = "alice", password: String = IdentityFixture.password, remember: Bool = false, extraHeaders: [String] = []) throws -> (RawResponse, String?) {
        var form = "username=\(username)&password=\(password.replacingOccurrences(of: " ", with: "+"))&next=%2F"
        if remember { form += "&remember=1" }
        let response = try send(
            "POST", "/_gatehouse/login",
            headers: ["Content-Type: application/x-www-form-urlencoded", "Origin: http://gatehouse.test"] + extraHeaders, body: form)
        return (response, Self.sessionCookie(in: response))
    }

    public static func sessionCookie(in response: RawResponse) -> String? {
        for (name, value) in response.headers where name.lowercased() == "set-cookie" && value.hasPrefix("gatehouse_session=") {
            let v = value.dropFirst("gatehouse_session=".count).prefix { $0 != ";" }
            return v.isEmpty ? nil : String(v)
        }
        return nil
    }
}
