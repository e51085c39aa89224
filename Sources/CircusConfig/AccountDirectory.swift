// The accounts a configuration names (`endpoint_owner`, the control grants) are checked at
// load, but reading the passwd and group databases is not the loader's business: circusd
// passes the snapshot that also serves spawning (so there is one reader of the
// databases), and tests pass a fixed table.

/// The user and group databases as the configuration loader sees them.
public protocol AccountDirectory: Sendable {
    /// The uid of the user named `name` (never all digits); nil when there is none.
    /// - Throws: ``AccountLookupError`` when the database cannot answer.
    func uid(ofUser name: String) throws(AccountLookupError) -> UInt32?
    /// Whether a user has the id `uid`.
    func hasUser(uid: UInt32) throws(AccountLookupError) -> Bool
    /// The gid of the group named `name` (never all digits); nil when there is none.
    func gid(ofGroup name: String) throws(AccountLookupError) -> UInt32?
    /// The users whose primary group is `gid`, and those the group lists as members.
    func members(ofGroup gid: UInt32) throws(AccountLookupError) -> Set<UInt32>
}

/// A user or group database that could not answer (an NSS error).
public struct AccountLookupError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as the database said it.
    public let description: String

    /// Wraps the database's message.
    public init(_ description: String) { self.description = description }
}
