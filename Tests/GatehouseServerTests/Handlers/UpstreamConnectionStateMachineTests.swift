import XCTest

@testable import GatehouseServer

/// Every transition of the device connection's state machine, without a channel.
final class UpstreamConnectionStateMachineTests: XCTestCase {
    func testACleanKeepAliveExchangeMakesTheConnectionReusable() {
        var m = UpstreamConnectionStateMachine()
        m.begin(writable: true)
        XCTAssertTrue(m.sawNothing)
        XCTAssertEqual(m.sentEnd(), .start, "the device's time to answer starts at the request's end")
        XCTAssertEqual(m.receivedHead(interim: false, keepAlive: true), .stop)
        XCTAssertFalse(m.sawNothing)
        m.receivedEnd()
        XCTAssertTrue(m.finish())
        XCTAssertTrue(m.isIdle)
    }

    func testInterimHeadsDoNotStopTheDevicesTimer() {
        var m = UpstreamConnectionStateMachine()
        m.begin(writable: true)
        _ = m.sentEnd()
        XCTAssertEqual(m.receivedHead(interim: true, keepAlive: true), .none)
        XCTAssertFalse(m.sawNothing, "a 100 Continue is something of an answer")
        XCTAssertEqual(m.receivedHead(interim: false, keepAlive: true), .stop)
    }

    func testTheTimerRunsWhileTheDeviceDoesNotTakeTheBody() {
        var m = UpstreamConnectionStateMachine()
        m.begin(writable: true)
        m.sentBody()
        XCTAssertFalse(m.sawNothing, "a body byte went out")
        XCTAssertEqual(m.writabilityChanged(false), .start)
        XCTAssertEqual(m.writabilityChanged(true), .stop)
        XCTAssertEqual(m.sentEnd(), .start)
        XCTAssertEqual(m.writabilityChanged(false), .none, "after the end the timer runs anyway")
    }

    func testAResponseThatCameBeforeTheEndStopsNothingLater() {
        var m = UpstreamConnectionStateMachine()
        m.begin(writable: true)
        XCTAssertEqual(m.receivedHead(interim: false, keepAlive: true), .stop)
        XCTAssertEqual(m.sentEnd(), .none, "the device answered already")
    }

    func testNotReusableAfterCloseIncompleteOrFailure() {
        var close = UpstreamConnectionStateMachine()
        close.begin(writable: true)
        _ = close.sentEnd()
        _ = close.receivedHead(interim: false, keepAlive: false)
        close.receivedEnd()
        XCTAssertFalse(close.finish())
        XCTAssertTrue(close.isClosed)

        var unfinished = UpstreamConnectionStateMachine()
        unfinished.begin(writable: true)
        _ = unfinished.receivedHead(interim: false, keepAlive: true)
        unfinished.receivedEnd()
        XCTAssertFalse(unfinished.finish(), "the request's body was not all sent")

        var failed = UpstreamConnectionStateMachine()
        failed.begin(writable: true)
        failed.fail()
        XCTAssertFalse(failed.finish())

        var tunnel = UpstreamConnectionStateMachine()
        tunnel.begin(writable: true)
        tunnel.becomeTunnel()
        XCTAssertFalse(tunnel.finish())
    }
}
