import XCTest

@testable import GatehouseServer

/// Every transition of the client connection's state machine, without a channel.
final class ClientConnectionStateMachineTests: XCTestCase {
    typealias Machine = ClientConnectionStateMachine

    private func exchange(_ m: inout Machine, keepAlive: Bool = true, hasBody: Bool = false, upgrade: Bool = false) {
        XCTAssertEqual(m.head(keepAlive: keepAlive, hasBody: hasBody, asksUpgrade: upgrade), .decide)
    }

    func testAnIdleConnectionRunsTheIdleTimerThenTheHeaderTimerOnceBytesCome() {
        var m = Machine()
        XCTAssertEqual(m.timer, .idle)
        XCTAssertTrue(m.shouldRead)
        m.bytesLeft(true)
        XCTAssertEqual(m.timer, .header, "bytes of a head arrived")
        m.bytesLeft(true)
        XCTAssertEqual(m.timer, .header)
        m.bytesLeft(false)
        XCTAssertEqual(m.timer, .idle, "nothing of a next head is there")
    }

    func testAHeadStartsAnExchangeThatIsDecidedBeforeItsBodyMoves() {
        var m = Machine()
        exchange(&m, hasBody: true)
        XCTAssertEqual(m.body(), .holdForExchange, "the body stays unparsed")
        XCTAssertEqual(m.end(), .holdForExchange)
        XCTAssertFalse(m.shouldRead, "nothing more is read while the exchange is being decided")
        XCTAssertNil(m.timer, "no client timer while Gatehouse holds the client back")
        m.decided(.device)
        XCTAssertTrue(m.shouldRead)
        XCTAssertEqual(m.timer, .body)
        XCTAssertEqual(m.body(), .forwardToDevice)
        XCTAssertEqual(m.end(), .forwardEndToDevice)
        XCTAssertNil(m.timer, "the request is complete: the device's time, not the client's")
        m.responseStarted(close: false)
        XCTAssertEqual(m.responseEnded(), .next)
        XCTAssertEqual(m.timer, .idle)
    }

    func testTheDeviceNotTakingTheBodyStopsReading() {
        var m = Machine()
        exchange(&m, hasBody: true)
        m.decided(.device)
        m.deviceWritability(false)
        XCTAssertFalse(m.shouldRead)
        XCTAssertNil(m.timer, "the client is not blamed for Gatehouse's own backpressure")
        m.deviceWritability(true)
        XCTAssertTrue(m.shouldRead)
    }

    func testOwnEndpointBodiesAreCollectedAndDispatchedAtTheEnd() {
        var m = Machine()
        exchange(&m, hasBody: true)
        m.decided(.collect)
        XCTAssertEqual(m.body(), .collect)
        XCTAssertEqual(m.end(), .dispatchOwnEndpoint)
        XCTAssertEqual(m.answeredByGatehouse(close: false), .next)
    }

    func testGatehousesAnswerBeforeTheEndWaitsForTheEnd() {
        var m = Machine()
        exchange(&m)
        XCTAssertNil(m.answeredByGatehouse(close: false), "the request's end is still to come")
        XCTAssertEqual(m.end(), .finishExchange(.next))
        XCTAssertTrue(m.isIdle)
    }

    func testAnAnswerWhileABodyIsStillComingClosesTheConnection() {
        var m = Machine()
        exchange(&m, hasBody: true)
        XCTAssertEqual(m.answeredByGatehouse(close: false), .close, "no one can make Gatehouse swallow a body it refused")
        XCTAssertEqual(m.body(), .discard)
        XCTAssertFalse(m.shouldRead)
    }

    func testARefusalThatMustCloseCloses() {
        var m = Machine()
        exchange(&m)
        _ = m.end()
        XCTAssertEqual(m.answeredByGatehouse(close: true), .close)
        XCTAssertEqual(m.state, .closed)
    }

    func testPipelinedBytesAreHeldAndReadingStopsUntilTheExchangeIsOver() {
        var m = Machine()
        exchange(&m)
        m.decided(.device)
        XCTAssertEqual(m.end(), .forwardEndToDevice)
        XCTAssertTrue(m.shouldRead, "the request is complete: reading finds the client's close or the next head")
        m.bytesLeft(true)
        XCTAssertFalse(m.shouldRead, "no more is read while a next request waits")
        XCTAssertEqual(m.head(keepAlive: true, hasBody: false, asksUpgrade: false), .holdForExchange, "no second exchange begins")
        m.responseStarted(close: false)
        XCTAssertEqual(m.responseEnded(), .next)
        XCTAssertTrue(m.isIdle)
        XCTAssertTrue(m.shouldRead)
        XCTAssertEqual(m.head(keepAlive: true, hasBody: false, asksUpgrade: false), .decide)
    }

    func testBytesOfTheCurrentBodyWaitingForTheDecisionAreNotANextRequest() {
        var m = Machine()
        exchange(&m, hasBody: true)
        m.bytesLeft(true)
        m.decided(.device)
        XCTAssertTrue(m.shouldRead)
    }

    func testNothingIsServedAfterAnExchangeThatCloses() {
        var m = Machine()
        exchange(&m, keepAlive: false)
        m.decided(.device)
        _ = m.end()
        m.bytesLeft(true)
        m.responseStarted(close: false)
        XCTAssertEqual(m.responseEnded(), .close, "after Connection: close nothing more is served")
        XCTAssertEqual(m.head(keepAlive: true, hasBody: false, asksUpgrade: false), .discard)
    }

    func testAnUpgradeThatDidNotBecomeATunnelCloses() {
        var m = Machine()
        exchange(&m, upgrade: true)
        XCTAssertTrue(m.closesAfterExchange)
        m.becameTunnel()
        XCTAssertEqual(m.state, .tunnel)
        XCTAssertNil(m.timer, "a tunnel has its own lifetime rules")
    }

    func testADeviceAnsweringBeforeTheBodyEndedClosesTheConnection() {
        var m = Machine()
        exchange(&m, hasBody: true)
        m.decided(.device)
        m.responseStarted(close: false)
        XCTAssertEqual(m.responseEnded(), .close)
    }

    func testAResponseFramedByItsEndCloses() {
        var m = Machine()
        exchange(&m)
        _ = m.end()
        m.decided(.device)
        m.responseStarted(close: true)
        XCTAssertEqual(m.responseEnded(), .close)
    }

    func testParserErrorsAreAnsweredOnlyBeforeAResponseBegan() {
        var idle = Machine()
        XCTAssertEqual(idle.parserError(status: 400), .answerAndClose(status: 400))
        var big = Machine()
        XCTAssertEqual(big.parserError(status: 431), .answerAndClose(status: 431))
        var midBody = Machine()
        exchange(&midBody, hasBody: true)
        midBody.decided(.device)
        XCTAssertEqual(midBody.parserError(status: 400), .answerAndClose(status: 400))
        var midResponse = Machine()
        exchange(&midResponse, hasBody: true)
        midResponse.decided(.device)
        midResponse.responseStarted(close: false)
        XCTAssertEqual(midResponse.parserError(status: 400), .close, "a response under way cannot be replaced")
        var tunnel = Machine()
        tunnel.becameTunnel()
        XCTAssertEqual(tunnel.parserError(status: 400), .close)
    }

    func testATimeoutClosesTheConnection() {
        var m = Machine()
        m.timedOut()
        XCTAssertEqual(m.state, .closed)
        XCTAssertFalse(m.shouldRead)
    }

    func testShutdownClosesAnIdleConnectionAtOnceAndABusyOneAfterItsAnswer() {
        var idle = Machine()
        XCTAssertTrue(idle.quiesce())
        var busy = Machine()
        exchange(&busy)
        XCTAssertFalse(busy.quiesce())
        _ = busy.end()
        busy.decided(.device)
        busy.responseStarted(close: false)
        XCTAssertEqual(busy.responseEnded(), .close)
    }

}
