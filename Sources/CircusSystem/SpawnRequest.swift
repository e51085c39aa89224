// What a spawn asks for: everything already resolved (numeric ids, search path), so the
// spawner only prepares buffers and makes one call.

import Glibc

/// Where one of the child's standard descriptors (0, 1, 2) comes from.
public enum StdioMode: Hashable, Sendable {
    /// The daemon's own descriptor at that number (Circus's default for stdout/stderr
    /// without a stream; with `--daemon` that is /dev/null).
    case inherit
    /// `/dev/null`, opened read-write (Circus's `close_child_stdin` and friends).
    case null
    /// This open descriptor of the daemon, dup'ed onto 0/1/2 (a stream pipe's write end, or a
    /// socket for `stdin_socket`). The daemon keeps its own copy; close it after the spawn.
    case fd(Int32)
}

/// One `rlimit_<name>` setting, applied in the child as soft = hard = `value`.
public struct ResourceLimit: Hashable, Sendable {
    /// The `RLIMIT_*` number (the daemon resolves names with its one table of limits).
    public var resource: Int32
    /// The canonical name without prefix (`NOFILE`), used in error messages.
    public var canonicalName: String
    /// The limit, or nil for unlimited (RLIM_INFINITY).
    public var value: UInt64?

    /// Creates a limit. Negative values mean unlimited, as `resource.RLIM_INFINITY` is -1
    /// in Python.
    public init(resource: Int32, name: String, value: Int64?) {
        self.resource = resource
        self.canonicalName = name.uppercased()
        if let value, value >= 0 { self.value = UInt64(value) } else { self.value = nil }
    }
}

/// Everything needed to start one process, resolved by the caller (numeric ids, the
/// supplementary group list, the search path), so that spawning is one C call.
public struct SpawnRequest: Sendable {
    /// The program: a path (anything containing `/`) or a bare name looked up in `searchPath`.
    public var executable: String
    /// The full argument vector, argv[0] included.
    public var arguments: [String]
    /// The child's entire environment, in order; nothing of the daemon's is added.
    public var environment: [(key: String, value: String)]
    /// Directories (`:`-separated) searched for a bare `executable`. nil means the child's own
    /// `PATH` from `environment`, else `/bin:/usr/bin` (Python's `os.get_exec_path(env)`).
    public var searchPath: String?
    /// The child's working directory; nil keeps the daemon's.
    public var workingDirectory: String?
    /// New uid, or nil to keep the daemon's. Set `gid` and `supplementaryGroups` too when
    /// dropping privileges: otherwise the child keeps the daemon's groups. (Circus skips
    /// `uid = 0` as falsy; that policy belongs to the caller.)
    public var uid: UInt32?
    /// New gid, or nil to keep the daemon's.
    public var gid: UInt32?
    /// New supplementary groups (`UserDatabase.groupList(user:gid:)`), or nil to keep them.
    public var supplementaryGroups: [UInt32]?
    /// The child's umask, or nil to inherit the daemon's.
    public var umask: UInt32?
    /// Limits applied in order, soft = hard.
    public var resourceLimits: [ResourceLimit]
    /// Standard input (Circus's default, `close_child_stdin`, is `.null`).
    public var stdin: StdioMode
    /// Standard output: a stream pipe's write end, `.inherit` without a stream.
    public var stdout: StdioMode
    /// Standard error, like `stdout`.
    public var stderr: StdioMode
    /// Descriptors kept open at the same number (inherited listening sockets, each >= 3).
    /// Every other descriptor >= 3 is closed in the child.
    public var keepFDs: [Int32]
    /// Make the child a session leader (Circus does for every worker).
    public var newSession: Bool
    /// For the tests only: the child sends itself SIGUSR1 between unblocking its signals
    /// and exec, where it must meet the default disposition, not one of the daemon's
    /// handlers.
    var raisesSignalBeforeExec = false

    /// The default search path when the child's environment has no `PATH` (Python's
    /// `os.defpath`).
    public static let defaultSearchPath = "/bin:/usr/bin"

    /// Creates a request.
    ///
    /// - Parameters:
    ///   - executable: a path or a bare name to look up.
    ///   - arguments: argv including argv[0]; nil means `[executable]`.
    ///   - environment: the complete child environment as key/value pairs.
    public init(
        executable: String,
        arguments: [String]? = nil,
        environment: [(key: String, value: String)] = [],
        searchPath: String? = nil,
        workingDirectory: String? = nil,
        uid: UInt32? = nil,
        gid: UInt32? = nil,
        supplementaryGroups: [UInt32]? = nil,
        umask: UInt32? = nil,
        resourceLimits: [ResourceLimit] = [],
        stdin: StdioMode = .inherit,
        stdout: StdioMode = .inherit,
        stderr: StdioMode = .inherit,
        keepFDs: [Int32] = [],
        newSession: Bool = true
    ) {
        self.executable = executable
        self.arguments = arguments ?? [executable]
        self.environment = environment
        self.searchPath = searchPath
        self.workingDirectory = workingDirectory
        self.uid = uid
        self.gid = gid
        self.supplementaryGroups = supplementaryGroups
        self.umask = umask
        self.resourceLimits = resourceLimits
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.keepFDs = keepFDs
        self.newSession = newSession
    }

    /// Replaces the environment with `KEY=VALUE` strings, split at the first `=`.
    ///
    /// - Returns: false (leaving the environment unchanged) when an entry has no `=`.
    @discardableResult
    public mutating func setEnvironment(_ entries: [String]) -> Bool {
        var pairs: [(key: String, value: String)] = []
        pairs.reserveCapacity(entries.count)
        for entry in entries {
            guard let eq = entry.utf8.firstIndex(of: UInt8(ascii: "=")) else { return false }
            pairs.append((String(entry[..<eq]), String(entry[entry.index(after: eq)...])))
        }
        environment = pairs
        return true
    }

    /// The directories a bare executable name is looked up in.
    var effectiveSearchPath: String {
        if let searchPath { return searchPath }
        if let path = environment.first(where: { $0.key == "PATH" }) { return path.value }
        return Self.defaultSearchPath
    }

    /// The paths execve will try, in order (Python's `_execvpe` / `subprocess` candidates).
    var candidatePaths: [String] {
        if executable.utf8.contains(UInt8(ascii: "/")) { return [executable] }
        var result: [String] = []
        for dir in effectiveSearchPath.split(separator: ":", omittingEmptySubsequences: false) {
            if dir.isEmpty {
                result.append(executable)  // an empty entry is the current directory
            } else if dir.hasSuffix("/") {
                result.append(dir + executable)
            } else {
                result.append(dir + "/" + executable)
            }
        }
        return result
    }
}
