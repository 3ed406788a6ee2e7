import Foundation
import GatehouseCore
import NIOCore
import NIOPosix
import Synchronization

/// What `GET /_gatehouse/readyz` checks: that the upstream accepts a connection and that the
/// store answers.
///
/// Guarantees: every check opens its own connection (never a pooled one, which could be stale or
/// busy) and closes it at once without sending a byte; at most one check runs at a time and its
/// answer is reused for ``reuseFor`` (readyz needs no credential, so a flood of probes must not become a flood of
/// connections — and TLS handshakes — to the device); each check is bounded by the upstream
/// connect timeout (for an `https` upstream the TLS handshake too, so a certificate the upstream
/// check refuses shows here); a failure is named (which part, and why) and never includes a secret.
struct ReadinessProbe: Sendable {
    static let path = OwnPaths.readyz
    let upstream: UpstreamConnector
    /// Nil without a store (then only the upstream is checked).
    let credentials: StoredCredentialAuthenticator?
    /// The last answer, and the check under way if there is one.
    private let last = Recent()
    static let reuseFor: TimeInterval = 1

    init(upstream: UpstreamConnector, credentials: StoredCredentialAuthenticator?) {
        self.upstream = upstream
        self.credentials = credentials
    }

    private final class Recent: Sendable {
        struct State {
            var answer: (at: Date, failures: [String])?
            var running: Task<[String], Never>?
        }
        let state = Mutex(State())
    }

    private enum Lookup: Sendable {
        case reused([String])
        case await(Task<[String], Never>)
    }

    /// The parts that are not ready, with the reason; empty when everything is. Probes that
    /// arrive while a check is under way wait for that check instead of starting their own.
    func failures(on eventLoop: EventLoop) async -> [String] {
        let lookup: Lookup = last.state.withLock { state in
            // Read under the lock: a check that ended a moment ago must count as recent.
            let now = Date()
            if let recent = state.answer, now.timeIntervalSince(recent.at) < Self.reuseFor, recent.at <= now {
                return .reused(recent.failures)
            }
            if let running = state.running { return .await(running) }
            let cache = last
            let running = Task { [self] in
                // Dated when the check began: that is when what it found was true.
                let began = Date()
                let failures = await check(on: eventLoop)
                cache.state.withLock { $0 = Recent.State(answer: (began, failures), running: nil) }
                return failures
            }
            state.running = running
            return .await(running)
        }
        switch lookup {
        case .reused(let failures): return failures
        case .await(let running): return await running.value
        }
    }

    private func check(on eventLoop: EventLoop) async -> [String] {
        var failures: [String] = []
        do {
            let channel = try await upstream.connectAndHandshake(on: eventLoop)
            try? await channel.close()
        } catch {
            failures.append("upstream \(upstream.address) does not accept connections (\(Self.reason(error)))")
        }
        if let credentials {
            do {
                _ = try await credentials.store.refreshRevision()
            } catch {
                failures.append("the store does not answer (\(error))")
            }
        }
        return failures
    }

    private static func reason(_ error: Error) -> String {
        if let connect = error as? NIOConnectionError, let first = connect.connectionErrors.first {
            return "\(first.error)"
        }
        return "\(error)"
    }
}
