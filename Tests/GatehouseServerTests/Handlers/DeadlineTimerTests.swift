import NIOCore
import NIOEmbedded
import GatehouseTestSupport
import XCTest

@testable import GatehouseServer

final class DeadlineTimerTests: XCTestCase {
    private func makeTimer(_ loop: EmbeddedEventLoop, fired: @escaping () -> Void) -> DeadlineTimer {
        DeadlineTimer(eventLoop: loop, onExpiry: fired)
    }

    func testFiresAtTheDeadlineAndNotBefore() {
        let loop = EmbeddedEventLoop()
        var fired = 0
        let timer = makeTimer(loop) { fired += 1 }
        timer.set(in: .seconds(10))
        loop.advanceTime(by: .seconds(9))
        XCTAssertEqual(fired, 0)
        loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(fired, 1)
        loop.advanceTime(by: .seconds(100))
        XCTAssertEqual(fired, 1, "fired twice for one deadline")
    }

    func testMovingTheDeadlineLaterPostponesExpiry() {
        let loop = EmbeddedEventLoop()
        var fired = 0
        let timer = makeTimer(loop) { fired += 1 }
        timer.set(in: .seconds(10))
        loop.advanceTime(by: .seconds(8))
        timer.set(in: .seconds(10))  // now due at 18
        loop.advanceTime(by: .seconds(9))  // 17: the first task woke at 10 and slept again
        XCTAssertEqual(fired, 0)
        loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(fired, 1)
    }

    func testMovingTheDeadlineEarlierFiresEarlier() {
        let loop = EmbeddedEventLoop()
        var fired = 0
        let timer = makeTimer(loop) { fired += 1 }
        timer.set(in: .seconds(75))
        timer.set(in: .seconds(10))
        loop.advanceTime(by: .seconds(10))
        XCTAssertEqual(fired, 1)
    }

    func testClearAndCancelPreventExpiry() {
        let loop = EmbeddedEventLoop()
        var fired = 0
        let cleared = makeTimer(loop) { fired += 1 }
        cleared.set(in: .seconds(5))
        cleared.clear()
        let cancelled = makeTimer(loop) { fired += 1 }
        cancelled.set(in: .seconds(5))
        cancelled.cancel()
        loop.advanceTime(by: .seconds(60))
        XCTAssertEqual(fired, 0)
        cleared.set(in: .seconds(5))
        loop.advanceTime(by: .seconds(5))
        XCTAssertEqual(fired, 1, "a cleared timer must work again after set")
    }
}
