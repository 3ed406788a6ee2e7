import Foundation
import GatehouseCore
import XCTest

/// Small helpers shared by the authentication, trusted-network, spoofing and config-command
/// tests. Kept in a namespace so they cannot collide with helpers of other test files.
public enum AuthTest {
    /// Sends one request with exact header lines (`Host: gatehouse.test` and `Connection: close`
    /// are added) and reads its response.
    public static func send(
        _ fx: ProxyFixture, _ method: String, _ target: String, _ headerLines: [String] = [], body: String = "",
        host: String = "127.0.0.1"
    ) throws -> RawResponse {
        let client = try fx.client(host: host)
        var raw = "\(method) \(target) HTTP/1.1\r\nHost: gatehouse.test\r\n"
        for line in headerLines { raw += line + "\r\n" }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) { raw += "Content-Length: \(body.utf8.count)\r\n" }
        raw += "Connection: close\r\n\r\n" + body
        return try client.request(raw)
    }

    /// The `detail` string of a Gatehouse JSON error body, nil when the body is not that.
    public static func detail(_ response: RawResponse) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else { return nil }
        return object["detail"] as? String
    }

    /// A CIDR from text known to be valid.
    public static func cidr(_ text: String) -> CIDR {
        do {
            return try CIDR(parsing: text)
        } catch {
            preconditionFailure("bad CIDR in a test: \(text)")
        }
    }

    /// Asserts a 401 refusal as Gatehouse writes it: the Bearer challenge, a JSON `detail` that
    /// does not echo `secret`, and nothing at all reached the upstream.
    public static func assertUnauthorized(
        _ response: RawResponse, _ fx: ProxyFixture, secret: String? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(response.status, 401, "status", file: file, line: line)
        XCTAssertEqual(response.header("WWW-Authenticate"), "Bearer realm=\"gatehouse\"", file: file, line: line)
        let detail = Self.detail(response)
        XCTAssertNotNil(detail, "body is not JSON with a detail: \(response.bodyText)", file: file, line: line)
        if let secret {
            XCTAssertFalse(response.bodyText.contains(secret), "the body echoes the credential", file: file, line: line)
            XCTAssertFalse(detail?.contains(secret) ?? false, "the detail echoes the credential", file: file, line: line)
        }
        XCTAssertTrue(fx.upstream.requests.isEmpty, "upstream saw \(fx.upstream.requests.map(\.uri))", file: file, line: line)
    }

    /// Asserts a 403 refusal with a JSON detail, and that nothing reached the upstream.
    public static func assertForbidden(_ response: RawResponse, _ fx: ProxyFixture, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(response.status, 403, "status", file: file, line: line)
        XCTAssertNotNil(detail(response), "body is not JSON with a detail: \(response.bodyText)", file: file, line: line)
        XCTAssertTrue(fx.upstream.requests.isEmpty, "upstream saw \(fx.upstream.requests.map(\.uri))", file: file, line: line)
    }

    /// The only request the upstream saw; fails when it saw none or several.
    public static func onlyUpstreamRequest(_ fx: ProxyFixture, file: StaticString = #filePath, line: UInt = #line) -> RecordedRequest? {
        let seen = fx.upstream.requests
        XCTAssertEqual(seen.count, 1, "upstream saw \(seen.map(\.uri))", file: file, line: line)
        return seen.count == 1 ? seen[0] : nil
    }
}
