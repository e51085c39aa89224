// uid/gid resolution for `uid = nobody`, `gid = 1000` and initgroups (spec 6.17). Done in
// the daemon before spawning, so the child only makes setgroups/setgid/setuid calls.

import Glibc

/// A failed user or group lookup.
public struct UserDatabaseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable {
        fileprivate enum Base: Hashable, Sendable { case unknownUser, unknownGroup, system }
        fileprivate let base: Base
        /// No such user name or uid.
        public static let unknownUser = Code(base: .unknownUser)
        /// No such group name or gid.
        public static let unknownGroup = Code(base: .unknownGroup)
        /// The lookup itself failed (NSS error, out of memory).
        public static let system = Code(base: .system)
    }

    /// The kind of failure.
    public let code: Code
    /// `unknown user 'bob'`, `unknown group id 4242`, ...
    public let description: String
}

/// Lookups in the passwd and group databases (through NSS, with the reentrant calls).
public enum UserDatabase {
    /// A user account.
    public struct User: Hashable, Sendable {
        /// The user id.
        public let uid: UInt32
        /// The primary group, used when a watcher sets `uid` without `gid`.
        public let gid: UInt32
        /// The login name.
        public let name: String
    }

    /// A group.
    public struct Group: Hashable, Sendable {
        /// The group id.
        public let gid: UInt32
        /// The group name.
        public let name: String
    }

    /// Looks up a user by name, or by number when `nameOrID` is all digits (Circus's
    /// `to_uid`: a number must also exist).
    ///
    /// - Throws: `UserDatabaseError` (`unknown user 'bob'`, `unknown user id 4242`).
    public static func user(_ nameOrID: String) throws(UserDatabaseError) -> User {
        if let id = UInt32(nameOrID) { return try user(id: id) }
        let found = withPasswd { pwd, buf, len, result in getpwnam_r(nameOrID, pwd, buf, len, result) }
        switch found {
        case .found(let user): return user
        case .missing: throw UserDatabaseError(code: .unknownUser, description: "unknown user '\(nameOrID)'")
        case .failed(let e): throw UserDatabaseError(code: .system, description: "getpwnam('\(nameOrID)'): \(errnoDescription(e))")
        }
    }

    /// Looks up a user by uid.
    public static func user(id: UInt32) throws(UserDatabaseError) -> User {
        let found = withPasswd { pwd, buf, len, result in getpwuid_r(id, pwd, buf, len, result) }
        switch found {
        case .found(let user): return user
        case .missing: throw UserDatabaseError(code: .unknownUser, description: "unknown user id \(id)")
        case .failed(let e): throw UserDatabaseError(code: .system, description: "getpwuid(\(id)): \(errnoDescription(e))")
        }
    }

    /// Looks up a group by name, or by number when `nameOrID` is all digits.
    ///
    /// - Throws: `UserDatabaseError` (`unknown group 'wheel2'`, `unknown group id 4242`).
    public static func group(_ nameOrID: String) throws(UserDatabaseError) -> Group {
        if let id = UInt32(nameOrID) { return try group(id: id) }
        let found = withGroup { grp, buf, len, result in getgrnam_r(nameOrID, grp, buf, len, result) }
        switch found {
        case .found(let group): return group
        case .missing: throw UserDatabaseError(code: .unknownGroup, description: "unknown group '\(nameOrID)'")
        case .failed(let e): throw UserDatabaseError(code: .system, description: "getgrnam('\(nameOrID)'): \(errnoDescription(e))")
        }
    }

    /// Looks up a group by gid.
    public static func group(id: UInt32) throws(UserDatabaseError) -> Group {
        let found = withGroup { grp, buf, len, result in getgrgid_r(id, grp, buf, len, result) }
        switch found {
        case .found(let group): return group
        case .missing: throw UserDatabaseError(code: .unknownGroup, description: "unknown group id \(id)")
        case .failed(let e): throw UserDatabaseError(code: .system, description: "getgrgid(\(id)): \(errnoDescription(e))")
        }
    }

    /// The name for a uid, or the number as text when it has no entry (as psutil's
    /// `username()` falls back).
    public static func userName(uid: UInt32) -> String {
        (try? user(id: uid).name) ?? String(uid)
    }

    /// What `initgroups(user, gid)` would install: `gid` plus every group listing `user` as a
    /// member (getgrouplist).
    public static func groupList(user: String, gid: UInt32) -> [UInt32] {
        var count: Int32 = 32
        while true {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var n = count
            if getgrouplist(user, gid, &groups, &n) >= 0 {
                return Array(groups.prefix(Int(n)))
            }
            // -1: too small; `n` now holds the size needed.
            count = max(n, count * 2)
        }
    }

    // MARK: Plumbing for the *_r calls (retry with a bigger buffer on ERANGE)

    private enum Lookup<T> {
        case found(T)
        case missing
        case failed(Int32)
    }

    private static func withPasswd(
        _ call: (UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>, Int, UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> Int32
    ) -> Lookup<User> {
        var size = 1024
        while true {
            var pwd = passwd()
            var result: UnsafeMutablePointer<passwd>?
            // A raw buffer: the strings in `pwd` point into it until we copy them out.
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let r = call(&pwd, buffer, size, &result)
            if r == ERANGE && size < 1 << 20 { size *= 4; continue }
            if r != 0 && r != ENOENT && r != ESRCH && r != EBADF && r != EPERM { return .failed(r) }
            guard result != nil else { return .missing }
            let name = String(cString: pwd.pw_name)
            return .found(User(uid: pwd.pw_uid, gid: pwd.pw_gid, name: name))
        }
    }

    private static func withGroup(
        _ call: (UnsafeMutablePointer<Glibc.group>, UnsafeMutablePointer<CChar>, Int, UnsafeMutablePointer<UnsafeMutablePointer<Glibc.group>?>) -> Int32
    ) -> Lookup<Group> {
        var size = 1024
        while true {
            var grp = Glibc.group()
            var result: UnsafeMutablePointer<Glibc.group>?
            // A raw buffer: the strings in `grp` point into it until we copy them out.
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let r = call(&grp, buffer, size, &result)
            if r == ERANGE && size < 1 << 20 { size *= 4; continue }
            if r != 0 && r != ENOENT && r != ESRCH && r != EBADF && r != EPERM { return .failed(r) }
            guard result != nil else { return .missing }
            let name = String(cString: grp.gr_name)
            return .found(Group(gid: grp.gr_gid, name: name))
        }
    }
}
