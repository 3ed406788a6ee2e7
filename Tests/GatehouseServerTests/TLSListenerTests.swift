import Foundation
import GatehouseCore
import GatehouseServer
import GatehouseTestSupport
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Crypto
import SwiftASN1
import X509
import XCTest

/// HTTPS on Gatehouse's own listener: certificate files, a self-signed certificate kept beside
/// the store, the plain-HTTP redirect listener, and certificates read again on reload.
final class TLSListenerTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "gatehouse-tls-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func certificateFiles(_ ca: TestCertificateAuthority, name: String = "server") throws -> (String, String) {
        let (certificate, key) = try ca.issue(dnsNames: ["gatehouse.test"], ips: ["127.0.0.1"])
        return (try TestCertificateAuthority.write(certificate, to: directory, name: name + ".crt"),
                try TestCertificateAuthority.write(key, to: directory, name: name + ".key"))
    }

    func testServesHTTPSWithTheConfiguredCertificateAndTellsTheUpstream() async throws {
        let ca = try TestCertificateAuthority()
        let (cert, key) = try certificateFiles(ca)
        try await ProxyFixture.with({ $0.tls = ListenerTLSSettings(certificate: .files(certificate: cert, key: key)) }) { fx in
            let answer = try await TLSTestClient.get(
                port: fx.port, path: "/printer?x=1", headers: [("X-Api-Key", ProxyFixture.aliceKey)],
                trusting: try ca.pem, serverName: "gatehouse.test", group: fx.group)
            XCTAssertEqual(answer.status, 200, answer.body)
            let seen = try XCTUnwrap(fx.upstream.requests.last)
            XCTAssertEqual(seen.uri, "/printer?x=1")
            XCTAssertEqual(seen.values("X-Forwarded-Proto"), ["https"], "the device learns the client used HTTPS")
            XCTAssertEqual(seen.values("X-Remote-User"), ["alice"])

            // Without a credential: refused over TLS just the same, the device sees nothing.
            fx.upstream.reset()
            let refused = try await TLSTestClient.get(port: fx.port, path: "/printer", trusting: try ca.pem, serverName: "gatehouse.test", group: fx.group)
            XCTAssertEqual(refused.status, 401)
            XCTAssertTrue(fx.upstream.requests.isEmpty)

            // Plain HTTP to the TLS port is not answered as HTTP, the connection is closed, and
            // nothing reaches the device.
            let client = try fx.client(timeout: 3)
            try client.send("GET /printer HTTP/1.1\r\nHost: t\r\nX-Api-Key: \(ProxyFixture.aliceKey)\r\n\r\n")
            let (bytes, closed) = StreamTest.readUntilEnd(client)
            XCTAssertTrue(closed, "the TLS listener hangs up on plaintext")
            XCTAssertFalse(String(decoding: bytes, as: UTF8.self).contains("HTTP/1.1"))
            XCTAssertTrue(fx.upstream.requests.isEmpty, "a plaintext request on the TLS port must not be forwarded")
        }
    }

    func testTheSignInCookieIsSecureOverTLS() async throws {
        let ca = try TestCertificateAuthority()
        let (cert, key) = try certificateFiles(ca)
        try await IdentityFixture.with({ $0.tls = ListenerTLSSettings(certificate: .files(certificate: cert, key: key)) }) { fx in
            let page = try await TLSTestClient.get(port: fx.proxy.port, path: "/_gatehouse/login", trusting: try ca.pem, serverName: "gatehouse.test", group: fx.proxy.group)
            XCTAssertEqual(page.status, 200)
            XCTAssertNotNil(page.header("Strict-Transport-Security"), "own pages over TLS ask the browser to stay on HTTPS")
            let signIn = try await TLSTestClient.get(
                port: fx.proxy.port, path: "/_gatehouse/login", method: .POST,
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Origin", "https://gatehouse.test")],
                body: "username=alice&password=\(IdentityFixture.password)&next=/", trusting: try ca.pem, serverName: "gatehouse.test", group: fx.proxy.group)
            XCTAssertEqual(signIn.status, 303, signIn.body)
            let cookie = try XCTUnwrap(signIn.header("Set-Cookie"))
            XCTAssertTrue(cookie.contains("; Secure"), "a session cookie set over HTTPS is never sent over plain HTTP: \(cookie)")
        }
    }

    func testSelfSignedCertificateIsMadeOnceKeptBesideTheStoreAndItsFingerprintLogged() async throws {
        let log = CapturedLog()
        let settings = ListenerTLSSettings(certificate: .selfSigned(directory: directory))
        var first = ""
        try await withServer(tls: settings, log: log) { server, group in
            let certificatePath = directory + "/gatehouse-tls.crt"
            let keyPath = directory + "/gatehouse-tls.key"
            XCTAssertTrue(FileManager.default.fileExists(atPath: certificatePath))
            let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int)
            XCTAssertEqual(mode & 0o777, 0o600, "the private key is readable by its owner only")
            first = try XCTUnwrap(server.certificateFingerprint)
            XCTAssertTrue(log.all.contains { $0.contains("SHA-256 fingerprint \(first)") }, log.all.joined(separator: "\n"))
            XCTAssertTrue(log.all.contains { $0.contains("made a self-signed certificate") })
            // The fingerprint logged is the one a client sees.
            let answer = try await TLSTestClient.get(port: server.port, path: "/_gatehouse/healthz", trusting: try String(contentsOfFile: certificatePath, encoding: .utf8), group: group)
            XCTAssertEqual(answer.status, 200)
            XCTAssertEqual(answer.fingerprint, first)
        }
        // A second start reuses the pair: a pinned fingerprint stays valid.
        let second = CapturedLog()
        try await withServer(tls: settings, log: second) { server, _ in
            XCTAssertEqual(server.certificateFingerprint, first)
            XCTAssertFalse(second.all.contains { $0.contains("made a self-signed certificate") })
        }
        // Half a pair is an error, never a silent new certificate.
        try FileManager.default.removeItem(atPath: directory + "/gatehouse-tls.key")
        do {
            try await withServer(tls: settings, log: CapturedLog()) { _, _ in XCTFail("started without its key") }
        } catch let error as GatehouseServer.ServerError {
            XCTAssertTrue("\(error)".contains("gatehouse-tls.key does not"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/gatehouse-tls.key"))
    }

    /// The self-signed certificate is a CA (clients pin it as a root), so its key must not be able
    /// to vouch for any other site: a certificate for another name signed with it is refused by
    /// a client that trusts it, one for its own name is not (the test can tell the two apart).
    func testTheSelfSignedKeyCannotVouchForAnotherSite() async throws {
        let settings = ListenerTLSSettings(certificate: .selfSigned(directory: directory), selfSignedNames: ["printer.lan", "192.0.2.7"])
        try await withServer(tls: settings, log: CapturedLog()) { _, _ in }
        let rootPEM = try String(contentsOfFile: directory + "/gatehouse-tls.crt", encoding: .utf8)
        let root = try Certificate(pemEncoded: rootPEM)
        let names = try XCTUnwrap(try root.extensions.subjectAlternativeNames)
        XCTAssertTrue(names.contains(.dnsName("printer.lan")), "tls.names are in the certificate")
        XCTAssertTrue(names.contains(.ipAddress(ASN1OctetString(contentBytes: [192, 0, 2, 7]))))
        XCTAssertLessThanOrEqual(root.notValidAfter.timeIntervalSince(root.notValidBefore), 825 * 86400, "Apple's limit counts the whole span")
        XCTAssertEqual(root.notValidAfter.timeIntervalSince(root.notValidBefore), 825 * 86400, accuracy: 5)
        let key = try Certificate.PrivateKey(pemEncoded: try String(contentsOfFile: directory + "/gatehouse-tls.key", encoding: .utf8))
        func leaf(for name: String) throws -> NIOSSLContext {
            let leafKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
            let leaf = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: leafKey.publicKey,
                notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(3600),
                issuer: root.subject, subject: try DistinguishedName { CommonName(name) }, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions { SubjectAlternativeNames([.dnsName(name)]) }, issuerPrivateKey: key)
            return try NIOSSLContext(configuration: .makeServerConfiguration(
                certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(leaf.serializeAsPEM().pemString.utf8), format: .pem))],
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(leafKey.serializeAsPEM().pemString.utf8), format: .pem))))
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        for (name, accepted) in [("printer.lan", true), ("bank.example", false)] {
            let impostor = try await RecordingUpstream.start(group: group, tls: try leaf(for: name))
            do {
                let answer = try await TLSTestClient.get(port: impostor.port, path: "/status/200", trusting: rootPEM, serverName: name, group: group)
                XCTAssertTrue(accepted, "a certificate for \(name) signed with the self-signed key was trusted (\(answer.status))")
            } catch {
                XCTAssertFalse(accepted, "\(name): \(error)")
            }
            await impostor.stop()
        }
        try await group.shutdownGracefully()
        // Asking for a name the existing certificate lacks: kept (its fingerprint is pinned), and said.
        let log = CapturedLog()
        try await withServer(tls: ListenerTLSSettings(certificate: .selfSigned(directory: directory), selfSignedNames: ["new.lan"]), log: log) { _, _ in }
        XCTAssertTrue(log.all.contains { $0.contains("made without tls.names new.lan") }, log.all.joined(separator: "\n"))
    }

    func testACertificateNearItsEndIsWarnedAboutAtStart() async throws {
        let ca = try TestCertificateAuthority()
        for (days, warned) in [(1.0, true), (90.0, false)] {
            let (certificate, key) = try ca.issue(dnsNames: ["gatehouse.test"], validFor: days * 86400)
            let cert = try TestCertificateAuthority.write(certificate, to: directory, name: "ends-\(Int(days)).crt")
            let keyFile = try TestCertificateAuthority.write(key, to: directory, name: "ends-\(Int(days)).key")
            let log = CapturedLog()
            try await withServer(tls: ListenerTLSSettings(certificate: .files(certificate: cert, key: keyFile)), log: log) { _, _ in }
            let warning = log.all.first { $0.contains("the certificate in \(cert) expires on") }
            XCTAssertEqual(warning != nil, warned, "\(days) days left: \(log.all.joined(separator: "\n"))")
            if let warning { XCTAssertTrue(warning.contains("put a renewed one in its place and reload (SIGHUP)"), warning) }
        }
        // A fresh self-signed certificate has 825 days: nothing to say.
        let log = CapturedLog()
        try await withServer(tls: ListenerTLSSettings(certificate: .selfSigned(directory: directory)), log: log) { _, _ in }
        XCTAssertFalse(log.all.contains { $0.contains("expires on") }, log.all.joined(separator: "\n"))
    }

    func testSilentAndRefusedTLSConnectionsAreClosedPromptly() async throws {
        let ca = try TestCertificateAuthority()
        let (cert, key) = try certificateFiles(ca)
        try await ProxyFixture.with({
            $0.tls = ListenerTLSSettings(certificate: .files(certificate: cert, key: key))
            $0.timeouts.clientHeader = .seconds(1)
            $0.limits.maxConnections = 1
        }) { fx in
            // Holds the one place without ever starting a handshake: closed after client_header,
            // not after the much longer idle timeout.
            let silent = try fx.client(timeout: 5)
            let started = Date()
            // Meanwhile a second connection is over the limit: closed at once, no handshake, no answer.
            XCTAssertTrue(ProxyFixture.eventually { StreamTest.establishedConnections(localPort: fx.port) >= 1 })
            let refused = try fx.client(timeout: 5)
            let (bytes, closed) = StreamTest.readUntilEnd(refused)
            XCTAssertTrue(closed)
            XCTAssertTrue(bytes.isEmpty, "a TLS client could not read a plaintext 503")
            let (_, silentClosed) = StreamTest.readUntilEnd(silent)
            XCTAssertTrue(silentClosed)
            XCTAssertLessThan(Date().timeIntervalSince(started), 4.5, "cut off by the handshake deadline, not left open")
        }
    }

    func testBadCertificateFilesStopTheStartNamingTheFile() async throws {
        let ca = try TestCertificateAuthority()
        let (cert, _) = try certificateFiles(ca)
        let (_, otherKey) = try certificateFiles(ca, name: "other")
        let garbage = try TestCertificateAuthority.write("not a certificate\n", to: directory, name: "garbage.pem")
        let cases: [(ListenerTLSSettings, String)] = [
            (ListenerTLSSettings(certificate: .files(certificate: directory + "/missing.crt", key: otherKey)), "missing.crt: cannot read it"),
            (ListenerTLSSettings(certificate: .files(certificate: garbage, key: otherKey)), "garbage.pem: not a PEM certificate"),
            (ListenerTLSSettings(certificate: .files(certificate: cert, key: garbage)), "garbage.pem: not a PEM private key"),
            (ListenerTLSSettings(certificate: .files(certificate: cert, key: otherKey)), "does the key belong to the certificate?"),
        ]
        for (settings, expected) in cases {
            do {
                try await withServer(tls: settings, log: CapturedLog()) { _, _ in XCTFail("started with \(settings)") }
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(error) should say \(expected)")
            }
        }
    }

    func testRedirectListenerSendsEveryRequestToHTTPSAndForwardsNothing() async throws {
        let ca = try TestCertificateAuthority()
        let (cert, key) = try certificateFiles(ca)
        try await ProxyFixture.with({
            $0.tls = ListenerTLSSettings(certificate: .files(certificate: cert, key: key), redirectHTTP: ListenAddress(host: "127.0.0.1", port: 0))
        }) { fx in
            let redirectPort = try XCTUnwrap(fx.server.redirectAddress?.port)
            let moved = try RawClient(port: redirectPort).request(
                "POST /api/files/local?path=a%20b HTTP/1.1\r\nHost: printer.local:8080\r\nX-Api-Key: \(ProxyFixture.aliceKey)\r\nContent-Length: 3\r\n\r\nabc")
            XCTAssertEqual(moved.status, 308)
            XCTAssertEqual(moved.header("Location"), "https://printer.local:\(fx.port)/api/files/local?path=a%20b")
            for host in ["evil.example/x", "a b", "printer.local:80:80", "[zz]", ""] {
                let bad = try RawClient(port: redirectPort).request("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
                XCTAssertEqual(bad.status, 400, "Host \(host) must not shape a Location")
                XCTAssertNil(bad.header("Location"))
            }
            let absolute = try RawClient(port: redirectPort).request("GET http://other.example/x HTTP/1.1\r\nHost: printer.local\r\n\r\n")
            XCTAssertEqual(absolute.header("Location"), "https://printer.local:\(fx.port)/")
            XCTAssertTrue(fx.upstream.requests.isEmpty, "the redirect listener forwards nothing")
        }
        // Published on another port than it listens on (a container): https_port names it.
        try await ProxyFixture.with({
            $0.tls = ListenerTLSSettings(certificate: .files(certificate: cert, key: key), redirectHTTP: ListenAddress(host: "127.0.0.1", port: 0), httpsPort: 443)
        }) { fx in
            let moved = try RawClient(port: try XCTUnwrap(fx.server.redirectAddress?.port)).request("GET /x HTTP/1.1\r\nHost: printer.local:80\r\n\r\n")
            XCTAssertEqual(moved.header("Location"), "https://printer.local/x")
        }
    }

    func testReloadReadsRenewedCertificatesAndKeepsTheOldOnesWhenTheNewAreBad() async throws {
        let ca = try TestCertificateAuthority()
        let (cert, key) = try certificateFiles(ca)
        try await ProxyFixture.with({ $0.tls = ListenerTLSSettings(certificate: .files(certificate: cert, key: key)) }) { fx in
            let before = try await TLSTestClient.get(port: fx.port, path: "/_gatehouse/healthz", trusting: try ca.pem, group: fx.group)
            // Renewed in place, as certbot does.
            let (renewedCert, renewedKey) = try ca.issue(dnsNames: ["gatehouse.test"], ips: ["127.0.0.1"])
            try TestCertificateAuthority.write(renewedCert, to: directory, name: "server.crt")
            try TestCertificateAuthority.write(renewedKey, to: directory, name: "server.key")
            try fx.server.reload(config: fx.config)
            let after = try await TLSTestClient.get(port: fx.port, path: "/_gatehouse/healthz", trusting: try ca.pem, group: fx.group)
            XCTAssertNotEqual(before.fingerprint, after.fingerprint, "new connections get the renewed certificate")
            XCTAssertEqual(fx.server.certificateFingerprint, after.fingerprint)

            // A half-written renewal (the certificate but the old key) is refused as a whole.
            try TestCertificateAuthority.write(try ca.issue(dnsNames: ["gatehouse.test"]).certificate, to: directory, name: "server.crt")
            var changed = fx.config
            changed.apiKeys = []
            XCTAssertThrowsError(try fx.server.reload(config: changed))
            let still = try await TLSTestClient.get(port: fx.port, path: "/", headers: [("X-Api-Key", ProxyFixture.aliceKey)], trusting: try ca.pem, group: fx.group)
            XCTAssertEqual(still.fingerprint, after.fingerprint, "the running certificate stays")
            XCTAssertEqual(still.status, 200, "and so does the rest of the running config (the key removal was not applied)")
        }
    }

    private func withServer(tls: ListenerTLSSettings, log: CapturedLog, _ body: (GatehouseServer, EventLoopGroup) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var config = ProxyFixture.baseConfig(upstreamPort: 9)
        config.tls = tls
        var logger = Logger(label: "tls-test") { _ in log.handler() }
        logger.logLevel = .info
        let server: GatehouseServer
        do {
            server = try await GatehouseServer.start(config: config, group: group, logger: logger)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        do {
            try await body(server, group)
        } catch {
            await server.shutdown(drain: .milliseconds(10))
            try? await group.shutdownGracefully()
            throw error
        }
        await server.shutdown(drain: .milliseconds(10))
        try? await group.shutdownGracefully()
    }
}
