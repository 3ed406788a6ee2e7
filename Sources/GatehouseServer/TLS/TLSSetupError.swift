/// Why a certificate, key or CA file could not be used.
///
/// Guarantees: names the file and what was wrong with it, never the file's contents.
public enum TLSSetupError: Error, CustomStringConvertible, Sendable {
    case unreadable(file: String, reason: String)
    case notPEMCertificates(file: String, reason: String)
    case notPEMKey(file: String, reason: String)
    case rejected(certificate: String, key: String, reason: String)
    /// One of the two self-signed files is there, the other is not.
    case selfSignedIncomplete(present: String, missing: String)
    case cannotWrite(file: String, reason: String)
    case cannotGenerate(reason: String)
    case badCAFile(file: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "\(file): cannot read it (\(reason))"
        case .notPEMCertificates(let file, let reason): return "\(file): not a PEM certificate chain (\(reason))"
        case .notPEMKey(let file, let reason): return "\(file): not a PEM private key (\(reason))"
        case .rejected(let certificate, let key, let reason):
            return "\(certificate) with \(key): the TLS library refused them (\(reason)); does the key belong to the certificate?"
        case .selfSignedIncomplete(let present, let missing):
            return "\(present) exists but \(missing) does not; restore it, or delete both to make a new certificate (its fingerprint will change)"
        case .cannotWrite(let file, let reason): return "\(file): cannot write it (\(reason))"
        case .cannotGenerate(let reason): return "cannot make a self-signed certificate (\(reason))"
        case .badCAFile(let file, let reason): return "upstream_tls.ca_file \(file): \(reason)"
        }
    }
}
