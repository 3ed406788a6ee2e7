import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// What must come of an attack.
enum Expectation {
    /// Answered with this status; the device saw nothing.
    case refused(Int)
    /// Answered by Gatehouse itself with this status, and `check` finds nothing wrong with the
    /// response (nil); the device saw nothing.
    case answered(Int, check: @Sendable (RawResponse) -> String?)
    /// Answered with 400 (or 408 when the bytes never complete a head), or the connection closed
    /// without an answer (for bytes that are not HTTP/1 at all); the device saw nothing.
    case notHTTP
    /// Like ``notHTTP`` for a body that turns out malformed after its head went upstream: the
    /// device may have seen the head, but never a complete request (its connection is closed).
    case cutOff
    /// The device saw exactly one request and the client got `status`; `check` returns what is
    /// wrong with the request the device saw, or nil when it is the expected, sanitized one.
    case forwarded(status: Int, check: @Sendable (RecordedRequest) -> String?)
}

/// One attack: the exact bytes sent on a fresh connection and what must come of them.
struct Attack {
    let name: String
    let bytes: [UInt8]
    let expectation: Expectation

    init(_ name: String, _ raw: String, _ expectation: Expectation) {
        self.init(name, bytes: Array(raw.utf8), expectation)
    }

    init(_ name: String, bytes: [UInt8], _ expectation: Expectation) {
        self.name = name
        self.bytes = bytes
        self.expectation = expectation
    }

    /// A request with the usual `Host` and `Connection: close`, the given header lines and body.
    static func request(
        _ name: String, _ target: String, method: String = "GET", headers: [String] = [], body: String? = nil,
        _ expectation: Expectation
    ) -> Attack {
        var raw = "\(method) \(target) HTTP/1.1\r\nHost: gatehouse.test\r\n"
        for line in headers { raw += line + "\r\n" }
        if let body { raw += "Content-Length: \(body.utf8.count)\r\n" }
        raw += "Connection: close\r\n\r\n" + (body ?? "")
        return Attack(name, raw, expectation)
    }
}

extension XCTestCase {
    /// Runs each attack on a fresh connection to the running Gatehouse `target`, checks the
    /// answer and what the device saw, and names the attack in every failure. Each attack is
    /// also put to `gatehouse explain`'s code (``RequestExplainer``) first, which must come to
    /// the decision the server came to (``assertExplainAgrees``).
    func launch(_ attacks: [Attack], on target: some AttackTarget, file: StaticString = #filePath, line: UInt = #line) async throws {
        let explainer = target.makeExplainer()
        let upstream = target.upstream
        let port = target.port
        var compared = 0
        var skippedForMemory = 0
        for attack in attacks {
            let parsed = ParsedHead.parse(attack.bytes, limits: target.runningConfig.limits)
            var explained: RequestExplanation?
            if let head = parsed {
                explained = await explainer.explain(
                    method: head.method, uri: head.uri, version: head.version, headers: head.headers, peer: IPAddress("127.0.0.1"), now: Date())
            }
            upstream.reset()
            let client = try RawClient(port: port, timeoutSeconds: 5)
            try client.send(attack.bytes)
            let outcome = StreamTest.readOutcome(client)
            let seen = upstream.requests
            let prefix = "[\(attack.name)]"
            /// The response with the expected status, or nil (and a failure) when there was none.
            func answer(_ status: Int) -> RawResponse? {
                guard case .response(let response) = outcome else {
                    XCTFail("\(prefix) expected \(status), got \(outcome)", file: file, line: line)
                    return nil
                }
                XCTAssertEqual(response.status, status, "\(prefix) \(response.bodyText.prefix(200))", file: file, line: line)
                return response
            }
            func deviceSawNothing() {
                XCTAssertEqual(seen.map(\.uri), [], "\(prefix) reached the device", file: file, line: line)
            }
            switch attack.expectation {
            case .refused(let status):
                _ = answer(status)
                deviceSawNothing()
            case .answered(let status, let check):
                if let response = answer(status), let problem = check(response) { XCTFail("\(prefix) \(problem)", file: file, line: line) }
                deviceSawNothing()
            case .notHTTP:
                if case .response(let response) = outcome {
                    XCTAssertTrue([400, 408].contains(response.status), "\(prefix) \(response.status) \(response.bodyText.prefix(200))", file: file, line: line)
                } else if case .timedOut = outcome {
                    XCTFail("\(prefix) the connection stayed open without an answer", file: file, line: line)
                }
                deviceSawNothing()
            case .cutOff:
                if case .response(let response) = outcome {
                    XCTAssertEqual(response.status, 400, "\(prefix) \(response.bodyText.prefix(200))", file: file, line: line)
                } else if case .timedOut = outcome {
                    XCTFail("\(prefix) the connection stayed open without an answer", file: file, line: line)
                }
                XCTAssertEqual(seen.filter(\.complete).map(\.uri), [], "\(prefix) the device got a complete request", file: file, line: line)
            case .forwarded(let status, let check):
                guard answer(status) != nil else { continue }
                guard seen.count == 1, let request = seen.first else {
                    XCTFail("\(prefix) the device saw \(seen.map(\.uri)) instead of one request", file: file, line: line)
                    continue
                }
                if let problem = check(request) { XCTFail("\(prefix) \(problem)", file: file, line: line) }
            }
            if let explained, let head = parsed {
                switch assertExplainAgrees(explained, head: head, attack: attack, outcome: outcome, seen: seen, file: file, line: line) {
                case .compared: compared += 1
                case .dependsOnServerMemory: skippedForMemory += 1
                case .notOneHead: break
                }
            }
        }
        // Not vacuous: attacks with a well-formed head were put to explain too.
        if attacks.contains(where: { ParsedHead.parse($0.bytes, limits: target.runningConfig.limits) != nil }) {
            XCTAssertGreaterThan(compared + skippedForMemory, 0, "no attack was compared with gatehouse explain", file: file, line: line)
        }
    }

    /// What came of comparing one attack's explanation with what the server did.
    enum ExplainComparison { case compared, dependsOnServerMemory, notOneHead }

    /// `gatehouse explain` and the server decided alike: the same refusal status, an answer of
    /// Gatehouse's own, or the same request (target and headers) sent to the device. Not
    /// compared: what depends on the running process's memory (one-shot tokens, lockouts) and
    /// bytes that are not one well-formed head (the parser answers those before Gatehouse decides).
    private func assertExplainAgrees(
        _ explained: RequestExplanation, head: ParsedHead, attack: Attack, outcome: StreamTest.Outcome, seen: [RecordedRequest],
        file: StaticString, line: UInt
    ) -> ExplainComparison {
        switch attack.expectation {
        case .notHTTP, .cutOff: return .notOneHead
        default: break
        }
        if RequestTarget(head.uri).query.values(named: "token").count > 0 { return .dependsOnServerMemory }
        let status = outcome.response?.status
        if status == 429 { return .dependsOnServerMemory }
        if case .refused(429, _) = explained.verdict { return .dependsOnServerMemory }
        let prefix = "[\(attack.name)] explain said \(explained.lines.last ?? "")"
        switch explained.verdict {
        case .refused(let explainedStatus, _):
            XCTAssertEqual(status, explainedStatus, "\(prefix), the server answered \(status.map(String.init) ?? "nothing")", file: file, line: line)
            XCTAssertTrue(seen.isEmpty, "\(prefix), but the device saw \(seen.map(\.uri))", file: file, line: line)
        case .answeredByGatehouse:
            XCTAssertTrue(seen.isEmpty, "\(prefix), but the device saw \(seen.map(\.uri))", file: file, line: line)
        case .forwarded(let uri, let headers):
            guard let request = seen.first else {
                XCTFail("\(prefix), but the server answered \(status.map(String.init) ?? "nothing") and the device saw nothing", file: file, line: line)
                return .compared
            }
            XCTAssertEqual(request.uri, uri, prefix, file: file, line: line)
            let sent = request.headers.map { "\($0.name): \($0.value)" }.sorted()
            XCTAssertEqual(sent, headers.map { "\($0.name): \($0.value)" }.sorted(), "\(prefix): the headers differ", file: file, line: line)
        }
        return .compared
    }
}

/// Checks for what the device saw.
enum Saw {
    /// The request reached the device as `uri` with exactly these identity headers.
    static func identity(_ user: String?, uri: String? = nil, roles: String? = nil) -> @Sendable (RecordedRequest) -> String? {
        { request in
            if let uri, request.uri != uri { return "the device saw \(request.uri), not \(uri)" }
            let users = request.values("X-Remote-User")
            if users != (user.map { [$0] } ?? []) { return "X-Remote-User was \(users)" }
            if let roles, request.values("X-Remote-Roles") != [roles] { return "X-Remote-Roles was \(request.values("X-Remote-Roles"))" }
            return nil
        }
    }

    /// Nothing the attacker wrote (`marker`) reached the device in any header.
    static func noHeaderMentioning(_ marker: String, user: String? = "alice") -> @Sendable (RecordedRequest) -> String? {
        { request in
            let lines = request.headers.filter { $0.name.contains(marker) || $0.value.contains(marker) }
            if !lines.isEmpty { return "the device saw \(lines.map { "\($0.name): \($0.value)" })" }
            return identity(user)(request)
        }
    }
}
