// uid/gid resolution for `uid = nobody`, `gid = 1000` and initgroups. Done in the daemon
// before spawning, so the child only makes setgroups/setgid/setuid calls.
//
// `UserDatabase` asks NSS directly (it may read files, talk to sssd or LDAP: it can block).
// The daemon itself reads a `UserDirectory`: a snapshot of both databases taken at start-up
// and again, on a worker thread, whenever /etc/passwd or /etc/group changes, so the loop
// thread never waits on NSS.

import Glibc
import Synchronization

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
        var found: User?
        let r = withGrowingBuffer { buffer, size in
            var pwd = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let r = call(&pwd, buffer, size, &result)
            if r == 0, result != nil { found = User(pwd) }
            return r
        }
        if r != 0 && r != ENOENT && r != ESRCH && r != EBADF && r != EPERM { return .failed(r) }
        return found.map(Lookup.found) ?? .missing
    }

    private static func withGroup(
        _ call: (UnsafeMutablePointer<Glibc.group>, UnsafeMutablePointer<CChar>, Int, UnsafeMutablePointer<UnsafeMutablePointer<Glibc.group>?>) -> Int32
    ) -> Lookup<Group> {
        var found: Group?
        let r = withGrowingBuffer { buffer, size in
            var grp = Glibc.group()
            var result: UnsafeMutablePointer<Glibc.group>?
            let r = call(&grp, buffer, size, &result)
            if r == 0, result != nil { found = Group(grp) }
            return r
        }
        if r != 0 && r != ENOENT && r != ESRCH && r != EBADF && r != EPERM { return .failed(r) }
        return found.map(Lookup.found) ?? .missing
    }

    /// Calls `body` with a scratch buffer for the strings of one *_r entry, again with a
    /// four times larger one while it answers ERANGE (up to 1 MiB); returns its last answer.
    /// The entry's strings point into the buffer: `body` copies what it keeps.
    static func withGrowingBuffer(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> Int32 {
        var size = 1024
        while true {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let r = body(buffer, size)
            if r == ERANGE && size < 1 << 20 {
                size *= 4
                continue
            }
            return r
        }
    }
}

extension UserDatabase.User {
    /// Copies a passwd entry out of its buffer.
    init(_ pwd: passwd) {
        self.init(uid: pwd.pw_uid, gid: pwd.pw_gid, name: String(cString: pwd.pw_name))
    }
}

extension UserDatabase.Group {
    /// Copies a group entry out of its buffer (without its members).
    init(_ grp: Glibc.group) {
        self.init(gid: grp.gr_gid, name: String(cString: grp.gr_name))
    }
}

// MARK: - A cached directory for the loop thread

/// Where a `UserDirectory` reads accounts from.
public enum UserSource: Hashable, Sendable {
    /// NSS (`getpwent`, `getpwnam`, ...), refreshed when /etc/passwd or /etc/group changes.
    case system
    /// passwd(5) and group(5) files at these paths (tests; a chroot's database).
    case files(passwd: String, group: String)

    /// The files whose change means the database changed.
    public var watchedFiles: [String] {
        switch self {
        case .system: return ["/etc/passwd", "/etc/group"]
        case .files(let passwd, let group): return [passwd, group]
        }
    }
}

/// One reading of the passwd and group databases. Lookups in it never block.
public struct UserSnapshot: Sendable {
    var usersByName: [String: UserDatabase.User] = [:]
    var usersByID: [UInt32: UserDatabase.User] = [:]
    var groupsByName: [String: UserDatabase.Group] = [:]
    var groupsByID: [UInt32: UserDatabase.Group] = [:]
    /// user name -> the groups listing it as a member, in database order.
    var memberships: [String: [UInt32]] = [:]
    /// getgrouplist's answer for users looked up by name through NSS (sources that do not
    /// enumerate their groups are covered too), keyed by user name with the gid asked for.
    var groupLists: [String: (gid: UInt32, groups: [UInt32])] = [:]

    /// Looks up a user by name, or by number when `nameOrID` is all digits (Circus's
    /// `to_uid`: a number must also exist).
    ///
    /// - Throws: `UserDatabaseError` (`unknown user 'bob'`, `unknown user id 4242`).
    public func user(_ nameOrID: String) throws(UserDatabaseError) -> UserDatabase.User {
        if let id = UInt32(nameOrID) {
            guard let user = usersByID[id] else {
                throw UserDatabaseError(code: .unknownUser, description: "unknown user id \(id)")
            }
            return user
        }
        guard let user = usersByName[nameOrID] else {
            throw UserDatabaseError(code: .unknownUser, description: "unknown user '\(nameOrID)'")
        }
        return user
    }

    /// Looks up a group by name, or by number when `nameOrID` is all digits.
    ///
    /// - Throws: `UserDatabaseError` (`unknown group 'wheel2'`, `unknown group id 4242`).
    public func group(_ nameOrID: String) throws(UserDatabaseError) -> UserDatabase.Group {
        if let id = UInt32(nameOrID) {
            guard let group = groupsByID[id] else {
                throw UserDatabaseError(code: .unknownGroup, description: "unknown group id \(id)")
            }
            return group
        }
        guard let group = groupsByName[nameOrID] else {
            throw UserDatabaseError(code: .unknownGroup, description: "unknown group '\(nameOrID)'")
        }
        return group
    }

    /// What `initgroups(user, gid)` installs: `gid` first, then every group listing `user`
    /// as a member (as getgrouplist orders them).
    public func groupList(user: String, gid: UInt32) -> [UInt32] {
        if let known = groupLists[user], known.gid == gid { return known.groups }
        return [gid] + (memberships[user] ?? []).filter { $0 != gid }
    }

    /// The name for a uid, or the number as text when it has no entry (as psutil's
    /// `username()` falls back).
    public func userName(uid: UInt32) -> String {
        usersByID[uid]?.name ?? String(uid)
    }

    /// The users whose primary group is `gid`, and those the group lists as members.
    public func members(ofGroup gid: UInt32) -> Set<UInt32> {
        var uids = Set(usersByID.values.filter { $0.gid == gid }.map(\.uid))
        for (name, groups) in memberships where groups.contains(gid) {
            if let user = usersByName[name] { uids.insert(user.uid) }
        }
        return uids
    }

    mutating func add(_ user: UserDatabase.User) {
        if usersByName[user.name] == nil { usersByName[user.name] = user }
        if usersByID[user.uid] == nil { usersByID[user.uid] = user }
    }

    mutating func add(_ group: UserDatabase.Group, members: [String]) {
        let fresh = groupsByName[group.name] == nil
        if fresh { groupsByName[group.name] = group }
        if groupsByID[group.gid] == nil { groupsByID[group.gid] = group }
        guard fresh else { return }
        for member in members where memberships[member]?.contains(group.gid) != true {
            memberships[member, default: []].append(group.gid)
        }
    }

    /// Reads both databases from `source` (blocking: a worker's job, or start-up).
    ///
    /// With `.system`, NSS enumerates what it can (every `files` entry), and the names in
    /// `users`/`groups` are also asked for one by one, for sources that do not enumerate
    /// (LDAP, sssd without `enumerate`).
    public static func load(from source: UserSource, users: Set<String> = [], groups: Set<String> = []) -> UserSnapshot {
        var snapshot = UserSnapshot()
        switch source {
        case .system:
            UserDatabase.enumerateUsers { snapshot.add($0) }
            UserDatabase.enumerateGroups { snapshot.add($0, members: $1) }
            snapshot.lookUp(users: users, groups: groups)
        case .files(let passwd, let group):
            UserDatabase.readUsers(file: passwd) { snapshot.add($0) }
            UserDatabase.readGroups(file: group) { snapshot.add($0, members: $1) }
        }
        return snapshot
    }

    /// Asks NSS for these names one by one and adds what it knows (sources that do not
    /// enumerate, such as LDAP, answer these). Blocking: start-up or a worker.
    public mutating func lookUp(users: Set<String>, groups: Set<String>) {
        for name in users.sorted() {
            guard let user = try? UserDatabase.user(name) else { continue }
            add(user)
            groupLists[user.name] = (user.gid, UserDatabase.groupList(user: user.name, gid: user.gid))
        }
        for name in groups.sorted() {
            if let group = try? UserDatabase.group(name) { add(group, members: []) }
        }
    }
}

/// The daemon's view of the user and group databases: a snapshot any thread may read,
/// replaced as a whole when the databases change.
public final class UserDirectory: Sendable {
    private struct State {
        var snapshot: UserSnapshot
        var generation: UInt64 = 0
        var wantedUsers: Set<String>
        var wantedGroups: Set<String>
    }

    /// Where the accounts come from.
    public let source: UserSource
    private let state: Mutex<State>

    /// Reads the databases now (start-up: this may block on NSS).
    ///
    /// - Parameters:
    ///   - users: names (or ids) the configuration refers to, looked up one by one besides
    ///     the enumeration (see `UserSnapshot.load`).
    ///   - groups: group names (or ids) likewise.
    ///   - initial: a snapshot of `source` already read (circusd reads one to check its
    ///     configuration); the names are looked up in addition. Nil reads one now.
    public init(source: UserSource = .system, initial: UserSnapshot? = nil, users: Set<String> = [],
                groups: Set<String> = []) {
        self.source = source
        let snapshot: UserSnapshot
        if var initial, source == .system {
            initial.lookUp(users: users, groups: groups)
            snapshot = initial
        } else {
            snapshot = UserSnapshot.load(from: source, users: users, groups: groups)
        }
        state = Mutex(State(snapshot: snapshot, wantedUsers: users, wantedGroups: groups))
    }

    /// The current snapshot.
    public var snapshot: UserSnapshot { state.withLock { $0.snapshot } }

    /// How many times the snapshot was replaced since start-up.
    public var generation: UInt64 { state.withLock { $0.generation } }

    /// Remembers names to look up one by one at every refresh (a name the snapshot did not
    /// know, which a non-enumerating NSS source may still know).
    ///
    /// - Returns: true when a name was new (a refresh would look it up for the first time).
    @discardableResult
    public func want(users: [String] = [], groups: [String] = []) -> Bool {
        state.withLock {
            var added = false
            for name in users { added = $0.wantedUsers.insert(name).inserted || added }
            for name in groups { added = $0.wantedGroups.insert(name).inserted || added }
            return added
        }
    }

    /// Reads the databases again (blocking: call it on a worker) and installs the result.
    public func reload() {
        let (users, groups) = state.withLock { ($0.wantedUsers, $0.wantedGroups) }
        let fresh = UserSnapshot.load(from: source, users: users, groups: groups)
        state.withLock {
            $0.snapshot = fresh
            $0.generation += 1
        }
    }
}

/// Keeps a `UserDirectory` current: an inotify descriptor on the loop notices that the
/// passwd or group file changed (editors and `useradd` replace the file, so the watch is
/// on its directory), and the reload runs on a worker. Loop-thread only.
public final class UserDirectoryWatch {
    private let directory: UserDirectory
    private let loop: EventLoop
    private let worker: SerialWorker
    private var fd: Int32
    private var registration: EventLoop.Registration?
    private var watchNames: [Int32: Set<String>] = [:]
    private var reloading = false
    private var reloadAgain = false
    private let onReload: () -> Void

    /// Starts watching the files of `directory.source`.
    ///
    /// - Parameter onReload: called on the loop thread after each reload was installed.
    /// - Throws: `SystemError` when inotify or the loop registration fails.
    public init(
        _ directory: UserDirectory, loop: EventLoop, worker: SerialWorker, onReload: @escaping () -> Void = {}
    ) throws(SystemError) {
        self.directory = directory
        self.loop = loop
        self.worker = worker
        self.onReload = onReload
        fd = try retryingSyscall("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
        var byDirectory: [String: Set<String>] = [:]
        for file in directory.source.watchedFiles {
            let slash = file.lastIndex(of: "/")
            let dir = slash.map { $0 == file.startIndex ? "/" : String(file[..<$0]) } ?? "."
            let name = slash.map { String(file[file.index(after: $0)...]) } ?? file
            byDirectory[dir, default: []].insert(name)
        }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB)
        for (dir, names) in byDirectory {
            let wd = inotify_add_watch(fd, dir, mask)
            if wd < 0 {
                let code = errno
                close()
                throw SystemError("inotify_add_watch(\(dir))", errno: code)
            }
            watchNames[wd] = names
        }
        do {
            registration = try loop.register(fd: fd) { [unowned self] _ in self.readEvents() }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Stops watching and closes the descriptor. Idempotent.
    public func close() {
        if let registration { loop.unregister(registration) }
        registration = nil
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    /// Reads the databases again on the worker; a request during a reload makes one more.
    public func reload() {
        guard !reloading else {
            reloadAgain = true
            return
        }
        reloading = true
        let directory = self.directory
        do {
            try loop.offload(to: worker, { directory.reload() }, then: { [weak self] in self?.reloaded() })
        } catch {
            // No thread for the reload: keep the old snapshot, try again at the next change.
            reloading = false
        }
    }

    private func reloaded() {
        reloading = false
        onReload()
        if reloadAgain {
            reloadAgain = false
            reload()
        }
    }

    private func readEvents() {
        var relevant = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while fd >= 0 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            var offset = 0
            buffer.withUnsafeBytes { raw in
                while offset + MemoryLayout<inotify_event>.size <= n {
                    let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameStart = offset + MemoryLayout<inotify_event>.size
                    let nameBytes = raw[nameStart..<min(nameStart + length, n)].prefix { $0 != 0 }
                    let name = String(decoding: nameBytes, as: UTF8.self)
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 || watchNames[wd]?.contains(name) == true { relevant = true }
                    offset = nameStart + length
                }
            }
        }
        if relevant { reload() }
    }
}

extension UserDatabase {
    // MARK: Enumeration (blocking; start-up or a worker)

    /// Every user NSS enumerates (getpwent_r).
    static func enumerateUsers(_ body: (User) -> Void) {
        setpwent()
        defer { endpwent() }
        // getpwent_r leaves an entry that did not fit for the next call.
        while nextUser({ pwd, buffer, size, result in getpwent_r(pwd, buffer, size, result) }, body) {}
    }

    /// Every group NSS enumerates, with its member names.
    ///
    /// getgrent, not getgrent_r (which Glibc's module map does not expose): its static
    /// buffer is safe here because enumeration runs on one thread at a time (start-up,
    /// then the directory's worker) and nothing else in the process uses getgrent.
    static func enumerateGroups(_ body: (Group, [String]) -> Void) {
        setgrent()
        defer { endgrent() }
        while let grp = getgrent() {
            body(Group(grp.pointee), members(grp.pointee.gr_mem))
        }
    }

    /// The users of a passwd(5) file (fgetpwent_r); nothing when it cannot be read.
    static func readUsers(file path: String, _ body: (User) -> Void) {
        guard let stream = fopen(path, "re") else { return }
        defer { fclose(stream) }
        // fgetpwent_r puts a line that did not fit back for the next call.
        while nextUser({ pwd, buffer, size, result in fgetpwent_r(stream, pwd, buffer, size, result) }, body) {}
    }

    /// The groups of a group(5) file (fgetgrent_r), with their member names.
    static func readGroups(file path: String, _ body: (Group, [String]) -> Void) {
        guard let stream = fopen(path, "re") else { return }
        defer { fclose(stream) }
        while true {
            var entry: (Group, [String])?
            let r = withGrowingBuffer { buffer, size in
                var grp = Glibc.group()
                var result: UnsafeMutablePointer<Glibc.group>?
                let r = fgetgrent_r(stream, &grp, buffer, size, &result)
                if r == 0, result != nil { entry = (Group(grp), members(grp.gr_mem)) }
                return r
            }
            guard r == 0, let entry else { return }
            body(entry.0, entry.1)
        }
    }

    /// Reads one entry with a passwd `*_r` call and hands it to `body`; false at the end.
    private static func nextUser(
        _ call: (UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>, Int, UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> Int32,
        _ body: (User) -> Void
    ) -> Bool {
        var user: User?
        let r = withGrowingBuffer { buffer, size in
            var pwd = passwd()
            var result: UnsafeMutablePointer<passwd>?
            let r = call(&pwd, buffer, size, &result)
            if r == 0, result != nil { user = User(pwd) }
            return r
        }
        guard r == 0, let user else { return false }
        body(user)
        return true
    }

    private static func members(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
        guard var cursor = list else { return [] }
        var names: [String] = []
        while let name = cursor.pointee {
            names.append(String(cString: name))
            cursor += 1
        }
        return names
    }
}
