import Foundation

/// `store: {url: postgres://…}`: a PostgreSQL database shared by several Gatehouses, instead of
/// the SQLite file of `store.path`.
///
/// Guarantees: the URL never carries the password (``ConfigLoader`` refuses one; it is read from
/// ``passwordFile`` when the store is opened); ``description`` names user, host, port and
/// database only.
public struct SharedStoreSettings: Sendable, Equatable, CustomStringConvertible {
    /// How the connection to the database is protected.
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        /// Plain TCP: only for a database on this host or a network nobody else can reach.
        case disable
        /// Encrypted, but the server's certificate is not checked.
        case require
        /// Encrypted, and the certificate is checked against `ca_file` (or the system's roots)
        /// and the host name. The default.
        case verifyFull = "verify-full"
    }

    public var username: String
    public var host: String
    public var port: Int
    public var database: String
    /// `password_file`: read when the store is opened; nil for trust or peer authentication.
    public var passwordFile: String?
    public var tls: TLSMode = .verifyFull
    /// `ca_file`: the certificate authority for `verify-full` (a private CA).
    public var caFile: String?
    /// `pool_size` (default 8): the most connections one Gatehouse opens (plus one that listens).
    public var poolSize: Int = 8

    public init(username: String, host: String, port: Int = 5432, database: String) {
        self.username = username
        self.host = host
        self.port = port
        self.database = database
    }

    /// Reads `postgres://user@host:port/database` (or `postgresql://`); the message of a
    /// failure says what is missing or wrong.
    public init(url: String) throws(SharedStoreURLError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw .init("expected a URL like postgres://gatehouse@db.lan:5432/gatehouse")
        }
        guard ["postgres", "postgresql"].contains(scheme) else { throw .init("the scheme must be postgres://, not \(scheme)://") }
        guard components.password == nil else {
            throw .init("the URL holds a password; put it in password_file instead (the config file is not a secret store)")
        }
        guard let user = components.user, !user.isEmpty else { throw .init("name the database user, like postgres://gatehouse@host/database") }
        guard let host = components.host, !host.isEmpty else { throw .init("name the database host") }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else { throw .init("name the database after the host, like …@host:5432/gatehouse") }
        guard components.query == nil, components.fragment == nil else {
            throw .init("settings go in store: (tls, ca_file, pool_size), not in the URL's query")
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw .init("port \(port) is not a TCP port") }
        self.init(username: user, host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: port, database: database)
    }

    public var description: String {
        "postgres://\(username)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
    }
}

/// What is wrong with a `store.url`.
public struct SharedStoreURLError: Error, Equatable {
    public let message: String
    init(_ message: String) { self.message = message }
}
