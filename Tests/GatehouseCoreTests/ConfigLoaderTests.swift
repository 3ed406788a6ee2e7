import Foundation
import XCTest

@testable import GatehouseCore

final class ConfigLoaderTests: XCTestCase {
    static let slicerHash = SecretDigest.of("slicer-key").description
    static let printerHash = SecretDigest.of("printer-key").description
    static let kioskHash = SecretDigest.of("kiosk-key").description

    /// The sample config; the comment on each line is its line number.
    static var sampleLines: [String] {
        [
            #"listen: "0.0.0.0:8080""#,  // 1
            #"upstream: "http://127.0.0.1:5000""#,  // 2
            "identity_headers: {user: X-Remote-User, roles: X-Remote-Roles, method: X-Remote-Auth}",  // 3
            "strip_headers: []",  // 4
            "forward_credentials: false",  // 5
            "query_api_key: false",  // 6
            "public_paths: []",  // 7
            "api_keys:",  // 8
            #"  - {name: slicer, user: alice, roles: [admin], hash: "\#(slicerHash)", read_only: false, expires: "2027-01-31T00:00:00Z", disabled: false}"#,  // 9
            "trusted_networks:",  // 10
            #"  - {cidr: "192.168.1.0/24", user: lan, roles: [viewer]}"#,  // 11
            "trusted_proxies: []",  // 12
            "timeouts: {upstream_connect: 5s, upstream_response: 60s, client_header: 10s, idle: 75s, drain: 20s}",  // 13
            "limits: {max_head_bytes: 32768, max_headers: 100, max_uri_bytes: 8192, max_body_bytes: 0}",  // 14
        ]
    }

    static var sample: String { sampleLines.joined(separator: "\n") + "\n" }

    /// The sample with 1-based line `number` replaced by `replacement` (which may hold several lines).
    static func sample(replacingLine number: Int, with replacement: String) -> String {
        var lines = sampleLines
        lines[number - 1] = replacement
        return lines.joined(separator: "\n") + "\n"
    }

    func parseError(_ yaml: String, fileName: String = "config.yml", file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            let config = try ConfigLoader.parse(yaml: yaml, fileName: fileName)
            XCTFail("expected a ConfigError, got \(config)", file: file, line: line)
            return nil
        } catch {
            return error
        }
    }

    func assertError(
        _ yaml: String, line expectedLine: Int?, keyPath: String, messageContains fragment: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        guard let error = parseError(yaml, file: file, line: line) else { return }
        XCTAssertEqual(error.file, "config.yml", file: file, line: line)
        XCTAssertEqual(error.line, expectedLine, "\(error)", file: file, line: line)
        XCTAssertEqual(error.keyPath, keyPath, "\(error)", file: file, line: line)
        XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' should contain '\(fragment)'", file: file, line: line)
    }

    // MARK: Valid configs

    func testSampleConfigParsesIntoTypedValues() throws {
        let config = try ConfigLoader.parse(yaml: Self.sample, fileName: "config.yml")
        XCTAssertEqual(config.listen, ListenAddress(host: "0.0.0.0", port: 8080))
        XCTAssertEqual(config.upstream, .tcp(host: "127.0.0.1", port: 5000))
        XCTAssertEqual(config.identityHeaders, IdentityHeaderNames(user: "X-Remote-User", roles: "X-Remote-Roles", method: "X-Remote-Auth"))
        XCTAssertEqual(config.stripHeaders, [])
        XCTAssertFalse(config.forwardCredentials)
        XCTAssertFalse(config.queryAPIKey)
        XCTAssertEqual(config.publicPaths, [])
        XCTAssertEqual(
            config.apiKeys,
            [
                APIKeyRecord(
                    name: "slicer", user: "alice", roles: ["admin"], digest: SecretDigest.of("slicer-key"), readOnly: false,
                    expires: Fixture.date("2027-01-31T00:00:00Z"), disabled: false)
            ])
        XCTAssertEqual(config.trustedNetworks, [TrustedNetwork(cidr: Fixture.cidr("192.168.1.0/24"), user: "lan", roles: ["viewer"])])
        XCTAssertEqual(config.trustedProxies, [])
        XCTAssertEqual(config.timeouts.upstreamConnect, .seconds(5))
        XCTAssertEqual(config.timeouts.upstreamResponse, .seconds(60))
        XCTAssertEqual(config.timeouts.clientHeader, .seconds(10))
        XCTAssertEqual(config.timeouts.idle, .seconds(75))
        XCTAssertEqual(config.timeouts.drain, .seconds(20))
        XCTAssertEqual(config.limits.maxHeadBytes, 32768)
        XCTAssertEqual(config.limits.maxHeaders, 100)
        XCTAssertEqual(config.limits.maxURIBytes, 8192)
        XCTAssertEqual(config.limits.maxBodyBytes, 0)
    }

    func testEveryKeyIsReadWhenItDiffersFromTheDefault() throws {
        let yaml = """
            listen: "[::1]:9090"
            upstream: "unix:/run/device.sock"
            identity_headers:
              user: X-User
              roles: X-Groups
              method: X-Via
            strip_headers: [X-Internal-Token, X_Debug]
            forward_credentials: true
            query_api_key: true
            access_log: false
            public_paths: [/static, /healthz]
            api_keys:
              - name: slicer
                user: alice
                roles: [admin, ops]
                hash: "\(Self.slicerHash)"
                read_only: true
                expires: 2027-01-31T00:00:00Z
                disabled: true
              - {name: printer, user: bob, hash: "\(Self.printerHash)"}
            trusted_networks:
              - {cidr: "fd00::/8", user: lan6}
              - {cidr: 10.1.0.0/16, user: lan4, roles: [viewer, guest]}
            trusted_proxies: ["10.0.0.1", "2001:db8::/32"]
            timeouts: {upstream_connect: 1m, upstream_response: 2h, client_header: 3s, idle: 1d, drain: 0}
            limits: {max_head_bytes: 1024, max_headers: 8, max_uri_bytes: 256, max_body_bytes: 1048576}
            """
        let config = try ConfigLoader.parse(yaml: yaml)
        XCTAssertEqual(config.listen, ListenAddress(host: "::1", port: 9090))
        XCTAssertEqual(config.upstream, .unixSocket(path: "/run/device.sock"))
        XCTAssertEqual(config.identityHeaders, IdentityHeaderNames(user: "X-User", roles: "X-Groups", method: "X-Via"))
        XCTAssertEqual(config.stripHeaders, ["X-Internal-Token", "X_Debug"])
        XCTAssertTrue(config.forwardCredentials)
        XCTAssertTrue(config.queryAPIKey)
        XCTAssertFalse(config.accessLog)
        XCTAssertEqual(config.publicPaths, ["/static", "/healthz"])
        XCTAssertEqual(
            config.apiKeys,
            [
                APIKeyRecord(
                    name: "slicer", user: "alice", roles: ["admin", "ops"], digest: SecretDigest.of("slicer-key"), readOnly: true,
                    expires: Fixture.date("2027-01-31T00:00:00Z"), disabled: true),
                APIKeyRecord(name: "printer", user: "bob", roles: [], digest: SecretDigest.of("printer-key")),
            ])
        XCTAssertEqual(
            config.trustedNetworks,
            [
                TrustedNetwork(cidr: Fixture.cidr("fd00::/8"), user: "lan6", roles: []),
                TrustedNetwork(cidr: Fixture.cidr("10.1.0.0/16"), user: "lan4", roles: ["viewer", "guest"]),
            ])
        XCTAssertEqual(config.trustedProxies, [Fixture.cidr("10.0.0.1"), Fixture.cidr("2001:db8::/32")])
        XCTAssertEqual(config.timeouts.upstreamConnect, .minutes(1))
        XCTAssertEqual(config.timeouts.upstreamResponse, .seconds(7200))
        XCTAssertEqual(config.timeouts.clientHeader, .seconds(3))
        XCTAssertEqual(config.timeouts.idle, .seconds(86400))
        XCTAssertEqual(config.timeouts.drain, .zero)
        XCTAssertEqual(config.limits.maxHeadBytes, 1024)
        XCTAssertEqual(config.limits.maxHeaders, 8)
        XCTAssertEqual(config.limits.maxURIBytes, 256)
        XCTAssertEqual(config.limits.maxBodyBytes, 1_048_576)
    }

    func testEmptyMappingGivesTheDefaults() throws {
        let config = try ConfigLoader.parse(yaml: "{}\n")
        XCTAssertEqual(config.listen, GatehouseConfig().listen)
        XCTAssertEqual(config.upstream, GatehouseConfig().upstream)
        XCTAssertEqual(config.identityHeaders, IdentityHeaderNames())
        XCTAssertEqual(config.timeouts, GatehouseConfig.Timeouts())
        XCTAssertEqual(config.limits, GatehouseConfig.Limits())
        XCTAssertTrue(config.apiKeys.isEmpty)
        XCTAssertTrue(config.accessLog)
    }

    func testNullListsAreEmpty() throws {
        let config = try ConfigLoader.parse(yaml: "api_keys:\ntrusted_networks: ~\nstrip_headers: null\n")
        XCTAssertTrue(config.apiKeys.isEmpty)
        XCTAssertTrue(config.trustedNetworks.isEmpty)
        XCTAssertTrue(config.stripHeaders.isEmpty)
    }

    func testAccessLogTrueAndFalseAreRead() throws {
        XCTAssertTrue(ConfigReader.topLevelKeys.contains("access_log"))
        XCTAssertTrue(try ConfigLoader.parse(yaml: "access_log: true\n").accessLog)
        XCTAssertFalse(try ConfigLoader.parse(yaml: "access_log: false\n").accessLog)
    }

    func testAccessLogMustBeABoolean() {
        assertError("listen: \"0.0.0.0:8080\"\naccess_log: \"yes\"\n", line: 2, keyPath: "access_log", messageContains: "expected true or false")
    }

    /// The settings added for Basic, OctoPrint, the audit log, the log format and metrics: their
    /// defaults, and errors naming key and line.
    func testOperationalSettingsDefaultsAndErrors() throws {
        let defaults = try ConfigLoader.parse(yaml: "listen: \"0.0.0.0:8080\"\n")
        XCTAssertFalse(defaults.basicAuth)
        XCTAssertFalse(defaults.octoPrintCSRF)
        XCTAssertEqual(defaults.auditLog, "stdout")
        XCTAssertEqual(defaults.logFormat, .text)
        XCTAssertEqual(defaults.metricsRoles, ["admin"])
        let set = try ConfigLoader.parse(yaml: "basic_auth: true\noctoprint_csrf: true\naudit_log: \"off\"\nlog: {format: json}\nmetrics: {roles: [monitoring]}\n")
        XCTAssertTrue(set.basicAuth)
        XCTAssertTrue(set.octoPrintCSRF)
        XCTAssertEqual(set.auditLog, "off")
        XCTAssertEqual(set.logFormat, .json)
        XCTAssertEqual(set.metricsRoles, ["monitoring"])
        assertError("listen: \"0.0.0.0:8080\"\nbasic_auth: \"yes\"\n", line: 2, keyPath: "basic_auth", messageContains: "expected true or false")
        assertError("listen: \"0.0.0.0:8080\"\noctoprint_csrf: 1\n", line: 2, keyPath: "octoprint_csrf", messageContains: "expected true or false")
        assertError("listen: \"0.0.0.0:8080\"\naudit_log: \"\"\n", line: 2, keyPath: "audit_log", messageContains: "stdout, off, or a file path")
        assertError("listen: \"0.0.0.0:8080\"\nlog:\n  format: xml\n", line: 3, keyPath: "log.format", messageContains: "expected text or json")
        assertError("listen: \"0.0.0.0:8080\"\nlog:\n  level: debug\n", line: 3, keyPath: "log.level", messageContains: "unknown key")
        assertError("listen: \"0.0.0.0:8080\"\nmetrics:\n  roles: []\n", line: 3, keyPath: "metrics.roles", messageContains: "at least one role")
        assertError("listen: \"0.0.0.0:8080\"\nmetrics:\n  roles: [\"ops team\"]\n", line: 3, keyPath: "metrics.roles[0]", messageContains: "role name")
    }

    func testMissingExpiryMeansTheKeyNeverExpires() throws {
        let config = try ConfigLoader.parse(yaml: Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: alice, hash: "\#(Self.slicerHash)", expires: null}"#))
        XCTAssertNil(config.apiKeys[0].expires)
        XCTAssertFalse(config.apiKeys[0].readOnly)
        XCTAssertFalse(config.apiKeys[0].disabled)
        XCTAssertEqual(config.apiKeys[0].roles, [])
    }

    func testExpiryWithOffsetIsConvertedToUTC() throws {
        let config = try ConfigLoader.parse(
            yaml: Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: alice, hash: "\#(Self.slicerHash)", expires: "2027-01-31T02:00:00+02:00"}"#))
        XCTAssertEqual(config.apiKeys[0].expires, Fixture.date("2027-01-31T00:00:00Z"))
    }

    func testUppercaseHexHashIsAccepted() throws {
        let upper = "sha256:" + Self.slicerHash.dropFirst("sha256:".count).uppercased()
        let config = try ConfigLoader.parse(yaml: Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: alice, hash: "\#(upper)"}"#))
        XCTAssertEqual(config.apiKeys[0].digest, SecretDigest.of("slicer-key"))
    }

    // MARK: Located errors

    func testMisspelledTopLevelKeyIsRefusedAsUnknownWithItsLine() {
        assertError(Self.sample(replacingLine: 7, with: #"listn: "0.0.0.0:9090""#), line: 7, keyPath: "listn", messageContains: "unknown key")
    }

    func testUnknownKeyInTimeoutsIsRefusedWithItsNestedPath() {
        let yaml = Self.sample(replacingLine: 13, with: "timeouts:\n  upstream_connect: 5s\n  upstream_conect: 5s")
        assertError(yaml, line: 15, keyPath: "timeouts.upstream_conect", messageContains: "unknown key")
    }

    func testUnknownKeyInAnAPIKeyIsRefusedWithItsIndex() {
        let yaml = Self.sample(replacingLine: 9, with: "  - {name: slicer, user: alice, hash: \"\(Self.slicerHash)\"}\n  - {name: b, user: bob, hash: \"\(Self.printerHash)\", role: [x]}")
        assertError(yaml, line: 10, keyPath: "api_keys[1].role", messageContains: "unknown key")
    }

    func testQuotedYesIsRefusedWhereABooleanIsExpected() {
        assertError(Self.sample(replacingLine: 5, with: #"forward_credentials: "yes""#), line: 5, keyPath: "forward_credentials", messageContains: "expected true or false")
    }

    func testPlainYesIsRefusedWhereABooleanIsExpected() {
        assertError(Self.sample(replacingLine: 6, with: "query_api_key: yes"), line: 6, keyPath: "query_api_key", messageContains: "expected true or false")
    }

    func testListWhereAMappingIsExpectedIsRefused() {
        assertError(Self.sample(replacingLine: 13, with: "timeouts: [5s]"), line: 13, keyPath: "timeouts", messageContains: "expected a mapping")
    }

    func testHostBitsInSecondTrustedNetworkAreRefusedWithItsPath() {
        let yaml = Self.sample(replacingLine: 11, with: "  - {cidr: \"192.168.1.0/24\", user: lan}\n  - {cidr: \"192.168.2.7/24\", user: lan2}")
        assertError(yaml, line: 12, keyPath: "trusted_networks[1].cidr", messageContains: "host bits set")
    }

    func testNonAddressInSecondTrustedNetworkIsRefusedWithItsPath() {
        let yaml = Self.sample(replacingLine: 11, with: "  - {cidr: \"192.168.1.0/24\", user: lan}\n  - {cidr: \"300.1.1.0/24\", user: lan2}")
        assertError(yaml, line: 12, keyPath: "trusted_networks[1].cidr", messageContains: "'300.1.1.0/24' is not an IPv4 or IPv6 address")
    }

    func testPrefixOutOfRangeInTrustedProxiesIsRefused() {
        assertError(Self.sample(replacingLine: 12, with: #"trusted_proxies: ["10.0.0.0/8", "10.0.0.0/40"]"#), line: 12, keyPath: "trusted_proxies[1]", messageContains: "prefix length out of range")
    }

    func testTrustedNetworkWithoutUserIsRefused() {
        assertError(Self.sample(replacingLine: 11, with: #"  - {cidr: "192.168.1.0/24"}"#), line: 11, keyPath: "trusted_networks[0]", messageContains: "needs cidr and user")
    }

    func testCombinedDurationIsRefusedWithItsPath() {
        let yaml = Self.sample(replacingLine: 13, with: "timeouts: {upstream_connect: 5s, upstream_response: 1h30m, client_header: 10s, idle: 75s, drain: 20s}")
        assertError(yaml, line: 13, keyPath: "timeouts.upstream_response", messageContains: "expected a duration like 30s, 5m, 1h or 7d")
    }

    func testZeroTimeoutIsRefused() {
        assertError(Self.sample(replacingLine: 13, with: "timeouts:\n  idle: 0"), line: 14, keyPath: "timeouts.idle", messageContains: "must be longer than 0")
    }

    func testZeroDrainIsAllowed() throws {
        XCTAssertEqual(try ConfigLoader.parse(yaml: Self.sample(replacingLine: 13, with: "timeouts: {drain: 0}")).timeouts.drain, .zero)
    }

    func testNonHTTPUpstreamIsRefused() {
        assertError(Self.sample(replacingLine: 2, with: #"upstream: "ftp://x""#), line: 2, keyPath: "upstream", messageContains: "expected http://host:port, https://host:port or unix:/path/to.sock")
    }

    func testUpstreamWithPathIsRefused() {
        assertError(Self.sample(replacingLine: 2, with: #"upstream: "http://127.0.0.1:5000/api""#), line: 2, keyPath: "upstream", messageContains: "expected http://")
    }

    func testListenWithoutHostIsRefused() {
        assertError(Self.sample(replacingLine: 1, with: #"listen: "8080""#), line: 1, keyPath: "listen", messageContains: "expected host:port or [v6]:port")
    }

    func testListenWithUnbracketedIPv6IsRefused() {
        assertError(Self.sample(replacingLine: 1, with: #"listen: "::1:8080""#), line: 1, keyPath: "listen", messageContains: "expected host:port")
    }

    func testBadExpiryDateOnThirdKeyNamesLineAndPathExactly() {
        let yaml = Self.sample(
            replacingLine: 9,
            with: """
                  - {name: slicer, user: alice, hash: "\(Self.slicerHash)"}
                  - {name: printer, user: bob, hash: "\(Self.printerHash)", expires: "2027-01-31T00:00:00Z"}
                  - {name: kiosk, user: carol, hash: "\(Self.kioskHash)", expires: "31/01/2027"}
                """)
        guard let error = parseError(yaml) else { return }
        XCTAssertEqual(error.description, "config.yml:11: api_keys[2].expires: expected a date like 2027-01-31T00:00:00Z")
    }

    func testDateWithoutTimeIsRefused() {
        let yaml = Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: alice, hash: "\#(Self.slicerHash)", expires: "2027-01-31"}"#)
        assertError(yaml, line: 9, keyPath: "api_keys[0].expires", messageContains: "expected a date like 2027-01-31T00:00:00Z")
    }

    func testHashWithoutSha256PrefixIsRefused() {
        let hex = String(Self.slicerHash.dropFirst("sha256:".count))
        for hash in [hex, "md5:" + hex, "SHA256:" + hex] {
            let yaml = Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: alice, hash: "\#(hash)"}"#)
            assertError(yaml, line: 9, keyPath: "api_keys[0].hash", messageContains: "expected sha256: and 64 hex digits")
        }
    }

    func testHashWithWrongLengthOrNonHexIsRefused() {
        let hex = String(Self.slicerHash.dropFirst("sha256:".count))
        for hash in ["sha256:" + hex.dropLast(), "sha256:" + hex + "0", "sha256:" + hex.dropLast() + "g", "sha256:"] {
            let yaml = Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: alice, hash: "\#(hash)"}"#)
            assertError(yaml, line: 9, keyPath: "api_keys[0].hash", messageContains: "expected sha256: and 64 hex digits")
        }
    }

    func testHashErrorNeverEchoesTheValue() {
        let key = APIKeyGenerator.generate()
        let yaml = Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: alice, hash: "\#(key)"}"#)
        guard let error = parseError(yaml) else { return }
        XCTAssertFalse(error.description.contains(key))
    }

    func testDuplicateKeyNamesAreRefused() {
        let yaml = Self.sample(replacingLine: 9, with: "  - {name: slicer, user: alice, hash: \"\(Self.slicerHash)\"}\n  - {name: slicer, user: bob, hash: \"\(Self.printerHash)\"}")
        assertError(yaml, line: 10, keyPath: "api_keys[1].name", messageContains: "another key already has the name 'slicer'")
    }

    func testDuplicateHashesAreRefused() {
        let yaml = Self.sample(replacingLine: 9, with: "  - {name: slicer, user: alice, hash: \"\(Self.slicerHash)\"}\n  - {name: printer, user: bob, hash: \"\(Self.slicerHash)\"}")
        assertError(yaml, line: 10, keyPath: "api_keys[1].hash", messageContains: "another key already has this hash")
    }

    func testDuplicateHashesDifferingOnlyInHexCaseAreRefused() {
        let upper = "sha256:" + Self.slicerHash.dropFirst("sha256:".count).uppercased()
        let yaml = Self.sample(replacingLine: 9, with: "  - {name: slicer, user: alice, hash: \"\(Self.slicerHash)\"}\n  - {name: printer, user: bob, hash: \"\(upper)\"}")
        assertError(yaml, line: 10, keyPath: "api_keys[1].hash", messageContains: "another key already has this hash")
    }

    func testAPIKeyWithoutHashIsRefused() {
        assertError(Self.sample(replacingLine: 9, with: "  - {name: slicer, user: alice}"), line: 9, keyPath: "api_keys[0]", messageContains: "needs name, user and hash")
    }

    func testUserNameWithSpaceIsRefused() {
        let yaml = Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: "alice smith", hash: "\#(Self.slicerHash)"}"#)
        assertError(yaml, line: 9, keyPath: "api_keys[0].user", messageContains: "a user name must be 1-64 characters")
    }

    func testUserNameWithCommaIsRefused() {
        let yaml = Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: "alice,bob", hash: "\#(Self.slicerHash)"}"#)
        assertError(yaml, line: 9, keyPath: "api_keys[0].user", messageContains: "a user name must be 1-64 characters")
    }

    func testRoleWithCommaIsRefused() {
        let yaml = Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: alice, roles: [viewer, "admin,root"], hash: "\#(Self.slicerHash)"}"#)
        assertError(yaml, line: 9, keyPath: "api_keys[0].roles[1]", messageContains: "a role must be 1-64 characters")
    }

    func testTrustedNetworkUserWithSpaceIsRefused() {
        assertError(Self.sample(replacingLine: 11, with: #"  - {cidr: "192.168.1.0/24", user: "the lan"}"#), line: 11, keyPath: "trusted_networks[0].user", messageContains: "a user name must be")
    }

    func testUserNameLongerThan64IsRefused() {
        let long = String(repeating: "a", count: 65)
        let yaml = Self.sample(replacingLine: 9, with: #"  - {name: slicer, user: \#(long), hash: "\#(Self.slicerHash)"}"#)
        assertError(yaml, line: 9, keyPath: "api_keys[0].user", messageContains: "a user name must be")
    }

    func testKeyNameWithSlashIsRefused() {
        let yaml = Self.sample(replacingLine: 9, with: #"  - {name: "slicer/1", user: alice, hash: "\#(Self.slicerHash)"}"#)
        assertError(yaml, line: 9, keyPath: "api_keys[0].name", messageContains: "a key name must be")
    }

    func testIdentityHeadersThatCollideAfterFoldingAreRefused() {
        assertError(Self.sample(replacingLine: 3, with: "identity_headers: {user: X-Remote-User, roles: x_remote_user}"), line: 3, keyPath: "identity_headers", messageContains: "must have different names")
    }

    func testIdentityHeaderNameWithSpaceIsRefused() {
        assertError(Self.sample(replacingLine: 3, with: #"identity_headers: {user: "X Remote User"}"#), line: 3, keyPath: "identity_headers.user", messageContains: "expected an HTTP header name")
    }

    func testStripHeaderWithColonIsRefused() {
        assertError(Self.sample(replacingLine: 4, with: #"strip_headers: [X-Ok, "X-Bad:"]"#), line: 4, keyPath: "strip_headers[1]", messageContains: "expected an HTTP header name")
    }

    func testPublicPathWithDotSegmentIsRefused() {
        assertError(Self.sample(replacingLine: 7, with: "public_paths: [/static/../admin]"), line: 7, keyPath: "public_paths[0]", messageContains: "expected a path starting with /")
    }

    func testPublicPathWithoutLeadingSlashIsRefused() {
        assertError(Self.sample(replacingLine: 7, with: "public_paths: [/ok, static]"), line: 7, keyPath: "public_paths[1]", messageContains: "expected a path starting with /")
    }

    func testLimitBelowMinimumIsRefused() {
        assertError(Self.sample(replacingLine: 14, with: "limits: {max_headers: 7}"), line: 14, keyPath: "limits.max_headers", messageContains: "at least 8 and at most 10000")
    }

    func testNegativeBodyLimitIsRefused() {
        assertError(Self.sample(replacingLine: 14, with: "limits: {max_body_bytes: -1}"), line: 14, keyPath: "limits.max_body_bytes", messageContains: "at least 0")
    }

    func testNonNumericLimitIsRefused() {
        assertError(Self.sample(replacingLine: 14, with: "limits: {max_uri_bytes: 8k}"), line: 14, keyPath: "limits.max_uri_bytes", messageContains: "expected a whole number")
    }

    func testInvalidYAMLIsRefusedWithItsLine() {
        guard let error = parseError(Self.sample(replacingLine: 6, with: "query_api_key: false: true")) else { return }
        XCTAssertEqual(error.line, 6, "\(error)")
        XCTAssertEqual(error.keyPath, "")
        XCTAssertTrue(error.message.hasPrefix("not valid YAML"), error.message)
    }

    func testUnclosedFlowSequenceIsRefusedAsInvalidYAML() {
        guard let error = parseError("listen: [unclosed\nupstream: x\n") else { return }
        XCTAssertEqual(error.line, 2, "\(error)")
        XCTAssertTrue(error.message.hasPrefix("not valid YAML"), error.message)
    }

    func testKeyGivenTwiceIsRefused() {
        guard let error = parseError("timeouts:\n  idle: 5s\n  idle: 6s\n") else { return }
        XCTAssertNotNil(error.line)
        XCTAssertTrue(error.message.contains("duplicated keys idle"), error.message)
    }

    func testEmptyFileIsRefusedWithoutALine() {
        guard let error = parseError("") else { return }
        XCTAssertNil(error.line)
        XCTAssertEqual(error.description, "config.yml: the file is empty")
    }

    func testCommentOnlyFileIsRefusedAsEmpty() {
        XCTAssertEqual(parseError("# nothing here\n")?.description, "config.yml: the file is empty")
    }

    func testTopLevelListIsRefused() {
        assertError("- listen\n- upstream\n", line: 1, keyPath: "", messageContains: "expected a mapping of keys")
    }

    func testErrorNamesTheGivenFileName() {
        XCTAssertEqual(parseError("listn: x\n", fileName: "gatehouse.yml")?.description.hasPrefix("gatehouse.yml:1: listn: unknown key"), true)
    }

    func testLoadReportsTheFileNameWithoutItsDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("gh.yml")
        try Data("listen: \"0.0.0.0:8080\"\nlistn: x\n".utf8).write(to: url)
        XCTAssertThrowsError(try ConfigLoader.load(path: url.path)) { error in
            XCTAssertEqual((error as? ConfigError)?.description.hasPrefix("gh.yml:2: listn: unknown key"), true, "\(error)")
        }
    }

    func testLoadReadsAValidFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("config.yml")
        try Data(Self.sample.utf8).write(to: url)
        XCTAssertEqual(try ConfigLoader.load(path: url.path).apiKeys.first?.name, "slicer")
    }

    func testLoadOfMissingFileNamesThePathWithoutALine() {
        let path = "/nonexistent-\(UUID().uuidString)/config.yml"
        XCTAssertThrowsError(try ConfigLoader.load(path: path)) { error in
            let configError = error as? ConfigError
            XCTAssertEqual(configError?.file, path)
            XCTAssertNil(configError?.line)
            XCTAssertEqual(configError?.description, "\(path): cannot read the file")
        }
    }
}

final class ConfigErrorTests: XCTestCase {
    func testDescriptionWithLineAndKeyPath() {
        XCTAssertEqual(ConfigError(file: "c.yml", line: 3, keyPath: "a.b", message: "bad").description, "c.yml:3: a.b: bad")
    }

    func testDescriptionWithoutLineOrKeyPath() {
        XCTAssertEqual(ConfigError(file: "c.yml", line: nil, keyPath: "", message: "bad").description, "c.yml: bad")
    }
}

final class ListenAndUpstreamAddressTests: XCTestCase {
    func testListenHostPortParses() {
        XCTAssertEqual(ListenAddress(parsing: "0.0.0.0:8080"), ListenAddress(host: "0.0.0.0", port: 8080))
    }

    func testListenBracketedIPv6Parses() {
        XCTAssertEqual(ListenAddress(parsing: "[::]:8080"), ListenAddress(host: "::", port: 8080))
        XCTAssertEqual(ListenAddress(host: "::", port: 8080).description, "[::]:8080")
    }

    func testListenMalformedIsRefused() {
        for text in ["8080", ":8080", "host:", "::1:8080", "[::1]8080", "[::1", "host:65536", "host:80a", "host:-1", "host:123456"] {
            XCTAssertNil(ListenAddress(parsing: text), text)
        }
    }

    func testUpstreamHTTPWithPortParses() {
        XCTAssertEqual(UpstreamAddress(parsing: "http://127.0.0.1:5000"), .tcp(host: "127.0.0.1", port: 5000))
    }

    func testUpstreamHTTPWithoutPortDefaultsTo80() {
        XCTAssertEqual(UpstreamAddress(parsing: "http://device.local"), .tcp(host: "device.local", port: 80))
        XCTAssertEqual(UpstreamAddress(parsing: "http://[::1]"), .tcp(host: "::1", port: 80))
    }

    func testUpstreamTrailingSlashIsAccepted() {
        XCTAssertEqual(UpstreamAddress(parsing: "http://[::1]:5000/"), .tcp(host: "::1", port: 5000))
    }

    func testUpstreamUnixSocketParses() {
        XCTAssertEqual(UpstreamAddress(parsing: "unix:/run/device.sock"), .unixSocket(path: "/run/device.sock"))
        XCTAssertEqual(UpstreamAddress.unixSocket(path: "/run/device.sock").description, "unix:/run/device.sock")
    }

    func testUpstreamOtherFormsAreRefused() {
        for text in ["ftp://x", "https://", "https://x/api", "https://u:p@x", "http://", "http://x/api", "http://u:p@x", "http://x?q", "http://x#f", "unix:relative.sock", "127.0.0.1:5000", "http://x:"] {
            XCTAssertNil(UpstreamAddress(parsing: text), text)
        }
    }

    func testUpstreamDescriptionBracketsIPv6() {
        XCTAssertEqual(UpstreamAddress.tcp(host: "::1", port: 5000).description, "http://[::1]:5000")
    }
}

/// `forward_underscore_headers`, `forward_identity_family` and `methods_allowed`.
final class HeaderExceptionConfigTests: XCTestCase {
    func testHeaderAndMethodExceptionsAreReadAndCheckedWithTheirLine() throws {
        let config = try ConfigLoader.parse(yaml: """
            forward_underscore_headers: [X_Trace_Id]
            forward_identity_family: [X-Email]
            methods_allowed: [PROPFIND, MKCOL]
            """)
        XCTAssertEqual(config.forwardUnderscoreHeaders, ["X_Trace_Id"])
        XCTAssertEqual(config.forwardIdentityFamily, ["X-Email"])
        XCTAssertEqual(config.methodsAllowed, ["PROPFIND", "MKCOL"])
        XCTAssertEqual(MethodPolicy(extra: config.methodsAllowed).allowHeader, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, PROPFIND, MKCOL")

        let cases: [(String, String)] = [
            ("forward_underscore_headers: [ok]\nmethods_allowed: [trace]\n", "config.yml:2: methods_allowed[0]: expected an upper-case method name"),
            ("methods_allowed: [CONNECT]\n", "config.yml:1: methods_allowed[0]: CONNECT asks a proxy"),
            ("forward_underscore_headers:\n  - X_Api_Key\n", "config.yml:2: forward_underscore_headers[0]: X_Api_Key reads as x-api-key"),
            ("identity_headers: {user: X-Printer-User}\nforward_underscore_headers: [X_Printer_User]\n", "config.yml:2: forward_underscore_headers[0]"),
            ("strip_headers: [X-Secret]\nforward_underscore_headers: [X_Secret]\n", "config.yml:2: forward_underscore_headers[0]"),
            ("forward_identity_family: [X-Custom]\n", "config.yml:1: forward_identity_family[0]: X-Custom is not one of the identity headers"),
            ("forward_identity_family: [X-Remote-User]\n", "config.yml:1: forward_identity_family[0]: X-Remote-User is one of identity_headers"),
            ("forward_identity_family: [X_Email]\n", "config.yml:1: forward_identity_family[0]: X_Email holds _"),
            ("forward_underscore_headers: {a: 1}\n", "config.yml:1: forward_underscore_headers: expected a list"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try ConfigLoader.parse(yaml: yaml), yaml) { error in
                XCTAssertTrue("\(error)".hasPrefix(expected), "\(error) does not start with \(expected)")
            }
        }
    }

    func testTheSampleSpellsOutTheNewKeysWithTheirDefaults() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("config.yml.sample")
        let text = try String(contentsOf: url, encoding: .utf8)
        for line in ["forward_underscore_headers: []", "forward_identity_family: []", "methods_allowed: []"] {
            XCTAssertTrue(text.contains("\n" + line + "\n"), line)
        }
        let config = try ConfigLoader.parse(yaml: text, fileName: "config.yml.sample")
        XCTAssertEqual(config.forwardUnderscoreHeaders, [])
        XCTAssertEqual(config.methodsAllowed, [])
    }
}
