// The configuration loader checks account names against the daemon's user snapshot, the
// same one that serves spawning, so the databases have one reader. A name the snapshot
// does not hold (an NSS source that does not enumerate, such as LDAP) is asked for by
// name: the loader runs at start-up or on the config worker, never on the loop.

import CircusConfig
import CircusSystem
import Glibc

/// The user and group databases as circusd's configuration loader sees them.
public struct SystemAccounts: AccountDirectory {
    /// The enumerated databases.
    public let snapshot: UserSnapshot

    /// Checks names against `snapshot`, asking NSS for those it does not hold.
    public init(snapshot: UserSnapshot) { self.snapshot = snapshot }

    /// Reads the databases from ``source`` (start-up: this may block on NSS).
    public static func load() -> SystemAccounts { SystemAccounts(snapshot: UserSnapshot.load(from: source)) }

    /// Where circusd reads accounts: the system databases (NSS, refreshed when /etc/passwd
    /// or /etc/group changes). Only for tests, the environment variable
    /// `CIRCUSD_TEST_ETC_DIR` names a directory whose `passwd` and `group` files are read
    /// and watched instead, so that a test can change group membership without touching
    /// /etc; never set it in production.
    static let source: UserSource = {
        guard let dir = getenv("CIRCUSD_TEST_ETC_DIR").map({ String(cString: $0) }), !dir.isEmpty else { return .system }
        return .files(passwd: dir + "/passwd", group: dir + "/group")
    }()

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
