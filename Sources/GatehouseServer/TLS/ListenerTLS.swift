import Crypto
import Foundation
import GatehouseCore
import NIOConcurrencyHelpers
import NIOSSL
import X509

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
        /// What the operator should know: the leaf certificate near or past its end, or a
        /// self-signed one without a name the config asks for.
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
        var warnings: [String] = []
        if let certificate = try? Certificate(derEncoded: der) {
            if selfSigned, let missing = SelfSignedCertificate.missingNamesWarning(
                certificate: certificate, certificateFile: certificateFile, names: settings.selfSignedNames) {
                warnings.append(missing)
            }
            let renew = selfSigned ? SelfSignedCertificate.renewal(certificateFile) : "put a renewed one in its place and reload (SIGHUP)"
            if let expiry = expiryWarning(certificate, file: certificateFile, now: Date(), renew: renew) { warnings.append(expiry) }
        }
        return Loaded(context: context, fingerprint: fingerprint(der: der), certificateFile: certificateFile, keyFile: keyFile, created: created, warnings: warnings)
    }

    /// How long before its end a listener certificate is warned about, at every start and reload.
    static let expiryWarningLead: TimeInterval = 30 * 24 * 3600

    /// A warning when `certificate` ends within ``expiryWarningLead`` of `now` or has ended.
    static func expiryWarning(_ certificate: Certificate, file: String, now: Date, renew: String) -> String? {
        let ends = certificate.notValidAfter
        guard ends.timeIntervalSince(now) < expiryWarningLead else { return nil }
        return "the certificate in \(file) \(ends < now ? "expired" : "expires") on \(ends); \(renew)"
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
