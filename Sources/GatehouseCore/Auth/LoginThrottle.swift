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

/// Counts failed sign-ins (login page, JSON login, token provisioning) per user name and per
/// client address, and says when either is locked out.
///
/// Guarantees: once ``LoginThrottlePolicy/maxFailures`` failures fell within the window for a name
/// or an address, every attempt for it is refused — right password or not — until the lockout
/// ends; the answer says how long (`Retry-After`). Memory is bounded: at most ``capacity``
/// names and addresses are tracked, the oldest dropped first. State lives in this process and
/// starts empty at each start.
public final class LoginThrottle: Sendable {
    public let policy: LoginThrottlePolicy
    public let capacity: Int
    private struct Record { var failures: [Date]; var lockedUntil: Date? }
    private let records = Mutex<[String: Record]>([:])

    public init(policy: LoginThrottlePolicy, capacity: Int = 100_000) {
        self.policy = policy
        self.capacity = capacity
    }

    private static func keys(username: String?, client: IPAddress?) -> [String] {
        var keys: [String] = []
        if let username { keys.append("user:" + username) }
        if let client { keys.append("addr:" + client.description) }
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

    /// Records a failure; returns the lockout it started (seconds), if any.
    @discardableResult
    public func recordFailure(username: String?, client: IPAddress?, now: Date) -> Int? {
        let keys = Self.keys(username: username, client: client)
        let window = TimeInterval(policy.window.seconds)
        let lockout = TimeInterval(policy.lockout.seconds)
        return records.withLock { table -> Int? in
            if table.count >= capacity {
                table = table.filter { $0.value.lockedUntil.map { $0 > now } ?? false || $0.value.failures.contains { now.timeIntervalSince($0) < window } }
                while table.count >= capacity, let victim = table.keys.first { table.removeValue(forKey: victim) }
            }
            var started: Int?
            for key in keys {
                var record = table[key] ?? Record(failures: [], lockedUntil: nil)
                record.failures = record.failures.filter { now.timeIntervalSince($0) < window } + [now]
                if record.failures.count >= policy.maxFailures {
                    record.lockedUntil = now.addingTimeInterval(lockout)
                    record.failures = []
                    started = Int(lockout)
                }
                table[key] = record
            }
            return started
        }
    }

    /// A successful sign-in clears the user name's failures (not the address's).
    public func recordSuccess(username: String) {
        _ = records.withLock { $0.removeValue(forKey: "user:" + username) }
    }
}
