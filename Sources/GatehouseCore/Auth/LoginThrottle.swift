import Foundation
import Synchronization

/// `login:` in the config: when failed sign-ins lock a user name or a client address out.
public struct LoginThrottlePolicy: Sendable, Hashable {
    /// Failures within ``window`` that start a lockout (`max_failures`, default 5).
    public var maxFailures: Int = 5
    /// `window`, default 5m.
    public var window: ConfigDuration = .seconds(300)
    /// How long a lockout lasts (`lockout`, default 5m).
    public var lockout: ConfigDuration = .seconds(300)
    public init() {}
}

/// Where failed sign-ins are counted: ``LoginThrottle`` (this process's memory: one Gatehouse)
/// or the shared store (`PostgresLoginThrottle`: replicas, whose guesses count together).
///
/// Guarantees every implementation gives: those of ``LoginThrottle`` — a name or an address with
/// ``LoginThrottlePolicy/maxFailures`` failures in the window is refused until its lockout ends,
/// attempts count from ``admit(username:client:now:)`` on (parallel guesses cannot overrun the
/// limit), a success makes no room. A store that cannot be reached admits nobody
/// (``LoginAdmission/unavailable``): a sign-in is never checked uncounted.
public protocol LoginGuard: Sendable {
    var policy: LoginThrottlePolicy { get }
    /// Lockouts this process began (for the metrics).
    var lockoutsStarted: Int { get }
    /// Seconds until an attempt may be made again, or nil when it may be made now.
    func lockedFor(username: String?, client: IPAddress?, now: Date) async throws(StoreError) -> Int?
    /// Reserves one attempt; a granted ticket must be settled exactly once.
    func admit(username: String?, client: IPAddress?, now: Date) async -> LoginAdmission
    /// Ends an attempt; returns the lockout (seconds) a failure started, if any.
    @discardableResult
    func settle(_ ticket: LoginTicket, _ outcome: LoginOutcome, now: Date) async -> Int?
}

/// Whether an attempt may be made.
public enum LoginAdmission: Sendable, Equatable {
    case granted(LoginTicket)
    /// Locked out, or as many attempts under way as failures are still allowed: wait this many seconds.
    case wait(Int)
    /// The shared store cannot be reached.
    case unavailable
}

/// One reserved attempt.
public struct LoginTicket: Sendable, Equatable {
    public let username: String?
    public let client: IPAddress?
    /// Which reservation, where the store needs to know (0 in memory).
    public let id: Int64

    public init(username: String?, client: IPAddress?, id: Int64 = 0) {
        self.username = username
        self.client = client
        self.id = id
    }
}

/// How an attempt ended.
public enum LoginOutcome: Sendable, Equatable {
    case failed, succeeded
    /// Neither: the password could not be checked (the store failed).
    case abandoned
}

/// Counts failed sign-ins (login page, JSON login, token provisioning) per user name and per
/// client address, and says when either is locked out.
///
/// Guarantees: once ``LoginThrottlePolicy/maxFailures`` failures fell within the window for a name
/// or an address, every attempt for it is refused — right password or not — until the lockout
/// ends; the answer says how long (`Retry-After`). Attempts are reserved before the password is
/// checked (``reserve(username:client:now:)``), so guesses sent in parallel count as they start:
/// no more than `maxFailures` can be under way or failed within the window, however many
/// connections send them. Clients whose address cannot be determined all count as one address,
/// `unknown`. A success does not wipe earlier failures (a client that keeps signing
/// in cannot make room for someone else's guesses). Memory is bounded: at most ``capacity``
/// names and addresses are tracked, the oldest dropped first. State lives in this process and
/// starts empty at each start.
public final class LoginThrottle: LoginGuard {
    public let policy: LoginThrottlePolicy
    public let capacity: Int
    private struct Record { var failures: [Date]; var lockedUntil: Date?; var inFlight = 0 }
    private let records = Mutex<[String: Record]>([:])
    private let started = Atomic<Int>(0)

    /// Lockouts begun since this process started (for the metrics).
    public var lockoutsStarted: Int { started.load(ordering: .relaxed) }

    public init(policy: LoginThrottlePolicy, capacity: Int = 100_000) {
        self.policy = policy
        self.capacity = capacity
    }

    private static func keys(username: String?, client: IPAddress?) -> [String] {
        var keys: [String] = []
        if let username { keys.append("user:" + username) }
        // An address that cannot be determined (a malformed X-Forwarded-For from a trusted proxy,
        // a unix-socket peer) is one shared address: an unknown client never escapes the count.
        keys.append("addr:" + (client?.description ?? "unknown"))
        return keys
    }

    /// Seconds until an attempt may be made again, or nil when it may be made now.
    public func retryAfter(username: String?, client: IPAddress?, now: Date) -> Int? {
        let keys = Self.keys(username: username, client: client)
        return records.withLock { table -> Int? in
            var longest: TimeInterval = 0
            for key in keys {
                if let until = table[key]?.lockedUntil, until > now { longest = max(longest, until.timeIntervalSince(now)) }
            }
            return longest > 0 ? max(1, Int(longest.rounded(.up))) : nil
        }
    }

    /// Reserves one attempt for the name and the address: nil when it may be made — then exactly
    /// one of ``recordFailure(username:client:now:)``, ``recordSuccess(username:client:)`` or
    /// ``release(username:client:)`` must follow — or the seconds to wait (a lockout, or as many
    /// attempts under way as failures would still be allowed).
    public func reserve(username: String?, client: IPAddress?, now: Date) -> Int? {
        let keys = Self.keys(username: username, client: client)
        let window = TimeInterval(policy.window.seconds)
        return records.withLock { table -> Int? in
            var wait: TimeInterval = 0
            for key in keys {
                guard let record = table[key] else { continue }
                if let until = record.lockedUntil, until > now {
                    wait = max(wait, until.timeIntervalSince(now))
                } else if record.failures.filter({ now.timeIntervalSince($0) < window }).count + record.inFlight >= policy.maxFailures {
                    wait = max(wait, 1)
                }
            }
            if wait > 0 { return max(1, Int(wait.rounded(.up))) }
            makeRoom(&table, now: now)
            for key in keys { table[key, default: Record(failures: [], lockedUntil: nil)].inFlight += 1 }
            return nil
        }
    }

    /// Gives back a reserved attempt that was neither a success nor a failure (the store failed).
    public func release(username: String?, client: IPAddress?) {
        let keys = Self.keys(username: username, client: client)
        records.withLock { table in
            for key in keys where (table[key]?.inFlight ?? 0) > 0 { table[key]?.inFlight -= 1 }
        }
    }

    private func makeRoom(_ table: inout [String: Record], now: Date) {
        guard table.count >= capacity else { return }
        let window = TimeInterval(policy.window.seconds)
        table = table.filter {
            $0.value.inFlight > 0 || $0.value.lockedUntil.map { $0 > now } ?? false || $0.value.failures.contains { now.timeIntervalSince($0) < window }
        }
        while table.count >= capacity, let victim = table.first(where: { $0.value.inFlight == 0 })?.key { table.removeValue(forKey: victim) }
    }

    /// Records a failure (ending a reserved attempt, if any); returns the lockout it started (seconds), if any.
    @discardableResult
    public func recordFailure(username: String?, client: IPAddress?, now: Date) -> Int? {
        let keys = Self.keys(username: username, client: client)
        let window = TimeInterval(policy.window.seconds)
        let lockout = TimeInterval(policy.lockout.seconds)
        return records.withLock { table -> Int? in
            makeRoom(&table, now: now)
            var started: Int?
            for key in keys {
                var record = table[key] ?? Record(failures: [], lockedUntil: nil)
                if record.inFlight > 0 { record.inFlight -= 1 }
                record.failures = record.failures.filter { now.timeIntervalSince($0) < window } + [now]
                if record.failures.count >= policy.maxFailures {
                    record.lockedUntil = now.addingTimeInterval(lockout)
                    record.failures = []
                    started = Int(lockout)
                    self.started.add(1, ordering: .relaxed)
                }
                table[key] = record
            }
            return started
        }
    }

    /// Ends a reserved attempt that succeeded. Earlier failures stay counted until they leave
    /// the window: a success must not make room for more guesses.
    public func recordSuccess(username: String?, client: IPAddress?) {
        release(username: username, client: client)
    }
}

extension LoginThrottle {
    public func lockedFor(username: String?, client: IPAddress?, now: Date) -> Int? { retryAfter(username: username, client: client, now: now) }

    public func admit(username: String?, client: IPAddress?, now: Date) -> LoginAdmission {
        if let seconds = reserve(username: username, client: client, now: now) { return .wait(seconds) }
        return .granted(LoginTicket(username: username, client: client))
    }

    @discardableResult
    public func settle(_ ticket: LoginTicket, _ outcome: LoginOutcome, now: Date) -> Int? {
        switch outcome {
        case .failed: return recordFailure(username: ticket.username, client: ticket.client, now: now)
        case .succeeded: recordSuccess(username: ticket.username, client: ticket.client)
        case .abandoned: release(username: ticket.username, client: ticket.client)
        }
        return nil
    }

    /// The keys a name and an address are counted under (shared with the store's throttle).
    public static func countedKeys(username: String?, client: IPAddress?) -> [String] { keys(username: username, client: client) }
}

extension LoginThrottlePolicy {
    /// `login:`.
    mutating func read(_ value: ConfigValue, _ reader: ConfigReader) throws(ConfigError) {
        let m = try reader.mapping(value, known: ["max_failures", "window", "lockout"])
        if let x = m["max_failures"] { self.maxFailures = Int(try reader.int(x, min: 1, max: 1000)) }
        if let x = m["window"] { self.window = try reader.positiveDuration(x) }
        if let x = m["lockout"] { self.lockout = try reader.positiveDuration(x) }
    }
}
