import Foundation
import GatehouseCore
import XCTest

/// `tls:`, `upstream_tls:` and `https://` upstreams in the config file.
extension ConfigLoaderTests {

    func testTLSDefaultsArePlainHTTPAndVerifiedUpstreams() throws {
        let config = try ConfigLoader.parse(yaml: "listen: 127.0.0.1:8080\n")
        XCTAssertNil(config.tls)
        XCTAssertEqual(config.upstreamTLS, UpstreamTLSSettings())
        XCTAssertFalse(config.upstreamTLS.insecureSkipVerify)
    }

    func testTLSHTTPSUpstreamsParseWithDefaultPort443() {
        XCTAssertEqual(UpstreamAddress(parsing: "https://printer.local"), .https(host: "printer.local", port: 443))
        XCTAssertEqual(UpstreamAddress(parsing: "https://[::1]:8443/"), .https(host: "::1", port: 8443))
        XCTAssertEqual(UpstreamAddress(parsing: "http://printer.local"), .tcp(host: "printer.local", port: 80))
        XCTAssertEqual(UpstreamAddress(parsing: "https://[::1]:8443")?.description, "https://[::1]:8443")
        for bad in ["https://", "https://user:pw@host", "https://host/path", "ftp://host", "HTTPS://host"] {
            XCTAssertNil(UpstreamAddress(parsing: bad), bad)
        }
    }

    func testTLSBlocksParse() throws {
        let files = try ConfigLoader.parse(yaml: "tls:\n  cert_file: /etc/gh/cert.pem\n  key_file: /etc/gh/key.pem\n  redirect_http: 0.0.0.0:80\n")
        XCTAssertEqual(files.tls, ListenerTLSSettings(certificate: .files(certificate: "/etc/gh/cert.pem", key: "/etc/gh/key.pem"), redirectHTTP: ListenAddress(host: "0.0.0.0", port: 80)))
        let upstream = try ConfigLoader.parse(yaml: "upstream: https://10.0.0.5\nupstream_tls:\n  ca_file: /etc/gh/device-ca.pem\n  server_name: printer.local\n")
        XCTAssertEqual(upstream.upstreamTLS, UpstreamTLSSettings(caFile: "/etc/gh/device-ca.pem", serverName: "printer.local"))
        let named = try ConfigLoader.parse(yaml: "tls: {self_signed: true, names: [printer.lan, 192.168.1.50, \"fd00::5\"], redirect_http: \"0.0.0.0:80\", https_port: 8443}\n")
        XCTAssertEqual(named.tls?.selfSignedNames, ["printer.lan", "192.168.1.50", "fd00::5"])
        XCTAssertEqual(named.tls?.httpsPort, 8443)
        let skip = try ConfigLoader.parse(yaml: "upstream: https://10.0.0.5\nupstream_tls: {insecure_skip_verify: true}\n")
        XCTAssertTrue(skip.upstreamTLS.insecureSkipVerify)
    }

    func testTLSRelativeFilesResolveAgainstTheConfigAndSelfSignedLivesBesideTheStore() throws {
        let dir = NSTemporaryDirectory() + "gatehouse-config-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "tls: {cert_file: certs/c.pem, key_file: certs/k.pem}\nupstream: https://h\nupstream_tls: {ca_file: ca.pem}\n"
            .write(toFile: dir + "/a.yml", atomically: true, encoding: .utf8)
        let a = try ConfigLoader.load(path: dir + "/a.yml")
        XCTAssertEqual(a.tls?.certificate, .files(certificate: dir + "/certs/c.pem", key: dir + "/certs/k.pem"))
        XCTAssertEqual(a.upstreamTLS.caFile, dir + "/ca.pem")
        try "tls: {self_signed: true}\nstore: {path: state/g.db}\n".write(toFile: dir + "/b.yml", atomically: true, encoding: .utf8)
        XCTAssertEqual(try ConfigLoader.load(path: dir + "/b.yml").tls?.certificate, .selfSigned(directory: dir + "/state"))
    }

    func testTLSMistakesNameKeyAndLine() {
        assertError("listen: 0.0.0.0:8443\ntls:\n  cert_file: c.pem\n", line: 3, keyPath: "tls", messageContains: "needs cert_file and key_file, or self_signed: true")
        assertError("tls:\n  self_signed: true\n  cert_file: c.pem\n  key_file: k.pem\n", line: 2, keyPath: "tls", messageContains: "not both")
        assertError("tls:\n  self_signed: false\n", line: 2, keyPath: "tls", messageContains: "needs cert_file")
        assertError("tls:\n  self_signed: true\n  redirect_http: 80\n", line: 3, keyPath: "tls.redirect_http", messageContains: "expected host:port")
        assertError("listen: 0.0.0.0:8443\ntls:\n  self_signed: true\n  redirect_http: 0.0.0.0:8443\n", line: 4, keyPath: "tls.redirect_http", messageContains: "must differ from listen")
        assertError("tls:\n  self_signed: true\n  certfile: c.pem\n", line: 3, keyPath: "tls.certfile", messageContains: "unknown key")
        assertError("tls:\n  cert_file: c.pem\n  key_file: k.pem\n  names: [printer.lan]\n", line: 4, keyPath: "tls.names", messageContains: "only means something with self_signed: true")
        assertError("tls:\n  self_signed: true\n  names: [\"printer lan\"]\n", line: 3, keyPath: "tls.names[0]", messageContains: "expected a host name or an IP address")
        for bad in ["printer.lan.", "a..b", ".lan", "-", "printer-.lan", "192.168.1.500", String(repeating: "a", count: 64) + ".lan"] {
            assertError("tls:\n  self_signed: true\n  names: [ok.lan, \"\(bad)\"]\n", line: 3, keyPath: "tls.names[1]", messageContains: "expected a host name or an IP address")
        }
        assertError("upstream: https://10.0.0.5\nupstream_tls:\n  server_name: printer.local.\n", line: 3, keyPath: "upstream_tls.server_name", messageContains: "expected a DNS name")
        assertError("tls:\n  self_signed: true\n  https_port: 8443\n", line: 3, keyPath: "tls.https_port", messageContains: "only means something with redirect_http")
        assertError("tls:\n  self_signed: true\n  redirect_http: 0.0.0.0:80\n  https_port: 0\n", line: 4, keyPath: "tls.https_port", messageContains: "at least 1 and at most 65535")
        assertError("upstream: http://h:80\nupstream_tls:\n  ca_file: ca.pem\n", line: 3, keyPath: "upstream_tls", messageContains: "upstream is not an https:// address")
        assertError("upstream: https://h\nupstream_tls:\n  insecure_skip_verify: true\n  ca_file: ca.pem\n", line: 3, keyPath: "upstream_tls", messageContains: "insecure_skip_verify checks nothing")
        assertError("upstream: https://h\nupstream_tls:\n  server_name: \"a b\"\n", line: 3, keyPath: "upstream_tls.server_name", messageContains: "expected a DNS name")
        assertError("upstream: https://h\nupstream_tls:\n  insecure_skip_verify: yes please\n", line: 3, keyPath: "upstream_tls.insecure_skip_verify", messageContains: "expected true or false")
    }
}
