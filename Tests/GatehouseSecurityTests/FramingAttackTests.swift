import GatehouseCore
import GatehouseTestSupport
import XCTest

/// Request smuggling and parser confusion: every request carries a valid API key, so only the
/// framing checks can stop it; none of them may reach the device.
final class FramingAttackTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)\r\n"
    private let host = "Host: gatehouse.test\r\n"

    private func post(_ headers: String, body: String) -> String {
        "POST /api/files HTTP/1.1\r\n\(host)\(key)\(headers)\r\n\(body)"
    }

    func testContentLengthAndTransferEncodingConfusion() async throws {
        let smuggled = "GET /admin HTTP/1.1\r\n\(host)\r\n"
        let attacks = [
            Attack("CL.TE", post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", body: "0\r\n\r\nX"), .refused(400)),
            Attack("TE.CL", post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", body: "8\r\nSMUGGLED\r\n0\r\n\r\n"), .refused(400)),
            Attack("CL.TE smuggling a request", post("Content-Length: \(5 + smuggled.utf8.count)\r\nTransfer-Encoding: chunked\r\n", body: "0\r\n\r\n" + smuggled), .refused(400)),
            Attack("TE: xchunked", post("Transfer-Encoding: xchunked\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE: leading space value", post("Transfer-Encoding:  chunked\r\nContent-Length: 4\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE: chunked, identity", post("Transfer-Encoding: chunked, identity\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE: identity, chunked", post("Transfer-Encoding: identity, chunked\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE duplicated", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE: tab before value", post("Transfer-Encoding:\tchunked\r\nContent-Length: 4\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE name with space before colon", post("Transfer-Encoding : chunked\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE: gzip", post("Transfer-Encoding: gzip\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE with vertical tab", post("Transfer-Encoding: \u{0B}chunked\r\n", body: "0\r\n\r\n"), .refused(400)),
            Attack("TE in HTTP/1.0", "POST /api/files HTTP/1.0\r\n\(host)\(key)Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", .refused(400)),
        ]
        try await ProxyFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testContentLengthTricks() async throws {
        let attacks = [
            Attack("two different Content-Lengths", post("Content-Length: 5\r\nContent-Length: 6\r\n", body: "hello!"), .refused(400)),
            Attack("two equal Content-Lengths", post("Content-Length: 5\r\nContent-Length: 5\r\n", body: "hello"), .refused(400)),
            Attack("Content-Length list", post("Content-Length: 5, 5\r\n", body: "hello"), .refused(400)),
            Attack("signed Content-Length +5", post("Content-Length: +5\r\n", body: "hello"), .refused(400)),
            Attack("negative Content-Length", post("Content-Length: -1\r\n", body: "hello"), .refused(400)),
            Attack("hex Content-Length", post("Content-Length: 0x5\r\n", body: "hello"), .refused(400)),
            Attack("Content-Length with inner space", post("Content-Length: 1 0\r\n", body: "helloworld"), .refused(400)),
            Attack("Content-Length overflowing 64 bits", post("Content-Length: 99999999999999999999999\r\n", body: "hello"), .refused(400)),
        ]
        try await ProxyFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testChunkTricks() async throws {
        let te = "Transfer-Encoding: chunked\r\n"
        let attacks = [
            Attack("chunk size overflowing 64 bits", post(te, body: "ffffffffffffffffff1\r\nx\r\n0\r\n\r\n"), .cutOff),
            Attack("negative chunk size", post(te, body: "-5\r\nhello\r\n0\r\n\r\n"), .cutOff),
            Attack("chunk size with junk", post(te, body: "5x\r\nhello\r\n0\r\n\r\n"), .cutOff),
            Attack("chunk extension is dropped, body kept", post(te, body: "5;name=value\r\nhello\r\n0\r\n\r\n"),
                .forwarded(status: 200, check: { $0.bodyBytes == 5 ? nil : "the device got \($0.bodyBytes) body bytes" })),
            Attack("chunk data longer than its size", post(te, body: "3\r\nhello\r\n0\r\n\r\n"), .cutOff),
        ]
        try await ProxyFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testLineEndingsAndControlBytes() async throws {
        let attacks = [
            Attack("bare LF line endings", "GET /api/job HTTP/1.1\nHost: gatehouse.test\nX-Api-Key: \(ProxyFixture.aliceKey)\n\n", .notHTTP),
            Attack("bare CR inside a header line", "GET /api/job HTTP/1.1\r\n\(host)\(key)X-A: a\rX-Remote-User: mallory\r\n\r\n", .notHTTP),
            Attack("obs-fold continuation", "GET /api/job HTTP/1.1\r\n\(host)\(key)X-A: a\r\n X-Remote-User: mallory\r\n\r\n", .refused(400)),
            Attack("NUL in a header value", "GET /api/job HTTP/1.1\r\n\(host)\(key)X-A: a\u{0}b\r\n\r\n", .notHTTP),
            Attack("NUL in a header name", "GET /api/job HTTP/1.1\r\n\(host)\(key)X-\u{0}A: b\r\n\r\n", .notHTTP),
            Attack("escape byte in a header value", "GET /api/job HTTP/1.1\r\n\(host)\(key)X-A: a\u{1B}[31m\r\n\r\n", .notHTTP),
            Attack("DEL in a header value", "GET /api/job HTTP/1.1\r\n\(host)\(key)X-A: a\u{7F}\r\n\r\n", .notHTTP),
            Attack("space in a header name", "GET /api/job HTTP/1.1\r\n\(host)\(key)X A: b\r\n\r\n", .notHTTP),
            Attack("header without colon", "GET /api/job HTTP/1.1\r\n\(host)\(key)X-Remote-User mallory\r\n\r\n", .notHTTP),
        ]
        try await ProxyFixture.with { fx in try await launch(attacks, on: fx) }
    }

    func testRequestLineTricks() async throws {
        let attacks = [
            Attack("absolute-form target", "GET http://evil.example/api/job HTTP/1.1\r\n\(host)\(key)\r\n", .refused(400)),
            Attack("asterisk target", "OPTIONS * HTTP/1.1\r\n\(host)\(key)\r\n", .refused(400)),
            Attack("authority-form target", "CONNECT evil.example:443 HTTP/1.1\r\n\(host)\(key)\r\n", .notHTTP),
            Attack("space inside the target", "GET /api/job /admin HTTP/1.1\r\n\(host)\(key)\r\n", .notHTTP),
            Attack("tab inside the target", "GET /api/job\t/admin HTTP/1.1\r\n\(host)\(key)\r\n", .notHTTP),
            Attack("HTTP/0.9 simple request", "GET /api/job\r\n", .notHTTP),
            Attack("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", .notHTTP),
            Attack("HTTP/3.0 version", "GET /api/job HTTP/3.0\r\n\(host)\(key)\r\n", .notHTTP),
            Attack("lower-case method", "get /api/job HTTP/1.1\r\n\(host)\(key)\r\n", .notHTTP),
            Attack("missing Host", "GET /api/job HTTP/1.1\r\n\(key)\r\n", .refused(400)),
            Attack("two Host headers", "GET /api/job HTTP/1.1\r\n\(host)Host: evil.example\r\n\(key)\r\n", .refused(400)),
        ]
        // An HTTP/0.9 line never completes an HTTP/1 head: the client-header timeout ends it.
        try await ProxyFixture.with({ config in config.timeouts.clientHeader = .seconds(1) }) { fx in
            try await launch(attacks, on: fx)
        }
    }
}
