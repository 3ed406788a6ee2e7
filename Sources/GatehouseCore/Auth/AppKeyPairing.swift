import Foundation
import Synchronization

/// Where OctoPrint app-key requests wait for a decision: ``AppKeyPairing`` (this process's
/// memory: one Gatehouse) or the shared store (`PostgresAppKeyPairing`: an app that asked
/// through one replica polls, and a user decides, through any). Every implementation gives
/// ``AppKeyPairing``'s guarantees; a store that cannot be reached is an error (503), never a
/// decision.
public protocol AppKeyRequestBook: Sendable {
    /// Registers a request from `client`; returns the app token (for polling) and the decision
    /// token (for the approval page).
    func request(app: String, user: String?, client: IPAddress?, now: Date) async throws(AppKeyPairing.RequestRefusal) -> (appToken: String, decisionToken: String)
    /// What the app learns when it polls; `approved` is answered once, then the request is gone.
    func poll(appToken: String, now: Date) async throws(StoreError) -> AppKeyPairing.PollResult
    /// The pending requests `user` may decide, oldest first.
    func pending(for user: String, now: Date) async throws(StoreError) -> [AppKeyPairing.Pending]
    /// Allows or denies; false when the request is unknown, gone, decided, or names another user.
    /// `grant` bounds the key the app collects (``IssuingPolicy`` applied to the approver).
    func decide(decisionToken: String, allow: Bool, by user: String, grant: CredentialGrant, now: Date) async throws(StoreError) -> Bool
}

extension AppKeyRequestBook {
    /// The pending request behind a decision token, if `user` may decide it.
    public func pending(decisionToken: String, for user: String, now: Date) async throws(StoreError) -> AppKeyPairing.Pending? {
        try await pending(for: user, now: now).first { $0.decisionToken.utf8.elementsEqual(decisionToken.utf8) }
    }
}

/// OctoPrint's application-key pairing, answered by Gatehouse: an app asks for a key, a user
/// signed in to Gatehouse allows or denies it, the app collects a Gatehouse API key.
///
/// Guarantees:
/// - Two secrets per request: the *app token* (the app polls with it and collects the key) and
///   the *decision token* (in the approval page's address, which lands in browser history). A
///   user who sees a decision token can decide but never collect; both are 256 random bits. The
///   app token is held only as its digest; the decision token also in the clear, for the list of
///   pending requests to link to: it is an address, not a credential (deciding needs a user
///   signed in with a browser, and the key is always the decider's).
/// - A request that names a user can be decided only by that user; one that names none, by any
///   user who signs in. The key is always the deciding user's, never the named one's.
/// - A pending request lives while its app keeps polling (``pollGrace`` between polls, as
///   OctoPrint's 5 s but a little kinder) and never longer than ``maximumAge``; an approved one
///   is collected once, within ``collectGrace``; a denied one is gone. The app cannot tell denied
///   from expired (both answer "gone"), as with OctoPrint.
/// - At most ``capacity`` requests are held, and one client may make at most
///   ``perClientPerMinute`` requests a minute and ``perClientPerHour`` an hour (OctoPrint allows
///   3 and 10; an IPv6 client counts by its /64, which one host usually has whole), so
///   unauthenticated callers cannot grow memory or flood users with prompts. The request history
///   is bounded too: past ``trackedClients`` addresses, histories older than an hour are dropped,
///   and if none is, the client heard from longest ago is forgotten. So the per-client limits
///   hold while a client is remembered; a caller with thousands of addresses can cycle past
///   them, and ``capacity`` is then the bound that holds (on memory and on prompts alike).
public final class AppKeyPairing: AppKeyRequestBook {
    public static let pollGrace: TimeInterval = 10
    public static let maximumAge: TimeInterval = 600
    public static let collectGrace: TimeInterval = 60
    public static let capacity = 64
    public static let perClientPerMinute = 3
    public static let perClientPerHour = 10
    public static let trackedClients = 4096

    /// A request as the approval page shows it.
    public struct Pending: Sendable, Equatable {
        public let decisionToken: String
        public let app: String
        public let requestedUser: String?
        public let client: IPAddress?
        public let created: Date

        public init(decisionToken: String, app: String, requestedUser: String?, client: IPAddress?, created: Date) {
            self.decisionToken = decisionToken
            self.app = app
            self.requestedUser = requestedUser
            self.client = client
            self.created = created
        }
    }

    public enum PollResult: Sendable, Equatable {
        case pending
        /// Approved by `user`: create the key now, within `grant` (this answer is given once).
        case approved(user: String, app: String, grant: CredentialGrant)
        case gone
    }

    public enum RequestRefusal: Error, Sendable, Equatable {
        case tooManyFromClient
        case tooManyPending
        /// The shared store where requests are kept cannot be reached.
        case unavailable
    }

    private enum State: Equatable {
        case pending
        case approved(user: String, at: Date, grant: CredentialGrant)
    }

    private struct Entry {
        let pending: Pending
        let appDigest: SecretDigest
        var lastPoll: Date
        var state: State
    }

    private struct Table {
        var byApp: [SecretDigest: Entry] = [:]
        var decisionToApp: [SecretDigest: SecretDigest] = [:]
        var requestsByClient: [IPAddress: [Date]] = [:]
    }

    private let table = Mutex(Table())

    public init() {}

    /// Registers a request from `client`.
    /// - Returns: the app token (for polling) and the decision token (for the approval page).
    public func request(app: String, user: String?, client: IPAddress?, now: Date) throws(RequestRefusal) -> (appToken: String, decisionToken: String) {
        let appToken = RandomSecret.make()
        let decisionToken = RandomSecret.make()
        let entry = Entry(
            pending: Pending(decisionToken: decisionToken, app: app, requestedUser: user, client: client, created: now),
            appDigest: SecretDigest.of(appToken), lastPoll: now, state: .pending)
        let refusal: RequestRefusal? = table.withLock { t in
            Self.expire(&t, now: now)
            if let address = client {
                let client = Self.rateKey(address)
                if t.requestsByClient[client] == nil && t.requestsByClient.count >= Self.trackedClients {
                    t.requestsByClient = t.requestsByClient.filter { $0.value.contains { now.timeIntervalSince($0) < 3600 } }
                    // Still full within the hour: the client heard from longest ago is forgotten,
                    // so many addresses can make a new client wait for a pending place (bounded
                    // by ``capacity``), never refuse it outright.
                    if t.requestsByClient.count >= Self.trackedClients,
                        let stalest = t.requestsByClient.min(by: { ($0.value.last ?? .distantPast) < ($1.value.last ?? .distantPast) })?.key {
                        t.requestsByClient[stalest] = nil
                    }
                }
                let recent = (t.requestsByClient[client] ?? []).filter { now.timeIntervalSince($0) < 3600 }
                if recent.count >= Self.perClientPerHour || recent.filter({ now.timeIntervalSince($0) < 60 }).count >= Self.perClientPerMinute {
                    t.requestsByClient[client] = recent
                    return .tooManyFromClient
                }
                t.requestsByClient[client] = recent + [now]
            }
            guard t.byApp.count < Self.capacity else { return .tooManyPending }
            t.byApp[entry.appDigest] = entry
            t.decisionToApp[SecretDigest.of(decisionToken)] = entry.appDigest
            return nil
        }
        if let refusal { throw refusal }
        return (appToken, decisionToken)
    }

    /// What the app learns when it polls; `approved` is answered once, then the request is gone.
    public func poll(appToken: String, now: Date) -> PollResult {
        let digest = SecretDigest.of(appToken)
        return table.withLock { t in
            Self.expire(&t, now: now)
            guard var entry = t.byApp[digest] else { return .gone }
            switch entry.state {
            case .pending:
                entry.lastPoll = now
                t.byApp[digest] = entry
                return .pending
            case .approved(let user, _, let grant):
                Self.remove(digest, from: &t)
                return .approved(user: user, app: entry.pending.app, grant: grant)
            }
        }
    }

    /// The pending requests `user` may decide, oldest first.
    public func pending(for user: String, now: Date) -> [Pending] {
        table.withLock { t in
            Self.expire(&t, now: now)
            return t.byApp.values.filter { $0.state == .pending && ($0.pending.requestedUser ?? user) == user }
                .map(\.pending).sorted { $0.created < $1.created }
        }
    }

    /// Allows or denies; false when the request is unknown, gone, decided, or names another user.
    /// `grant` bounds the key the app collects (``IssuingPolicy`` applied to the approver).
    public func decide(decisionToken: String, allow: Bool, by user: String, grant: CredentialGrant = CredentialGrant(), now: Date) -> Bool {
        let decisionDigest = SecretDigest.of(decisionToken)
        return table.withLock { t in
            Self.expire(&t, now: now)
            guard let appDigest = t.decisionToApp[decisionDigest], var entry = t.byApp[appDigest], entry.state == .pending,
                (entry.pending.requestedUser ?? user) == user
            else { return false }
            if allow {
                entry.state = .approved(user: user, at: now, grant: grant)
                t.byApp[appDigest] = entry
            } else {
                Self.remove(appDigest, from: &t)
            }
            return true
        }
    }

    public var count: Int { table.withLock { $0.byApp.count } }

    private static func remove(_ appDigest: SecretDigest, from t: inout Table) {
        guard let entry = t.byApp.removeValue(forKey: appDigest) else { return }
        t.decisionToApp.removeValue(forKey: SecretDigest.of(entry.pending.decisionToken))
    }

    private static func expire(_ t: inout Table, now: Date) {
        for (digest, entry) in t.byApp {
            let alive: Bool
            switch entry.state {
            case .pending:
                alive = now.timeIntervalSince(entry.lastPoll) < pollGrace && now.timeIntervalSince(entry.pending.created) < maximumAge
            case .approved(_, let at, _):
                alive = now.timeIntervalSince(at) < collectGrace
            }
            if !alive { remove(digest, from: &t) }
        }
    }

    /// The address a client's requests are counted under: IPv4 as it is, IPv6 by its /64.
    public static func rateKey(_ address: IPAddress) -> IPAddress {
        guard !address.isIPv4 else { return address }
        return IPAddress(bytes: Array(address.bytes[0..<8]) + [UInt8](repeating: 0, count: 8)) ?? address
    }
}
