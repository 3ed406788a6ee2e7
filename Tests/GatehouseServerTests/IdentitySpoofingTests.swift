import GatehouseCore
import GatehouseTestSupport
import XCTest

/// End to end: a client cannot tell the device who it is, where it came from or how the
/// connection is framed; identity reaches the device only through the headers Gatehouse sets.
final class IdentitySpoofingTests: XCTestCase {
    private let key = "X-Api-Key: \(ProxyFixture.aliceKey)"

    /// `name` in every spelling a WSGI device would merge into one, each claiming `value`.
    private func spellings(of canonical: String, value: String) -> [String] {
        let lower = canonical.lowercased()
        let variants = [
            canonical,                                                     // X-Remote-User
            lower,                                                         // x-remote-user
            canonical.replacingOccurrences(of: "-", with: "_"),            // X_Remote_User
            canonical.uppercased(),                                        // X-REMOTE-USER
            lower.replacingOccurrences(of: "-", with: "_", options: [], range: lower.range(of: "-")),  // x_remote-user
            canonical,                                                     // a duplicate
        ]
        return variants.map { "\($0): \(value)" }
    }

    /// Header lines of the recorded request whose value mentions `text`, for failure messages.
    private func linesMentioning(_ text: String, in request: RecordedRequest?) -> [String] {
        (request?.headers ?? []).filter { $0.value.contains(text) }.map { "\($0.name): \($0.value)" }
    }

    // MARK: Identity headers

    func testSpoofedUserHeaderInEverySpellingIsReplacedByExactlyOneAuthenticatedUser() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key] + spellings(of: "X-Remote-User", value: "mallory"))
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Remote-User"), ["alice"])
            XCTAssertEqual(linesMentioning("mallory", in: seen), [])
        }
    }

    func testDuplicateSpoofedUserHeadersWithDifferentValuesAreReplacedByOne() async throws {
        try await ProxyFixture.with { fx in
            let lines = [key, "X-Remote-User: mallory", "X-Remote-User: admin", "x-remote-user: root", "X_REMOTE_USER: eve"]
            let response = try AuthTest.send(fx, "GET", "/api/printer", lines)
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("X-Remote-User"), ["alice"])
        }
    }

    func testSpoofedRolesHeaderInEverySpellingIsReplacedByTheKeyRoles() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key] + spellings(of: "X-Remote-Roles", value: "superuser"))
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Remote-Roles"), ["admin,operator"])
            XCTAssertEqual(linesMentioning("superuser", in: seen), [])
        }
    }

    func testSpoofedAuthMethodHeaderInEverySpellingIsReplacedByTheRealMethod() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key] + spellings(of: "X-Remote-Auth", value: "trusted_network"))
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("X-Remote-Auth"), ["api_key"])
        }
    }

    func testSpoofedIdentityWithoutCredentialIsUnauthorized() async throws {
        try await ProxyFixture.with { fx in
            let lines = spellings(of: "X-Remote-User", value: "alice") + ["X-Remote-Auth: api_key"]
            let response = try AuthTest.send(fx, "GET", "/api/printer", lines)
            AuthTest.assertUnauthorized(response, fx)
        }
    }

    func testStripHeadersEntryIsRemovedInEverySpelling() async throws {
        try await ProxyFixture.with({ $0.stripHeaders = ["X-Internal-Token"] }) { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key] + spellings(of: "X-Internal-Token", value: "forged-token"))
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Internal-Token"), [])
            XCTAssertEqual(linesMentioning("forged-token", in: seen), [])
        }
    }

    // MARK: Connection and hop-by-hop headers

    func testConnectionNamingAnIdentityHeaderIsAMalformedRequest() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key, "Connection: X-Remote-User, X-Foo", "X-Foo: bar"])
            XCTAssertEqual(response.status, 400)
            XCTAssertEqual(fx.upstream.requests.count, 0)
        }
    }

    func testHeaderNamedInConnectionIsNotForwarded() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key, "Connection: X-Foo", "X-Foo: bar", "X-Kept: yes"])
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Foo"), [])
            XCTAssertEqual(seen?.values("X-Kept"), ["yes"])
        }
    }

    func testHopByHopHeadersAreNotForwarded() async throws {
        try await ProxyFixture.with { fx in
            let lines = [key, "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive", "TE: trailers", "Trailer: Expires"]
            let response = try AuthTest.send(fx, "GET", "/api/printer", lines)
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            for name in ["Keep-Alive", "Proxy-Connection", "TE", "Trailer"] {
                XCTAssertEqual(seen?.values(name), [], "\(name) was forwarded")
            }
        }
    }

    /// The device's hop-by-hop headers stay between it and Gatehouse; every other line of its head
    /// reaches the client in order, and the client's connection stays usable. With more of them
    /// than the scanner keeps inline, the head is passed on field by field instead.
    func testTheDevicesHopByHopHeadersAreNotPassedOn() async throws {
        try await ProxyFixture.with { fx in
            let c = try fx.client(timeout: 5)
            for query in ["", "?many=1", ""] {
                let response = try c.request("GET /hop-by-hop\(query) HTTP/1.1\r\nHost: gatehouse.test\r\n\(StreamTest.keyHeader)\r\n\r\n")
                XCTAssertEqual(response.status, 200, query)
                XCTAssertEqual(response.bodyText, "ok", query)
                let names = response.headers.map { $0.name.lowercased() }
                let expected = query.isEmpty ? ["x-before", "x-middle", "x-after"] : ["x-before", "x-middle", "x-between", "x-after"]
                XCTAssertEqual(names.filter { $0.hasPrefix("x-") }, expected, query)
                for name in ["keep-alive", "proxy-connection", "te", "trailer", "upgrade"] {
                    XCTAssertFalse(names.contains(name), "\(name) was passed on (\(query))")
                }
                XCTAssertEqual(response.headers.filter { $0.name.lowercased() == "connection" }.map(\.value), [], query)
            }
        }
    }

    func testUpgradeOnNonWebSocketRequestIsNotForwarded() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key, "Upgrade: h2c"])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("Upgrade"), [])
        }
    }

    // MARK: Forwarding headers

    func testForwardedProtoIsHttp() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("X-Forwarded-Proto"), ["http"])
        }
    }

    func testForwardedHostIsTheClientHost() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("X-Forwarded-Host"), ["gatehouse.test"])
        }
    }

    func testSpoofedForwardedProtoAndHostFromUntrustedClientAreReplaced() async throws {
        try await ProxyFixture.with { fx in
            let lines = [key, "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example", "x_forwarded_host: evil2.example"]
            let response = try AuthTest.send(fx, "GET", "/api/printer", lines)
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.values("X-Forwarded-Proto"), ["http"])
            XCTAssertEqual(seen?.values("X-Forwarded-Host"), ["gatehouse.test"])
        }
    }

    func testForwardedHeaderFromUntrustedClientIsRemoved() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key, "Forwarded: for=10.0.0.1;proto=https;host=evil.example"])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("Forwarded"), [])
        }
    }

    func testXRealIPFromUntrustedClientIsRemoved() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/api/printer", [key, "X-Real-IP: 10.0.0.1", "x_real_ip: 10.0.0.2"])
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(AuthTest.onlyUpstreamRequest(fx)?.values("X-Real-IP"), [])
        }
    }

    // MARK: Public paths

    private static func staticIsPublic(_ config: inout GatehouseConfig) { config.publicPaths = ["/static"] }

    func testPublicPathPassesAnonymouslyWithoutIdentityHeaders() async throws {
        try await ProxyFixture.with(Self.staticIsPublic) { fx in
            let response = try AuthTest.send(fx, "GET", "/static/app.js")
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            XCTAssertEqual(seen?.uri, "/static/app.js")
            for name in ["X-Remote-User", "X-Remote-Roles", "X-Remote-Auth"] {
                XCTAssertEqual(seen?.values(name), [], "\(name) on an anonymous request")
            }
        }
    }

    func testPublicPathStripsSpoofedIdentityHeaders() async throws {
        try await ProxyFixture.with(Self.staticIsPublic) { fx in
            let lines = spellings(of: "X-Remote-User", value: "admin") + spellings(of: "X-Remote-Roles", value: "admin")
                + spellings(of: "X-Remote-Auth", value: "api_key")
            let response = try AuthTest.send(fx, "GET", "/static/app.js", lines)
            XCTAssertEqual(response.status, 200)
            let seen = AuthTest.onlyUpstreamRequest(fx)
            for name in ["X-Remote-User", "X-Remote-Roles", "X-Remote-Auth"] {
                XCTAssertEqual(seen?.values(name), [], "spoofed \(name) reached the device")
            }
        }
    }

    func testPathExtendingPublicPrefixWithoutSegmentBoundaryIsUnauthorized() async throws {
        try await ProxyFixture.with(Self.staticIsPublic) { fx in
            AuthTest.assertUnauthorized(try AuthTest.send(fx, "GET", "/staticsecret"), fx)
        }
    }

    func testDotSegmentOutOfPublicPathIsUnauthorized() async throws {
        try await ProxyFixture.with(Self.staticIsPublic) { fx in
            AuthTest.assertUnauthorized(try AuthTest.send(fx, "GET", "/static/../api/x"), fx)
        }
    }

    func testEncodedDotSegmentOutOfPublicPathIsUnauthorized() async throws {
        try await ProxyFixture.with(Self.staticIsPublic) { fx in
            AuthTest.assertUnauthorized(try AuthTest.send(fx, "GET", "/static/%2e%2e/api"), fx)
        }
    }

    // MARK: Gatehouse's own endpoints

    func testHealthzAnswersOkWithoutReachingUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/_gatehouse/healthz")
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.bodyText, "ok\n")
            XCTAssertTrue(fx.upstream.requests.isEmpty)
            XCTAssertEqual(fx.upstream.connectionsAccepted, 0)
        }
    }

    func testUnknownGatehouseEndpointIsNotFoundWithoutReachingUpstream() async throws {
        try await ProxyFixture.with { fx in
            let response = try AuthTest.send(fx, "GET", "/_gatehouse/other", [key])
            XCTAssertEqual(response.status, 404)
            XCTAssertTrue(fx.upstream.requests.isEmpty)
            XCTAssertEqual(fx.upstream.connectionsAccepted, 0)
        }
    }
}
