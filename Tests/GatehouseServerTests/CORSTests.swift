import Foundation
import GatehouseCore
import GatehouseTestSupport
import XCTest

/// `cors:`: preflights answered by Gatehouse and never forwarded; only allowed origins get CORS
/// headers; credentials never with a wildcard.
final class CORSTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)"
    private let app = "https://app.example.com"

    private static func preflight(origin: String, method: String = "POST", headers: String = "x-api-key, content-type") -> [String] {
        ["Origin: \(origin)", "Access-Control-Request-Method: \(method)", "Access-Control-Request-Headers: \(headers)"]
    }

    private func configured(_ origins: [String]) -> (inout GatehouseConfig) -> Void {
        { config in config.cors = CORSPolicy(allowedOrigins: origins, proxiedPaths: ["/api/"], maxAgeSeconds: 300) }
    }

    func testPreflightsAreAnsweredHereForAllowedOriginsOnly() async throws {
        try await ProxyFixture.with(configured([app])) { fx in
            let ok = try AuthTest.send(fx, "OPTIONS", "/api/job", Self.preflight(origin: app))
            XCTAssertEqual(ok.status, 200)
            XCTAssertEqual(ok.header("Access-Control-Allow-Origin"), app)
            XCTAssertEqual(ok.header("Access-Control-Allow-Credentials"), "true")
            XCTAssertEqual(ok.header("Access-Control-Allow-Headers"), "x-api-key, content-type")
            XCTAssertEqual(ok.header("Access-Control-Max-Age"), "300")
            XCTAssertTrue(ok.header("Access-Control-Allow-Methods")?.contains("POST") ?? false)
            XCTAssertEqual(ok.header("Vary"), "Origin")

            let own = try AuthTest.send(fx, "OPTIONS", "/_gatehouse/api/login", Self.preflight(origin: app))
            XCTAssertEqual(own.status, 200)
            XCTAssertEqual(own.header("Access-Control-Allow-Origin"), app)

            let foreign = try AuthTest.send(fx, "OPTIONS", "/api/job", Self.preflight(origin: "https://evil.example"))
            XCTAssertEqual(foreign.status, 403)
            XCTAssertNil(foreign.header("Access-Control-Allow-Origin"))

            let badHeaders = try AuthTest.send(fx, "OPTIONS", "/api/job", Self.preflight(origin: app, headers: "x-a\u{7F}"))
            XCTAssertNotEqual(badHeaders.status, 200)

            let elsewhere = try AuthTest.send(fx, "OPTIONS", "/webcam/", Self.preflight(origin: app))
            XCTAssertEqual(elsewhere.status, 401, "not a CORS path: the gate decides, and a preflight has no credential")
            XCTAssertTrue(fx.upstream.requests.isEmpty, "a preflight reached the device: \(fx.upstream.requests.map(\.uri))")
        }
    }

    func testResponsesCarryTheHeadersForAnAllowedOriginOnly() async throws {
        try await ProxyFixture.with(configured([app])) { fx in
            let proxied = try AuthTest.send(fx, "GET", "/api/job", [key, "Origin: \(app)"])
            XCTAssertEqual(proxied.status, 200)
            XCTAssertEqual(proxied.header("Access-Control-Allow-Origin"), app)
            XCTAssertEqual(proxied.header("Access-Control-Allow-Credentials"), "true")

            let refused = try AuthTest.send(fx, "GET", "/api/job", ["Origin: \(app)"])
            XCTAssertEqual(refused.status, 401)
            XCTAssertEqual(refused.header("Access-Control-Allow-Origin"), app, "the app can read why it was refused")

            let foreign = try AuthTest.send(fx, "GET", "/api/job", [key, "Origin: https://evil.example"])
            XCTAssertEqual(foreign.status, 200)
            XCTAssertNil(foreign.header("Access-Control-Allow-Origin"), "the browser will not let evil.example read it")

            let outside = try AuthTest.send(fx, "GET", "/webcam/", [key, "Origin: \(app)"])
            XCTAssertNil(outside.header("Access-Control-Allow-Origin"), "not a CORS path")
        }
    }

    func testAWildcardNeverAllowsCredentials() async throws {
        try await ProxyFixture.with(configured(["*"])) { fx in
            let pre = try AuthTest.send(fx, "OPTIONS", "/api/job", Self.preflight(origin: "https://anyone.example"))
            XCTAssertEqual(pre.status, 200)
            XCTAssertEqual(pre.header("Access-Control-Allow-Origin"), "*")
            XCTAssertNil(pre.header("Access-Control-Allow-Credentials"))
            let r = try AuthTest.send(fx, "GET", "/api/job", [key, "Origin: https://anyone.example", "Cookie: gatehouse_session=x"])
            XCTAssertEqual(r.header("Access-Control-Allow-Origin"), "*")
            XCTAssertNil(r.header("Access-Control-Allow-Credentials"))
        }
    }

    func testConfiguration() throws {
        let config = try ConfigLoader.parse(yaml: "cors: {allowed_origins: ['https://App.example.com:8443', '*'], paths: [/api/], max_age: 1m}\n")
        XCTAssertEqual(config.cors.allowedOrigins, ["https://app.example.com:8443", "*"])
        XCTAssertEqual(config.cors.maxAgeSeconds, 60)
        for bad in ["cors: {allowed_origins: ['https://app.example.com/path']}", "cors: {allowed_origins: [app.example.com]}",
                    "cors: {paths: [api]}", "cors: {origins: []}"] {
            XCTAssertThrowsError(try ConfigLoader.parse(yaml: bad + "\n"), bad)
        }
    }
}
