import Crypto
import Foundation
import GatehouseCore
import NIOConcurrencyHelpers
import NIOSSL

/// The TLS context of Gatehouse's listener: one per server, replaced as a whole on reload.
///
/// Guarantees: each new connection takes the context current when it is accepted, so a reload
/// never changes a handshake under way; a failed reload leaves the running context untouched;
/// only TLS 1.2 and 1.3, ALPN `http/1.1` only (no HTTP/2 is offered that the proxy cannot speak).
final class ListenerTLS: Sendable {
    /// What was loaded: the context, and the leaf's SHA-256 fingerprint (for the log).
    struct Loaded: Sendable {
        let context: NIOSSLContext
        let fingerprint: String
        /// The files it came from.
        let certificateFile: String
        let keyFile: String
        /// True when a self-signed pair was made by this load.
        let created: Bool
        /// What the operator should know (a self-signed certificate near its end, or without a
        /// name the config asks for).
        let warnings: [String]
    }

    private let current: NIOLockedValueBox<Loaded>

    init(_ loaded: Loaded) {
        current = NIOLockedValueBox(loaded)
    }

    var loaded: Loaded { current.withLockedValue { $0 } }

    /// The handler for one new connection.
    func makeHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: current.withLockedValue { $0.context })
    }

    /// Loads `settings`' files anew and uses them for connections accepted from now on.
    func replace(with loaded: Loaded) {
        current.withLockedValue { $0 = loaded }
    }

    /// Reads (or, for `self_signed`, first makes) the certificate and key.
    static func load(_ settings: ListenerTLSSettings) throws(TLSSetupError) -> Loaded {
        let certificateFile: String
        let keyFile: String
        var created = false
        var selfSigned = false
        switch settings.certificate {
        case .files(let certificate, let key):
            (certificateFile, keyFile) = (certificate, key)
        case .selfSigned(let directory):
            (certificateFile, keyFile, created) = try SelfSignedCertificate.ensure(in: directory, names: settings.selfSignedNames)
            selfSigned = true
        }
        let chain: [NIOSSLCertificate]
        let certificateBytes = try readFile(certificateFile)
        let warnings = selfSigned
            ? SelfSignedCertificate.warnings(
                certificatePEM: String(decoding: certificateBytes, as: UTF8.self), certificateFile: certificateFile,
                names: settings.selfSignedNames, now: Date())
            : []
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificateBytes)
        } catch let error as TLSSetupError {
            throw error
        } catch {
            throw .notPEMCertificates(file: certificateFile, reason: "\(error)")
        }
        guard let leaf = chain.first else { throw .notPEMCertificates(file: certificateFile, reason: "no certificate in it") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: Array(try readFile(keyFile)), format: .pem)
        } catch let error as TLSSetupError {
            throw error
        } catch {
            throw .notPEMKey(file: keyFile, reason: "\(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = ["http/1.1"]
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw .rejected(certificate: certificateFile, key: keyFile, reason: "\(error)")
        }
        let der: [UInt8]
        do { der = try leaf.toDERBytes() } catch { throw .notPEMCertificates(file: certificateFile, reason: "\(error)") }
        return Loaded(context: context, fingerprint: fingerprint(der: der), certificateFile: certificateFile, keyFile: keyFile, created: created, warnings: warnings)
    }

    /// `AB:CD:…`, the form browsers and `openssl x509 -fingerprint -sha256` show.
    static func fingerprint(der: [UInt8]) -> String {
        SHA256.hash(data: der).map { byte in
            let hex = String(byte, radix: 16, uppercase: true)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    private static func readFile(_ path: String) throws(TLSSetupError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(file: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
        }
        return Array(data)
    }
}
