import Crypto
import Foundation
import GatehouseCore
import SwiftASN1
import X509

/// The certificate `tls: {self_signed: true}` uses: made once, kept beside the store, reused on
/// every later start so that a fingerprint a user pinned stays valid.
///
/// Guarantees: an existing pair is never replaced (if only one of the two files is there, that
/// is an error, not a reason to make a new pair); the key file is created with mode 0600 under a
/// name no other process uses, written and synced completely, then linked to its final name (a
/// name already taken is never replaced); the certificate is an ECDSA P-256 certificate for
/// `localhost`, this machine's host name, 127.0.0.1, ::1 and `tls.names`, valid for 825 days
/// (the longest Apple's systems accept for a certificate a user trusts). Clients that pin it by
/// its file trust it as a root, so it is a CA — BoringSSL and Go refuse a pinned self-signed
/// certificate that says it is not — but a critical Name Constraints extension limits anything it
/// could sign to its own names, so its key can never vouch for another site.
enum SelfSignedCertificate {
    static let certificateFileName = "gatehouse-tls.crt"
    static let keyFileName = "gatehouse-tls.key"
    /// From first to last valid moment: Apple's limit counts the whole span.
    static let validity: TimeInterval = 825 * 24 * 3600
    /// The span starts this long before the certificate is made, for clients whose clock is behind.
    static let backdate: TimeInterval = 3600

    /// The paths of the pair in `directory`, made first if neither exists.
    /// - Returns: the two paths and whether the pair was made just now.
    static func ensure(in directory: String, names extra: [String] = [], now: Date = Date()) throws(TLSSetupError) -> (certificate: String, key: String, created: Bool) {
        let certificate = (directory as NSString).appendingPathComponent(certificateFileName)
        let key = (directory as NSString).appendingPathComponent(keyFileName)
        let files = FileManager.default
        switch (files.fileExists(atPath: certificate), files.fileExists(atPath: key)) {
        case (true, true): return (certificate, key, false)
        case (true, false): throw .selfSignedIncomplete(present: certificate, missing: key)
        case (false, true): throw .selfSignedIncomplete(present: key, missing: certificate)
        case (false, false): break
        }
        let (certificatePEM, keyPEM) = try make(names: defaultNames() + extra.map(generalName), now: now)
        // The key first: a crash between the two leaves a key without a certificate, which the
        // next start reports instead of silently making another pair.
        try writeNew(keyPEM, to: key, mode: 0o600)
        try writeNew(certificatePEM, to: certificate, mode: 0o644)
        return (certificate, key, true)
    }

    /// An IP literal as an IP address name, anything else as a DNS name.
    static func generalName(_ name: String) -> GeneralName {
        if let ip = IPAddress(name) {
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(ip.isIPv4 ? Array(ip.bytes[12...]) : ip.bytes)))
        }
        return .dnsName(name.lowercased())
    }

    static func defaultNames() -> [GeneralName] {
        var names: [GeneralName] = [.dnsName("localhost")]
        let host = ProcessInfo.processInfo.hostName
        if host != "localhost", DNSName.isValid(host) { names.append(.dnsName(host)) }
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
            // Each name permits itself only: a DNS name, or an IP address with a full mask.
            let permitted: [GeneralName] = names.map { name in
                guard case .ipAddress(let address) = name else { return name }
                let bytes = Array(address.bytes)
                return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes + [UInt8](repeating: 0xFF, count: bytes.count))))
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
                Critical(NameConstraints(permittedSubtrees: permitted))
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
                notValidBefore: now.addingTimeInterval(-backdate), notValidAfter: now.addingTimeInterval(validity - backdate),
                issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions, issuerPrivateKey: key)
            return (try certificate.serializeAsPEM().pemString, try key.serializeAsPEM().pemString)
        } catch {
            throw .cannotGenerate(reason: "\(error)")
        }
    }

    /// Writes `text` to a name of its own in the same directory, syncs it, then links it to `path`
    /// (refusing to replace a file that appeared meanwhile) and syncs the directory.
    private static func writeNew(_ text: String, to path: String, mode: mode_t) throws(TLSSetupError) {
        let temporary = path + ".\(getpid()).\(UUID().uuidString).new"
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
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// The configured names an existing self-signed certificate was not made for, as a warning
    /// that says how to get a new one; nil when it has them all.
    static func missingNamesWarning(certificate: Certificate, certificateFile: String, names: [String]) -> String? {
        guard let have = try? certificate.extensions.subjectAlternativeNames else { return nil }
        let missing = names.filter { !have.contains(generalName($0)) }
        guard !missing.isEmpty else { return nil }
        return "the self-signed certificate was made without tls.names \(missing.joined(separator: ", ")); \(renewal(certificateFile))"
    }

    /// How to replace a self-signed certificate.
    static func renewal(_ certificateFile: String) -> String {
        "delete \(certificateFile) and its key to make a new one (its fingerprint will change)"
    }
}
