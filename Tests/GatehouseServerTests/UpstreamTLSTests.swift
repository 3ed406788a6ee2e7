import Foundation
import GatehouseCore
import GatehouseServer
import GatehouseTestSupport
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

/// `upstream: https://…`: the device's certificate is checked unless the file says not to.
final class UpstreamTLSTests: XCTestCase {
    private var directory = ""

    override func setUp() {
        directory = NSTemporaryDirectory() + "gatehouse-upstream-tls-" + UUID().uuidString
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A Gatehouse in front of an HTTPS upstream whose certificate `ca` issued for `names`.
    private func withHTTPSUpstream(
        ca: TestCertificateAuthority, dnsNames: [String] = [], ips: [String] = ["127.0.0.1"], log: CapturedLog? = nil,
        _ customize: (inout GatehouseConfig) -> Void,
        _ body: (GatehouseServer, RecordingUpstream) async throws -> Void
    ) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (certificate, key) = try ca.issue(dnsNames: dnsNames, ips: ips)
        let tls = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(key.utf8), format: .pem))))
        let upstream = try await RecordingUpstream.start(group: group, tls: tls)
        var config = ProxyFixture.baseConfig(upstreamPort: upstream.port)
        config.upstream = .https(host: "127.0.0.1", port: upstream.port)
        customize(&config)
        var logger = log.map { log in Logger(label: "upstream-tls") { _ in log.handler() } } ?? Logger(label: "upstream-tls")
        logger.logLevel = log == nil ? .critical : .info
        let server = try await GatehouseServer.start(config: config, group: group, logger: logger)
        do {
            try await body(server, upstream)
        } catch {
            XCTFail("\(error)")
        }
        await server.shutdown(drain: .milliseconds(10))
        await upstream.stop()
        try? await group.shutdownGracefully()
    }

    private func get(_ server: GatehouseServer, _ path: String) throws -> RawResponse {
        try RawClient(port: server.port).request("GET \(path) HTTP/1.1\r\nHost: printer.test\r\nX-Api-Key: \(ProxyFixture.aliceKey)\r\nConnection: close\r\n\r\n")
    }

    func testACertificateFromTheConfiguredCAIsAcceptedAndTheRequestArrivesOverTLS() async throws {
        let ca = try TestCertificateAuthority()
        let caFile = try TestCertificateAuthority.write(try ca.pem, to: directory, name: "ca.pem")
        try await withHTTPSUpstream(ca: ca, { $0.upstreamTLS.caFile = caFile }) { server, upstream in
            let response = try get(server, "/api/version")
            XCTAssertEqual(response.status, 200, response.bodyText)
            XCTAssertEqual(upstream.requests.last?.uri, "/api/version")
            XCTAssertEqual(upstream.requests.last?.values("X-Remote-User"), ["alice"])
            let ready = try RawClient(port: server.port).request("GET /_gatehouse/readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(ready.status, 200, ready.bodyText)
        }
    }

    func testAnUntrustedCertificateIsRefusedAndNothingIsSent() async throws {
        // The system's roots do not include this test CA: verification is on by default.
        let ca = try TestCertificateAuthority()
        try await withHTTPSUpstream(ca: ca, { _ in }) { server, upstream in
            let response = try get(server, "/api/version")
            XCTAssertEqual(response.status, 502, response.bodyText)
            XCTAssertTrue(upstream.requests.isEmpty, "no request may travel to a device whose certificate failed")
            let ready = try RawClient(port: server.port).request("GET /_gatehouse/readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(ready.status, 503)
            XCTAssertTrue(ready.bodyText.contains("CERTIFICATE_VERIFY_FAILED"), "readyz says why: \(ready.bodyText)")
        }
        // Trusted CA, but a certificate for another name.
        let caFile = try TestCertificateAuthority.write(try ca.pem, to: directory, name: "ca.pem")
        try await withHTTPSUpstream(ca: ca, dnsNames: ["other.example"], ips: [], { $0.upstreamTLS.caFile = caFile }) { server, upstream in
            XCTAssertEqual(try get(server, "/api/version").status, 502)
            XCTAssertTrue(upstream.requests.isEmpty)
        }
        // server_name names the certificate's host when the upstream is an IP.
        try await withHTTPSUpstream(ca: ca, dnsNames: ["printer.local"], ips: [], {
            $0.upstreamTLS.caFile = caFile
            $0.upstreamTLS.serverName = "printer.local"
        }) { server, _ in
            XCTAssertEqual(try get(server, "/api/version").status, 200)
        }
    }

    func testAWebSocketTunnelRunsOverTheUpstreamsTLS() async throws {
        let ca = try TestCertificateAuthority()
        let caFile = try TestCertificateAuthority.write(try ca.pem, to: directory, name: "ca.pem")
        try await withHTTPSUpstream(ca: ca, { $0.upstreamTLS.caFile = caFile }) { server, upstream in
            let client = try RawClient(port: server.port)
            try client.send(
                "GET /ws HTTP/1.1\r\nHost: printer.test\r\nX-Api-Key: \(ProxyFixture.aliceKey)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            XCTAssertEqual(try client.readResponse().status, 101)
            // The upstream echoes: the bytes went through Gatehouse's TLS to the device and back.
            let message: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58] + Array("GET / HTTP/1.1\r\n\r\n".utf8)
            try client.send(message)
            XCTAssertEqual(try StreamTest.read(client) { $0.count >= message.count }, message)
            XCTAssertEqual(upstream.requests.first?.values("X-Remote-User"), ["alice"])
        }
    }

    func testInsecureSkipVerifyAcceptsAnyCertificateAndSaysSo() async throws {
        let log = CapturedLog()
        try await withHTTPSUpstream(ca: try TestCertificateAuthority(), log: log, { $0.upstreamTLS.insecureSkipVerify = true }) { server, upstream in
            XCTAssertEqual(try get(server, "/api/version").status, 200)
            XCTAssertEqual(upstream.requests.count, 1)
            XCTAssertTrue(log.all.contains { $0.contains("insecure_skip_verify is on") }, log.all.joined(separator: "\n"))
        }
    }

    func testABadCAFileStopsTheStart() async throws {
        let garbage = try TestCertificateAuthority.write("nothing here\n", to: directory, name: "ca.pem")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var config = ProxyFixture.baseConfig(upstreamPort: 9)
        config.upstream = .https(host: "127.0.0.1", port: 9)
        config.upstreamTLS.caFile = garbage
        do {
            _ = try await GatehouseServer.start(config: config, group: group, logger: Logger(label: "t"))
            XCTFail("started with an unusable CA file")
        } catch {
            XCTAssertTrue("\(error)".contains("upstream_tls.ca_file \(garbage)"), "\(error)")
        }
        try? await group.shutdownGracefully()
    }
}
