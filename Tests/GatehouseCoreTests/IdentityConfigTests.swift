import Foundation
import XCTest

@testable import GatehouseCore

/// `sessions:`, `jwt:` and `login:` in the config, and the JWT secret file.
final class IdentityConfigTests: XCTestCase {
    func testDefaults() throws {
        let config = try ConfigLoader.parse(yaml: "listen: \"127.0.0.1:8080\"\n")
        XCTAssertEqual(config.sessions.idleTimeout.seconds, 86400)
        XCTAssertEqual(config.sessions.rememberLifetime.seconds, 7 * 86400)
        XCTAssertEqual(config.jwt.accessExpiry.seconds, 3600)
        XCTAssertEqual(config.jwt.refreshExpiry.seconds, 30 * 86400)
        XCTAssertEqual(config.loginThrottle.maxFailures, 5)
    }

    func testValuesAndZeroMeaningNever() throws {
        let config = try ConfigLoader.parse(yaml: """
            sessions: {idle_timeout: 2h, lifetime: 30d, short_lifetime: 1h}
            jwt: {issuer: printer, audience: octo, access_expiry: 0, refresh_expiry: 7d, secret_file: /etc/gh/jwt}
            login: {max_failures: 3, window: 1m, lockout: 15m}
            """)
        XCTAssertEqual(config.sessions.idleTimeout.seconds, 7200)
        XCTAssertNil(config.jwt.lifetime(of: .access), "0 means never")
        XCTAssertEqual(config.jwt.lifetime(of: .refresh), 7 * 86400)
        XCTAssertEqual(config.jwt.secretFile, "/etc/gh/jwt")
        XCTAssertEqual(config.loginThrottle.lockout.seconds, 900)
    }

    func testErrorsNameKeyAndLine() {
        for (yaml, key) in [
            ("listen: \"127.0.0.1:1\"\nsessions:\n  idle_timeout: 0\n", "sessions.idle_timeout"),
            ("jwt:\n  algorithm: HS512\n", "jwt.algorithm"),
            ("jwt:\n  issuer: \"\"\n", "jwt.issuer"),
            ("login:\n  max_failures: 0\n", "login.max_failures"),
        ] {
            XCTAssertThrowsError(try ConfigLoader.parse(yaml: yaml)) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
    }

    func testSecretFileIsCreatedPrivateAndRefusedWhenOthersCanRead() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-jwt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/jwt.secret"
        let secret = try JWTSecretFile.loadOrCreate(path: path)
        XCTAssertEqual(secret.count, 32)
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual(try JWTSecretFile.loadOrCreate(path: path), secret, "an existing secret is kept")
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        XCTAssertThrowsError(try JWTSecretFile.loadOrCreate(path: path)) { error in
            XCTAssertEqual(error as? JWTSecretError, .insecurePermissions(path: path, mode: "640"))
        }
        let short = dir + "/short"
        XCTAssertTrue(FileManager.default.createFile(atPath: short, contents: Data([1, 2, 3]), attributes: [.posixPermissions: 0o600]))
        XCTAssertThrowsError(try JWTSecretFile.loadOrCreate(path: short)) { error in
            XCTAssertEqual(error as? JWTSecretError, .tooShort(path: short, bytes: 3))
        }
    }

    func testTokenAuthorityRoundTripAndClock() async throws {
        var settings = JWTSettings()
        settings.accessExpiry = .seconds(60)
        let authority = TokenAuthority(secret: Array(repeating: 9, count: 32), settings: settings)
        let t0 = Date(timeIntervalSince1970: 2_000_000_000)
        let signed = try await authority.issue(kind: .access, username: "alice", roles: ["a"], family: "f", now: t0)
        guard case .success(let token) = await authority.verify(signed.token, now: t0.addingTimeInterval(89)) else {
            return XCTFail("valid within exp + leeway")
        }
        XCTAssertEqual(token.username, "alice")
        XCTAssertEqual(token.jti, signed.record.jti)
        guard case .failure = await authority.verify(signed.token, now: t0.addingTimeInterval(91)) else { return XCTFail("expired") }
        let other = TokenAuthority(secret: Array(repeating: 8, count: 32), settings: settings)
        guard case .failure = await other.verify(signed.token, now: t0) else { return XCTFail("another secret") }
    }
}
