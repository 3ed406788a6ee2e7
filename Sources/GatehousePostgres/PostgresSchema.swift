import Foundation
import GatehouseCore
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// The PostgreSQL store's tables, made and moved forward by versioned steps with the same names
/// and columns as the SQLite store's (`SQLiteStore.migrator`), so that a store can be copied
/// from one to the other row for row.
///
/// Guarantees:
/// - Each step runs at most once per database, however many Gatehouses start at the same time:
///   the whole of ``migrate(_:database:logger:)`` is one transaction that first takes a
///   transaction-scoped advisory lock (PostgreSQL's DDL is transactional), so a second replica
///   waits for the first and then finds the steps applied.
/// - A database that records a step this build does not know (a newer Gatehouse wrote it) is
///   refused with ``StoreError/newerSchema(path:unknownMigrations:)`` and left as it is.
/// - A step that fails undoes everything the call did; the error says which step.
/// - Like SQLite's, the `revision` counter moves in the same transaction as every change that can
///   withdraw access (and only then), and each such transaction also notifies
///   ``revisionChannel``, for replicas to look at the revision at once instead of at their next poll.
public enum PostgresSchema {
    /// One schema step: its name (recorded in `gatehouse_migrations`) and its statements, run in order.
    public struct Step: Sendable {
        public let id: String
        let statements: [String]
    }

    /// The `LISTEN` channel a change of the revision is announced on.
    public static let revisionChannel = "gatehouse_revision"

    /// The advisory lock every migration takes ("gatehous" in ASCII: a constant no other
    /// application on the database is likely to use).
    static let lockKey: Int64 = 0x6761_7465_686F_7573

    /// The steps this build knows, oldest first. Never edit a step that has shipped: add one.
    public static let steps: [Step] = [
        Step(id: "v1-users", statements: [
            """
            CREATE TABLE users (
                id bigserial PRIMARY KEY, username text NOT NULL UNIQUE, password_hash text NOT NULL, roles text NOT NULL,
                created double precision NOT NULL, disabled boolean NOT NULL DEFAULT false)
            """
        ]),
        Step(id: "v2-credentials", statements: [
            """
            CREATE TABLE sessions (
                digest text PRIMARY KEY, username text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
                created double precision NOT NULL, last_seen double precision NOT NULL, expires double precision NOT NULL,
                remember boolean NOT NULL, origin text NOT NULL)
            """,
            "CREATE INDEX sessions_on_username ON sessions(username)",
            """
            CREATE TABLE api_keys (
                name text PRIMARY KEY, digest text NOT NULL UNIQUE, username text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
                roles text, read_only boolean NOT NULL, expires double precision, created double precision NOT NULL,
                last_used double precision, description text NOT NULL)
            """,
            "CREATE INDEX api_keys_on_username ON api_keys(username)",
            """
            CREATE TABLE tokens (
                jti text PRIMARY KEY, username text NOT NULL REFERENCES users(username) ON DELETE CASCADE, kind text NOT NULL,
                family text, created double precision NOT NULL, expires double precision, revoked boolean NOT NULL,
                used boolean NOT NULL, description text NOT NULL)
            """,
            "CREATE INDEX tokens_on_username ON tokens(username)",
            "CREATE INDEX tokens_on_family ON tokens(family)",
        ]),
        // The counter is a row, not a sequence: the row lock makes its new value visible exactly
        // when the change commits, never before. Triggers fire per row (a statement trigger would
        // also fire for a DELETE of nothing); PostgreSQL folds the identical notifications of one
        // transaction into one.
        Step(id: "v3-revision", statements: [
            "CREATE TABLE revision (id integer PRIMARY KEY CHECK (id = 1), value bigint NOT NULL)",
            "INSERT INTO revision (id, value) VALUES (1, 0)",
            """
            CREATE FUNCTION gatehouse_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE revision SET value = value + 1 WHERE id = 1;
                PERFORM pg_notify('\(revisionChannel)', '');
                RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER users_updated AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()",
            "CREATE TRIGGER users_deleted AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()",
            """
            CREATE TRIGGER sessions_updated AFTER UPDATE OF digest, username, expires, remember ON sessions
                FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()",
            """
            CREATE TRIGGER api_keys_updated AFTER UPDATE OF name, digest, username, roles, read_only, expires ON api_keys
                FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()",
            """
            CREATE TRIGGER tokens_updated AFTER UPDATE OF jti, username, kind, family, expires, revoked ON tokens
                FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "CREATE TRIGGER tokens_deleted AFTER DELETE ON tokens FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()",
        ]),
        // What replicas share that a single Gatehouse keeps in memory (SQLite has no such step).
        // Not tied to users: identities from the config file's keys and networks have none.
        Step(id: "pg-v4-one-shot-tokens", statements: [
            """
            CREATE TABLE one_shot_tokens (
                digest text PRIMARY KEY, username text NOT NULL, roles text NOT NULL, method text NOT NULL,
                read_only boolean NOT NULL, source text NOT NULL, expires double precision, issued double precision NOT NULL,
                credential text NOT NULL)
            """,
            "CREATE INDEX one_shot_tokens_on_username ON one_shot_tokens(username)",
            "CREATE INDEX one_shot_tokens_on_credential ON one_shot_tokens(credential)",
            "CREATE INDEX one_shot_tokens_on_issued ON one_shot_tokens(issued)",
        ]),
        // Failed sign-ins, counted per name and per address over all replicas (keys as
        // LoginThrottle's: `user:NAME`, `addr:ADDRESS`).
        Step(id: "pg-v5-login-throttle", statements: [
            "CREATE TABLE login_failures (key text NOT NULL, at double precision NOT NULL)",
            "CREATE INDEX login_failures_on_key ON login_failures(key, at)",
            "CREATE INDEX login_failures_on_at ON login_failures(at)",
            "CREATE TABLE login_lockouts (key text PRIMARY KEY, until double precision NOT NULL)",
            "CREATE SEQUENCE login_reservations",
            "CREATE TABLE login_pending (reservation bigint NOT NULL, key text NOT NULL, started double precision NOT NULL)",
            "CREATE INDEX login_pending_on_key ON login_pending(key, started)",
            "CREATE INDEX login_pending_on_reservation ON login_pending(reservation)",
        ]),
        // An attempt counts as a failure from the moment it is admitted (unsettled) until it is
        // settled as a success: a settlement that never reaches the database (it went down, the
        // replica died) leaves a failure behind, never a guess that was not counted.
        Step(id: "pg-v6-login-failures-from-admission", statements: [
            "ALTER TABLE login_failures ADD COLUMN reservation bigint",
            "ALTER TABLE login_failures ADD COLUMN settled boolean NOT NULL DEFAULT true",
            "CREATE INDEX login_failures_on_reservation ON login_failures(reservation)",
            "DROP TABLE login_pending",
        ]),
        // OctoPrint app-key requests waiting for a decision (AppKeyPairing's table), and the
        // requests each client made in the last hour (by address; IPv6 by its /64).
        Step(id: "pg-v7-app-key-requests", statements: [
            """
            CREATE TABLE app_key_requests (
                app_digest text PRIMARY KEY, decision_digest text NOT NULL UNIQUE, decision_token text NOT NULL,
                app text NOT NULL, requested_user text, client text, created double precision NOT NULL,
                last_poll double precision NOT NULL, approved_by text, approved_at double precision,
                grant_roles text, grant_read_only boolean, grant_expires double precision)
            """,
            "CREATE TABLE app_key_request_log (client text NOT NULL, at double precision NOT NULL)",
            "CREATE INDEX app_key_request_log_on_client ON app_key_request_log(client, at)",
            "CREATE INDEX app_key_request_log_on_at ON app_key_request_log(at)",
        ]),
        // The revision moves at the end of a transaction, after every row it changes is locked:
        // moving it at the first changed row (v3) let a password change (revision first, then
        // the user's sessions) and a logout (a session first, then the revision) deadlock. A
        // transaction that needs the new value in it runs `SET CONSTRAINTS ALL IMMEDIATE` last.
        Step(id: "pg-v8-revision-moved-last", statements: [
            "DROP TRIGGER users_updated ON users",
            """
            CREATE CONSTRAINT TRIGGER users_updated AFTER UPDATE ON users
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "DROP TRIGGER users_deleted ON users",
            """
            CREATE CONSTRAINT TRIGGER users_deleted AFTER DELETE ON users
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "DROP TRIGGER sessions_updated ON sessions",
            """
            CREATE CONSTRAINT TRIGGER sessions_updated AFTER UPDATE OF digest, username, expires, remember ON sessions
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "DROP TRIGGER sessions_deleted ON sessions",
            """
            CREATE CONSTRAINT TRIGGER sessions_deleted AFTER DELETE ON sessions
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "DROP TRIGGER api_keys_updated ON api_keys",
            """
            CREATE CONSTRAINT TRIGGER api_keys_updated AFTER UPDATE OF name, digest, username, roles, read_only, expires ON api_keys
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "DROP TRIGGER api_keys_deleted ON api_keys",
            """
            CREATE CONSTRAINT TRIGGER api_keys_deleted AFTER DELETE ON api_keys
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "DROP TRIGGER tokens_updated ON tokens",
            """
            CREATE CONSTRAINT TRIGGER tokens_updated AFTER UPDATE OF jti, username, kind, family, expires, revoked ON tokens
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
            "DROP TRIGGER tokens_deleted ON tokens",
            """
            CREATE CONSTRAINT TRIGGER tokens_deleted AFTER DELETE ON tokens
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gatehouse_bump_revision()
            """,
        ]),
    ]

    /// Brings the database to this build's schema and returns the steps this call applied (none
    /// when it was there already). `database` names it in errors.
    public static func migrate(_ client: PostgresClient, database: String, logger: Logger) async throws(StoreError) -> [String] {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS gatehouse_migrations (id text PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())",
                    logger: logger)
                var recorded: Set<String> = []
                for try await id in try await connection.query("SELECT id FROM gatehouse_migrations", logger: logger).decode(String.self) {
                    recorded.insert(id)
                }
                let unknown = recorded.subtracting(steps.map(\.id)).sorted()
                guard unknown.isEmpty else { throw StoreError.newerSchema(path: database, unknownMigrations: unknown) }
                var applied: [String] = []
                for step in steps where !recorded.contains(step.id) {
                    for statement in step.statements {
                        do {
                            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        } catch {
                            throw StoreError.failed("schema step \(step.id) of \(database): \(PostgresFailure.reason(error))")
                        }
                    }
                    try await connection.query("INSERT INTO gatehouse_migrations (id) VALUES (\(step.id))", logger: logger)
                    applied.append(step.id)
                }
                return applied
            }
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError as? StoreError { throw inner }
            throw .failed("migrating \(database): \(PostgresFailure.reason(error.closureError ?? error.commitError ?? error.beginError ?? error))")
        } catch let error as StoreError {
            throw error
        } catch {
            throw .failed("migrating \(database): \(PostgresFailure.reason(error))")
        }
    }
}

/// A PostgreSQL failure as a line for an operator: the server's own message when it sent one
/// (postgres-nio's `PSQLError` description is kept generic on purpose, so that nothing from the
/// query — bound values, which may be secrets — ends up in a log), else the error's kind.
enum PostgresFailure {
    static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let code = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return message + code
            }
            switch error.code {
            case .sslUnsupported:
                return "the server does not offer TLS (tls: disable is only for a database on this host or a private network)"
            case .authMechanismRequiresPassword:
                return "the server asks for a password: give store.password_file"
            case .serverClosedConnection, .uncleanShutdown:
                return "the server closed the connection"
            case .connectionError:
                return error.underlying.map(networkReason) ?? "cannot connect"
            default:
                return error.underlying.map { "\(error.code): \(networkReason($0))" } ?? "\(error.code)"
            }
        }
        return networkReason(error)
    }

    /// A network failure in plain words (`connection refused`), not NIO's error value.
    static func networkReason(_ error: any Error) -> String {
        if let error = error as? NIOConnectionError {
            return error.connectionErrors.first.map { networkReason($0.error) } ?? error.dnsAAAAError.map(networkReason)
                ?? error.dnsAError.map(networkReason) ?? "cannot connect"
        }
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        if let error = error as? NIOSSLError { return "TLS: \(error)" }
        if let error = error as? BoringSSLError { return "TLS: \(error)" }
        if error is ChannelError { return "the connection failed (\(error))" }
        return "\(error)"
    }
}
