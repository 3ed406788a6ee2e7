import Foundation

/// Makes sure a fresh store has someone who can sign in.
///
/// Guarantees: acts only when the store has no users at all (an existing store is never
/// touched); a password taken from the environment must pass the password policy, otherwise
/// nothing is created and the error says why; a generated password is 256 random bits.
public enum AdminBootstrap {
    public static let username = "admin"

    public enum Outcome: Equatable {
        /// The store already had users.
        case usersExist
        /// `admin` was created with the password from `GATEHOUSE_ADMIN_PASSWORD`.
        case createdWithGivenPassword
        /// `admin` was created with this random password, to be shown once.
        case createdWithRandomPassword(String)
    }

    public enum Failure: Error, CustomStringConvertible {
        case store(StoreError)
        case password(PasswordError)
        public var description: String {
            switch self {
            case .store(let error): return error.description
            case .password(let error): return "GATEHOUSE_ADMIN_PASSWORD: \(error)"
            }
        }
    }

    public static func ensureAdmin(
        in store: some UserStore, policy: PasswordPolicy, givenPassword: String?, now: Date = Date()
    ) async throws(Failure) -> Outcome {
        do {
            guard try await store.userCount() == 0 else { return .usersExist }
        } catch {
            throw .store(error)
        }
        let password: String
        let outcome: Outcome
        if let givenPassword, !givenPassword.isEmpty {
            do { try policy.check(givenPassword) } catch { throw .password(error) }
            password = givenPassword
            outcome = .createdWithGivenPassword
        } else {
            password = APIKeyGenerator.generate()
            outcome = .createdWithRandomPassword(password)
        }
        let hash: PasswordHash
        do { hash = try PasswordHash.make(password) } catch { throw .password(error) }
        do {
            try await store.addUser(UserRecord(username: username, passwordHash: hash, roles: ["admin"], created: now))
        } catch .conflict {
            // Another process created users in the meantime: theirs stand.
            return .usersExist
        } catch {
            // A store across a network may have stored it and failed to say so (the answer came
            // too late): the password shown now is the only copy, so look before giving up on it.
            guard let stored = try? await store.user(named: username) else {
                throw .store(.failed("\(error); if user '\(username)' exists now, set its password with `gatehouse user passwd \(username)`"))
            }
            guard stored.passwordHash == hash else { return .usersExist }
        }
        return outcome
    }
}
