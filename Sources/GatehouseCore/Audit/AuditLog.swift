import Foundation
import Synchronization

/// What happened, in the audit log's `event` field.
public enum AuditAction: String, Sendable {
    case login
    case loginFailed = "login_failed"
    /// A name or address just reached the failure limit.
    case lockout
    case logout
    case userCreated = "user_created"
    case userDeleted = "user_deleted"
    case userDisabled = "user_disabled"
    case userEnabled = "user_enabled"
    case passwordChanged = "password_changed"
    case keyCreated = "key_created"
    case keyRevoked = "key_revoked"
    case tokenIssued = "token_issued"
    case tokenRevoked = "token_revoked"
    case sessionRevoked = "session_revoked"
    case configReloaded = "config_reloaded"
    case configReloadFailed = "config_reload_failed"
}

/// The audit log: one JSON object per line for each security event (sign-ins and their
/// failures, lockouts, logouts, changes to users, keys, tokens and sessions, config reloads).
///
/// Guarantees: a line holds only names, addresses, times and reasons — the fields are chosen
/// by the caller from a fixed set (``record(_:user:actor:client:via:name:reason:at:)``) and none
/// of them takes a secret; user names a client typed are cut to 64 characters and, like every
/// value, JSON-escaped, so no input can forge a line. Lines are written whole (one `write` per
/// line, `O_APPEND` for a file), so several processes may share one file.
public final class AuditLog: Sendable {
    private let sink: @Sendable (String) -> Void

    /// Writes each line with `write`.
    public init(write: @escaping @Sendable (String) -> Void) { self.sink = write }

    /// Lines to standard output.
    public static func standardOutput() -> AuditLog {
        AuditLog { line in
            let bytes = Array(line.utf8)
            _ = bytes.withUnsafeBytes { Foundation.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        }
    }

    /// Lines appended to the file at `path` (created with mode 0600 when missing).
    public static func file(_ path: String) throws(AuditLogError) -> AuditLog {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditLogError(path: path, reason: String(cString: strerror(errno))) }
        let descriptor = FileDescriptorBox(fd)
        return AuditLog { line in
            let bytes = Array(line.utf8)
            _ = bytes.withUnsafeBytes { Foundation.write(descriptor.fd, $0.baseAddress, $0.count) }
        }
    }

    /// The log `audit_log` names: `stdout`, `off` (nil) or a file path.
    public static func named(_ setting: String) throws(AuditLogError) -> AuditLog? {
        switch setting {
        case "off": return nil
        case "stdout": return standardOutput()
        default: return try file(setting)
        }
    }

    public func record(
        _ action: AuditAction, user: String? = nil, actor: String? = nil, client: IPAddress? = nil, via: String? = nil,
        name: String? = nil, reason: String? = nil, at time: Date
    ) {
        var fields: [(String, String)] = [("time", InternetDate.format(time)), ("event", action.rawValue)]
        if let user { fields.append(("user", String(user.prefix(64)))) }
        if let actor { fields.append(("actor", String(actor.prefix(64)))) }
        if let client { fields.append(("client", client.description)) }
        if let via { fields.append(("via", via)) }
        if let name { fields.append(("name", String(name.prefix(64)))) }
        if let reason { fields.append(("reason", String(reason.prefix(500)))) }
        sink("{" + fields.map { "\"\($0.0)\":\"\(JSONText.escaped($0.1))\"" }.joined(separator: ",") + "}\n")
    }
}

/// The audit log file cannot be opened.
public struct AuditLogError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot open the audit log \(path): \(reason)" }
}

/// Keeps an audit file open for the life of the process (closed when the log is released).
private final class FileDescriptorBox: Sendable {
    let fd: Int32
    init(_ fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
