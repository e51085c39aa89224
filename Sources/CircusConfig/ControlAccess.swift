// Who may use the control endpoint besides root and the daemon's own user: the
// `control_users`, `control_groups`, `readonly_users` and `readonly_groups` options of
// `[circus]`, resolved to uids when the configuration is loaded.

/// The grants of `[circus]`, with every name resolved against the user database at load.
///
/// Group membership is read at load (and at `reloadconfig`); circusd recomputes it with
/// ``withMembers(_:)`` whenever it reads the user and group databases again (it watches
/// /etc/passwd and /etc/group), so a user added to a granted group is allowed without a
/// reload. Root, the daemon's own uid and the `endpoint_owner` are always allowed
/// everything; the daemon adds them.
public struct ControlAccess: Hashable, Sendable {
    /// Uids allowed every command: `control_users` and members of `control_groups`
    /// (primary or supplementary).
    public var controlUIDs: Set<UInt32> = []
    /// Uids allowed read-only commands: `readonly_users` and members of `readonly_groups`.
    public var readOnlyUIDs: Set<UInt32> = []
    /// The uids `control_users` names.
    public var controlUsers: Set<UInt32> = []
    /// The uids `readonly_users` names.
    public var readOnlyUsers: Set<UInt32> = []
    /// The gids `control_groups` names, in file order.
    public var controlGroups: [UInt32] = []
    /// The gids `readonly_groups` names, in file order.
    public var readOnlyGroups: [UInt32] = []
    /// The uid of `endpoint_owner`. Circus only gives it the socket file; circusd also
    /// lets it send every command, since whoever owns the file was meant to control the
    /// daemon.
    public var endpointOwnerUID: UInt32? = nil

    /// Whether `control_users` or `readonly_users` names anyone.
    public var grantsUsers: Bool { !controlUsers.isEmpty || !readOnlyUsers.isEmpty }

    /// These grants with group membership as `members` tells now (the uids whose primary
    /// group is the gid, and those the group lists).
    public func withMembers(_ members: (UInt32) -> Set<UInt32>) -> ControlAccess {
        var access = self
        access.controlUIDs = controlUsers
        access.readOnlyUIDs = readOnlyUsers
        for gid in controlGroups { access.controlUIDs.formUnion(members(gid)) }
        for gid in readOnlyGroups { access.readOnlyUIDs.formUnion(members(gid)) }
        return access
    }

    public init() {}

    /// The mode and group of an ipc control socket file: only those granted must be able
    /// to connect (connecting needs write permission on the file).
    ///
    /// - 0600 when nobody is granted (the owner, root and the daemon's user, who owns
    ///   the file, connect);
    /// - 0660 with that group when grants name exactly one group and no user;
    /// - 0666 otherwise (users or several groups): the file cannot name them all, so
    ///   anyone may connect and each request is checked against the sender's uid.
    public var socketFileMode: (mode: UInt32, group: UInt32?) {
        let groups = Set(controlGroups + readOnlyGroups)
        if !grantsUsers && groups.isEmpty { return (0o600, nil) }
        if !grantsUsers && groups.count == 1 { return (0o660, groups.first) }
        return (0o666, nil)
    }
}

extension ConfigBuilder {
    /// Resolves the four grant options against `accounts`. `value(option)` gives an
    /// option's raw value (for its location) and its expanded text, or nil when absent.
    ///
    /// Items are comma-separated names or numeric ids; a number is taken as is (a uid or
    /// gid need not have an entry), a name must exist.
    /// - Throws: ``ConfigError`` naming the file, line and option of an unknown name.
    func controlAccess(
        endpointOwner: String?, _ value: (String) -> (raw: IniValue, text: String)?
    ) throws(ConfigError) -> ControlAccess {
        var access = ControlAccess()
        func items(_ option: String) -> (IniValue, [String])? {
            guard let (raw, text) = value(option) else { return nil }
            let list = text.split(separator: ",").map { PythonText.strip(String($0)) }.filter { !$0.isEmpty }
            return (raw, list)
        }
        func fail(_ raw: IniValue, _ option: String, _ message: String) -> ConfigError {
            ConfigError(at: raw.location, section: "circus", option: option, message: message)
        }
        /// A number as is; a name through `find`, which must know it.
        func resolve(_ name: String, _ kind: String, _ raw: IniValue, _ option: String,
                     _ find: (String) throws(AccountLookupError) -> UInt32?) throws(ConfigError) -> UInt32 {
            if let id = UInt32(name) { return id }
            let found: UInt32?
            do { found = try find(name) } catch { throw fail(raw, option, "cannot look up \(kind) \(PythonText.repr(name)): \(error)") }
            guard let found else { throw fail(raw, option, "no \(kind) is named \(PythonText.repr(name))") }
            return found
        }
        for (option, control) in [("control_users", true), ("readonly_users", false)] {
            guard let (raw, names) = items(option) else { continue }
            for name in names {
                let uid = try resolve(name, "user", raw, option, accounts.uid(ofUser:))
                if control {
                    access.controlUsers.insert(uid)
                    access.controlUIDs.insert(uid)
                } else {
                    access.readOnlyUsers.insert(uid)
                    access.readOnlyUIDs.insert(uid)
                }
            }
        }
        for (option, control) in [("control_groups", true), ("readonly_groups", false)] {
            guard let (raw, names) = items(option) else { continue }
            for name in names {
                let gid = try resolve(name, "group", raw, option, accounts.gid(ofGroup:))
                let members: Set<UInt32>
                do { members = try accounts.members(ofGroup: gid) } catch {
                    throw fail(raw, option, "cannot read the members of group \(PythonText.repr(name)): \(error)")
                }
                if control {
                    access.controlGroups.append(gid)
                    access.controlUIDs.formUnion(members)
                } else {
                    access.readOnlyGroups.append(gid)
                    access.readOnlyUIDs.formUnion(members)
                }
            }
        }
        if let owner = endpointOwner {
            access.endpointOwnerUID = UInt32(owner) ?? (try? accounts.uid(ofUser: owner)) ?? nil
        }
        return access
    }
}
