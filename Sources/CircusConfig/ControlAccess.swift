// Who may use the control endpoint besides root and the daemon's own user: the
// `control_users`, `control_groups`, `readonly_users` and `readonly_groups` options of
// `[circus]`, resolved to uids when the configuration is loaded.

internal import Glibc

/// The grants of `[circus]`, with every name resolved against the user database at load.
///
/// Group membership is read once, at load (and at `reloadconfig`): a user added to a
/// granted group later is allowed after the next reload. Root, the daemon's own uid and
/// the `endpoint_owner` are always allowed everything; the daemon adds them.
public struct ControlAccess: Hashable, Sendable {
    /// Uids allowed every command: `control_users` and members of `control_groups`
    /// (primary or supplementary).
    public var controlUIDs: Set<UInt32> = []
    /// Uids allowed read-only commands: `readonly_users` and members of `readonly_groups`.
    public var readOnlyUIDs: Set<UInt32> = []
    /// The gids `control_groups` names, in file order.
    public var controlGroups: [UInt32] = []
    /// The gids `readonly_groups` names, in file order.
    public var readOnlyGroups: [UInt32] = []
    /// Whether `control_users` or `readonly_users` names anyone.
    public var grantsUsers = false
    /// The uid of `endpoint_owner`, who controls the daemon as in Circus.
    public var endpointOwnerUID: UInt32? = nil

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
    /// Resolves the four grant options. `value(option)` gives an option's raw value (for
    /// its location) and its expanded text, or nil when absent.
    ///
    /// Items are comma-separated names or numeric ids; a number is taken as is (a uid or
    /// gid need not have an entry), a name must exist.
    /// - Throws: ``ConfigError`` naming the file, line and option of an unknown name.
    static func controlAccess(
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
        for (option, control) in [("control_users", true), ("readonly_users", false)] {
            guard let (raw, names) = items(option) else { continue }
            for name in names {
                guard let uid = UInt32(name) ?? AccountLookup.uid(named: name) else {
                    throw fail(raw, option, "no user is named \(PythonText.repr(name))")
                }
                access.grantsUsers = true
                if control { access.controlUIDs.insert(uid) } else { access.readOnlyUIDs.insert(uid) }
            }
        }
        for (option, control) in [("control_groups", true), ("readonly_groups", false)] {
            guard let (raw, names) = items(option) else { continue }
            for name in names {
                guard let group = AccountLookup.group(name) else {
                    throw fail(raw, option, "no group is named \(PythonText.repr(name))")
                }
                let members = AccountLookup.members(of: group)
                if control {
                    access.controlGroups.append(group.gid)
                    access.controlUIDs.formUnion(members)
                } else {
                    access.readOnlyGroups.append(group.gid)
                    access.readOnlyUIDs.formUnion(members)
                }
            }
        }
        if let owner = endpointOwner { access.endpointOwnerUID = UInt32(owner) ?? AccountLookup.uid(named: owner) }
        return access
    }
}

/// The few passwd and group lookups the grants need (reentrant NSS calls).
enum AccountLookup {
    struct Group {
        var gid: UInt32
        /// Supplementary members, by name.
        var memberNames: [String]
    }

    /// Calls `body` with a buffer, growing it while the call answers ERANGE.
    private static func withBuffer<T>(_ body: (UnsafeMutablePointer<CChar>, Int) -> (code: Int32, value: T?)) -> T? {
        var size = 4096
        while size <= 1 << 22 {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let (code, value) = body(buffer, size)
            if code == ERANGE {
                size *= 4
                continue
            }
            return value
        }
        return nil
    }

    static func uid(named name: String) -> UInt32? {
        withBuffer { buffer, size in
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let code = getpwnam_r(name, &entry, buffer, size, &result)
            return (code, result != nil ? entry.pw_uid : nil)
        }
    }

    /// A group by name, or by number when all digits (a gid without an entry has no
    /// supplementary members, but users may have it as their primary group).
    static func group(_ nameOrID: String) -> Group? {
        let found: Group? = withBuffer { buffer, size in
            var entry = Glibc.group()
            var result: UnsafeMutablePointer<Glibc.group>?
            let code = UInt32(nameOrID).map { getgrgid_r($0, &entry, buffer, size, &result) }
                ?? getgrnam_r(nameOrID, &entry, buffer, size, &result)
            guard result != nil else { return (code, nil) }
            var names: [String] = []
            var member = entry.gr_mem
            while let pointer = member?.pointee {
                names.append(String(cString: pointer))
                member = member?.advanced(by: 1)
            }
            return (code, Group(gid: entry.gr_gid, memberNames: names))
        }
        return found ?? UInt32(nameOrID).map { Group(gid: $0, memberNames: []) }
    }

    /// Uids whose primary group is `group`, or who are listed in it.
    static func members(of group: Group) -> Set<UInt32> {
        var uids = Set(group.memberNames.compactMap(uid(named:)))
        setpwent()
        defer { endpwent() }
        var size = 4096
        var buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
        defer { buffer.deallocate() }
        while true {
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let code = getpwent_r(&entry, buffer, size, &result)
            if code == ERANGE && size < 1 << 22 {
                buffer.deallocate()
                size *= 4
                buffer = .allocate(capacity: size)
                continue
            }
            guard code == 0, result != nil else { break }
            if entry.pw_gid == group.gid { uids.insert(entry.pw_uid) }
        }
        return uids
    }
}
