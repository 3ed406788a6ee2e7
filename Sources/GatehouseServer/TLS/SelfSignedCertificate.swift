import Crypto
import Foundation
import SwiftASN1
import X509

/// The certificate `tls: {self_signed: true}` uses: made once, kept beside the store, reused on
/// every later start so that a fingerprint a user pinned stays valid.
///
/// Guarantees: an existing pair is never replaced (if only one of the two files is there, that
/// is an error, not a reason to make a new pair); the key file is created with mode 0600 and
/// written completely before it gets its final name; the certificate is an ECDSA P-256 leaf for
/// `localhost`, this machine's host name, 127.0.0.1 and ::1, valid for ten years, that may sign
/// nothing but itself (a CA with path length 0, so clients can trust it as their only root).
enum SelfSignedCertificate {
    static let certificateFileName = "gatehouse-tls.crt"
    static let keyFileName = "gatehouse-tls.key"
    static let validity: TimeInterval = 10 * 365 * 24 * 3600

    /// The paths of the pair in `directory`, made first if neither exists.
    /// - Returns: the two paths and whether the pair was made just now.
    static func ensure(in directory: String, now: Date = Date()) throws(TLSSetupError) -> (certificate: String, key: String, created: Bool) {
        let certificate = (directory as NSString).appendingPathComponent(certificateFileName)
        let key = (directory as NSString).appendingPathComponent(keyFileName)
        let files = FileManager.default
        switch (files.fileExists(atPath: certificate), files.fileExists(atPath: key)) {
        case (true, true): return (certificate, key, false)
        case (true, false): throw .selfSignedIncomplete(present: certificate, missing: key)
        case (false, true): throw .selfSignedIncomplete(present: key, missing: certificate)
        case (false, false): break
        }
        let (certificatePEM, keyPEM) = try make(names: defaultNames(), now: now)
        // The key first: a crash between the two leaves a key without a certificate, which the
        // next start reports instead of silently making another pair.
        try writeNew(keyPEM, to: key, mode: 0o600)
        try writeNew(certificatePEM, to: certificate, mode: 0o644)
        return (certificate, key, true)
    }

    static func defaultNames() -> [GeneralName] {
        var names: [GeneralName] = [.dnsName("localhost")]
        let host = ProcessInfo.processInfo.hostName
        if !host.isEmpty, host != "localhost", host.utf8.allSatisfy({ $0 < 0x80 && $0 > 0x20 }) { names.append(.dnsName(host)) }
        names.append(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])))
        names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice([UInt8](repeating: 0, count: 15) + [1]))))
        return names
    }

    /// A new key and a certificate for it, both as PEM text.
    static func make(names: [GeneralName], now: Date) throws(TLSSetupError) -> (certificate: String, key: String) {
        do {
            let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
            let subject = try DistinguishedName {
                OrganizationName("Gatehouse")
                CommonName("Gatehouse self-signed")
            }
            // Marked as its own CA (path length 0), as `openssl req -x509` does: BoringSSL (Swift
            // clients) and Go refuse a pinned self-signed leaf that says it is not a CA.
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(validity),
                issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: key)
            return (try certificate.serializeAsPEM().pemString, try key.serializeAsPEM().pemString)
        } catch {
            throw .cannotGenerate(reason: "\(error)")
        }
    }

    /// Writes `text` to a temporary name in the same directory, then renames it to `path`
    /// (refusing to replace a file that appeared meanwhile).
    private static func writeNew(_ text: String, to path: String, mode: mode_t) throws(TLSSetupError) {
        let temporary = path + ".new"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .cannotWrite(file: path, reason: String(cString: strerror(errno))) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced else {
            unlink(temporary)
            throw .cannotWrite(file: path, reason: "short write")
        }
        guard link(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .cannotWrite(file: path, reason: reason)
        }
        unlink(temporary)
    }
}
