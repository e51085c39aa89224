// The configuration loader checks account names against the daemon's user snapshot, the
// same one that serves spawning, so the databases have one reader. A name the snapshot
// does not hold (an NSS source that does not enumerate, such as LDAP) is asked for by
// name: the loader runs at start-up or on the config worker, never on the loop.

import CircusConfig
import CircusSystem

/// The user and group databases as circusd's configuration loader sees them.
public struct SystemAccounts: AccountDirectory {
    /// The enumerated databases.
    public let snapshot: UserSnapshot

    /// Checks names against `snapshot`, asking NSS for those it does not hold.
    public init(snapshot: UserSnapshot) { self.snapshot = snapshot }

    public func uid(ofUser name: String) throws(AccountLookupError) -> UInt32? {
        if let user = try? snapshot.user(name) { return user.uid }
        return try Self.ask { () throws(UserDatabaseError) in try UserDatabase.user(name).uid }
    }

    public func hasUser(uid: UInt32) throws(AccountLookupError) -> Bool {
        if (try? snapshot.user(String(uid))) != nil { return true }
        return try Self.ask { () throws(UserDatabaseError) in try UserDatabase.user(id: uid).uid } != nil
    }

    public func gid(ofGroup name: String) throws(AccountLookupError) -> UInt32? {
        if let group = try? snapshot.group(name) { return group.gid }
        return try Self.ask { () throws(UserDatabaseError) in try UserDatabase.group(name).gid }
    }

    public func members(ofGroup gid: UInt32) throws(AccountLookupError) -> Set<UInt32> {
        snapshot.members(ofGroup: gid)
    }

    /// A lookup's answer: nil for an unknown name, the error for a database failure.
    private static func ask(_ lookup: () throws(UserDatabaseError) -> UInt32) throws(AccountLookupError) -> UInt32? {
        do {
            return try lookup()
        } catch where error.code == .system {
            throw AccountLookupError(error.description)
        } catch {
            return nil
        }
    }
}
