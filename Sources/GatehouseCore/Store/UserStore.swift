import Foundation

/// A person who can sign in.
public struct UserRecord: Sendable, Hashable {
    public var username: String
    public var passwordHash: PasswordHash
    public var roles: [String]
    public var created: Date
    public var disabled: Bool

    public init(username: String, passwordHash: PasswordHash, roles: [String], created: Date, disabled: Bool = false) {
        self.username = username
        self.passwordHash = passwordHash
        self.roles = roles
        self.created = created
        self.disabled = disabled
    }
}

/// Where users live. Implementations: `SQLiteStore` (GatehouseStore; its calls block, so the server
/// runs them through ``OffloadedCredentialStore``) and `PostgresStore` (GatehousePostgres).
///
/// Guarantees every implementation gives: each call is atomic (it happens whole or not at all,
/// also when the process is killed halfway); a failed call leaves what was stored untouched;
/// user names are compared exactly (case-sensitive, as Moonraker and OctoPrint do).
public protocol UserStore: Sendable {
    /// Adds a user; ``StoreError/conflict(_:)`` when the name is taken.
    func addUser(_ user: UserRecord) async throws(StoreError)
    func user(named username: String) async throws(StoreError) -> UserRecord?
    /// All users, ordered by name.
    func users() async throws(StoreError) -> [UserRecord]
    func userCount() async throws(StoreError) -> Int
    /// Removes a user and everything issued to them; false when there was no such user.
    func deleteUser(named username: String) async throws(StoreError) -> Bool
    /// Replaces the password hash with a stronger hash of the same password, only while the
    /// stored hash is still `old` (a password changed in the meantime stays changed); false
    /// otherwise. A new password goes through ``CredentialStore/changePassword(_:forUser:)``.
    func rehashPassword(_ old: PasswordHash, to new: PasswordHash, forUser username: String) async throws(StoreError) -> Bool
    /// False when there is no such user.
    func setDisabled(_ disabled: Bool, forUser username: String) async throws(StoreError) -> Bool
    /// False when there is no such user. The user's keys never carry a role the user lost.
    func setRoles(_ roles: [String], forUser username: String) async throws(StoreError) -> Bool
}

/// A ``UserStore`` whose calls block the calling thread until they are done (SQLite), with the
/// same guarantees. Its methods answer the asynchronous requirements as they are (inline: the
/// command line, tests); the server runs them on a thread pool (``OffloadedCredentialStore``).
public protocol SynchronousUserStore: UserStore {
    func addUser(_ user: UserRecord) throws(StoreError)
    func user(named username: String) throws(StoreError) -> UserRecord?
    func users() throws(StoreError) -> [UserRecord]
    func userCount() throws(StoreError) -> Int
    func deleteUser(named username: String) throws(StoreError) -> Bool
    func rehashPassword(_ old: PasswordHash, to new: PasswordHash, forUser username: String) throws(StoreError) -> Bool
    func setDisabled(_ disabled: Bool, forUser username: String) throws(StoreError) -> Bool
    func setRoles(_ roles: [String], forUser username: String) throws(StoreError) -> Bool
}

/// What can go wrong with the store, each saying what and where.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The thing to create exists already.
    case conflict(String)
    /// The file was written by a newer Gatehouse.
    case newerSchema(path: String, unknownMigrations: [String])
    /// The file is not a Gatehouse store, or is damaged.
    case corrupt(path: String, reason: String)
    /// The store file is gone although this directory held one before.
    case missing(path: String)
    /// The file or its directory cannot be opened or created.
    case cannotOpen(path: String, reason: String)
    /// The file is readable by other users.
    case insecurePermissions(path: String, mode: String)
    /// Any other database failure.
    case failed(String)

    public var description: String {
        switch self {
        case .conflict(let what): return what
        case .newerSchema(let path, let unknown):
            return "\(path) was written by a newer Gatehouse (unknown schema steps: \(unknown.joined(separator: ", "))); run that version or restore a backup"
        case .corrupt(let path, let reason): return "\(path) is not a usable Gatehouse store: \(reason); restore it from a backup"
        case .missing(let path):
            return "\(path) is missing, but its directory held a Gatehouse store before (the .gatehouse-store marker is there); restore the file, or delete the marker to start empty on purpose"
        case .cannotOpen(let path, let reason): return "cannot open \(path): \(reason)"
        case .insecurePermissions(let path, let mode):
            return "\(path) has mode \(mode): readable by other users; run chmod 600 on it"
        case .failed(let reason): return "store error: \(reason)"
        }
    }
}
