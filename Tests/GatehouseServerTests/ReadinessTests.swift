import Foundation
import GatehouseCore
@testable import GatehouseServer
import GatehouseTestSupport
import Synchronization
import XCTest

/// `readyz` says whether Gatehouse can do its job now (the upstream accepts connections, the
/// store answers); `healthz` only that the process is alive.
final class ReadinessTests: XCTestCase {
    func testReadyWhileTheUpstreamListensAndNotOnceItStops() async throws {
        try await ProxyFixture.with { fx in
            let ready = try fx.get("/_gatehouse/readyz")
            XCTAssertEqual(ready.status, 200, ready.bodyText)
            XCTAssertEqual(ready.bodyText, "ready\n")
            XCTAssertEqual(fx.upstream.requests.count, 0, "the probe connects but sends no request")
            await fx.upstream.stop()
            // Answers are reused for a second (readyz needs no credential; a flood of probes must
            // not become a flood of connections to the device).
            XCTAssertEqual(try fx.get("/_gatehouse/readyz").status, 200, "the answer of a moment ago")
            try await Task.sleep(for: .milliseconds(1100))
            let down = try fx.get("/_gatehouse/readyz")
            XCTAssertEqual(down.status, 503)
            XCTAssertTrue(down.bodyText.contains("upstream"), down.bodyText)
            XCTAssertTrue(down.bodyText.contains("does not accept connections"), down.bodyText)
            XCTAssertEqual(try fx.get("/_gatehouse/healthz").status, 200, "alive all the same")
        }
    }

    func testProbesArrivingTogetherShareOneCheck() async throws {
        try await ProxyFixture.with { fx in
            // Sixteen probes at once, before any answer exists: one connection to the device,
            // not sixteen (readyz needs no credential).
            // Blocking clients on threads of their own: the server answers readyz on Swift's
            // concurrency pool, which sixteen blocked tasks could otherwise fill.
            let started = Date()
            let port = fx.port
            let statuses = await withCheckedContinuation { (done: CheckedContinuation<[Int], Never>) in
                let results = Mutex<[Int]>([])
                let group = DispatchGroup()
                for _ in 0..<16 {
                    group.enter()
                    Thread.detachNewThread {
                        let status = (try? RawClient(port: port).request("GET /_gatehouse/readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status) ?? 0
                        results.withLock { $0.append(status) }
                        group.leave()
                    }
                }
                group.notify(queue: .global()) { done.resume(returning: results.withLock { $0 }) }
            }
            let elapsed = Date().timeIntervalSince(started)
            XCTAssertEqual(statuses, Array(repeating: 200, count: 16))
            // The device's side notices the probe's connection on its own loop: wait for it, then
            // give a second one the time to show if there was one.
            XCTAssertTrue(ProxyFixture.eventually { fx.upstream.connectionsAccepted >= 1 })
            try await Task.sleep(for: .milliseconds(200))
            // An answer is reused for a second; a burst slower than that may rightly check twice.
            let allowed = elapsed < ReadinessProbe.reuseFor ? 1 : 2
            XCTAssertLessThanOrEqual(fx.upstream.connectionsAccepted, allowed, "probes took \(elapsed) s")
        }
    }

    func testNotReadyWhenTheStoreDoesNotAnswer() async throws {
        try await IdentityFixture.with { fx in
            XCTAssertEqual(try fx.send("GET", "/_gatehouse/readyz").status, 200)
            // The threads that run every store call are gone: nothing can be looked up.
            try await fx.threadPool.shutdownGracefully()
            try await Task.sleep(for: .milliseconds(1100))
            let response = try fx.send("GET", "/_gatehouse/readyz")
            XCTAssertEqual(response.status, 503)
            XCTAssertTrue(response.bodyText.contains("the store does not answer"), response.bodyText)
            XCTAssertFalse(response.bodyText.contains("upstream"), "only what failed is named: \(response.bodyText)")
        }
    }

    func testReadyzNeedsNoCredentialAndTakesOnlyGetAndHead() async throws {
        try await ProxyFixture.with { fx in
            XCTAssertEqual(try fx.client().request("HEAD /_gatehouse/readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").status, 200)
            let post = try fx.client().request("POST /_gatehouse/readyz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            XCTAssertNotEqual(post.status, 200)
        }
    }
}
