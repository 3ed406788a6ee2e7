import Crypto
import Foundation
import SwiftASN1
import X509

/// Certificates made for one test: a CA, and leaves it signed (or self-signed ones), written
/// as PEM files into a folder the test owns.
public struct TestCertificateAuthority {
    public let certificate: Certificate
    private let key: Certificate.PrivateKey
    public let name: DistinguishedName

    public init(commonName: String = "Gatehouse Test CA") throws {
        key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        name = try DistinguishedName { CommonName(commonName) }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true))
        }
        certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.publicKey,
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: key)
    }

    public var pem: String { get throws { try certificate.serializeAsPEM().pemString } }

    /// A server certificate for `dnsNames` and `ips` (dotted or colon text), signed by this CA,
    /// valid from an hour ago for `validFor` seconds from now.
    public func issue(dnsNames: [String] = [], ips: [String] = [], commonName: String = "upstream", validFor: TimeInterval = 86400) throws -> (certificate: String, key: String) {
        let leafKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName { CommonName(commonName) }
        let names = dnsNames.map { GeneralName.dnsName($0) } + ips.map { ip in
            var v4 = in_addr()
            var v6 = in6_addr()
            if inet_pton(AF_INET, ip, &v4) == 1 {
                return GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice(withUnsafeBytes(of: &v4) { Array($0) })))
            }
            inet_pton(AF_INET6, ip, &v6)
            return GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice(withUnsafeBytes(of: &v6) { Array($0) })))
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
        }
        let leaf = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: leafKey.publicKey,
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(validFor),
            issuer: name, subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: key)
        return (try leaf.serializeAsPEM().pemString, try leafKey.serializeAsPEM().pemString)
    }

    /// Writes `text` to `directory/name` and returns the path.
    @discardableResult
    public static func write(_ text: String, to directory: String, name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent(name)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
