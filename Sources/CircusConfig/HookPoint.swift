// The hooks a watcher calls, with the arguments each one passes and whether a failure
// aborts what the watcher was doing. One table for the loader (checking declared
// signatures), the state machine (where to wait) and the supervisor (what to send).

/// A point in a watcher's life where Circus calls a hook.
public enum HookPoint: String, CaseIterable, Hashable, Sendable {
    case beforeStart = "before_start"
    case afterStart = "after_start"
    case beforeSpawn = "before_spawn"
    case afterSpawn = "after_spawn"
    case beforeStop = "before_stop"
    case afterStop = "after_stop"
    case beforeSignal = "before_signal"
    case afterSignal = "after_signal"
    case beforeReap = "before_reap"
    case afterReap = "after_reap"
    case extendedStats = "extended_stats"

    /// Hooks whose failure never aborts anything, whatever `, true` says (Circus's
    /// default `ignore_hook_failure`).
    public var failureIgnoredByDefault: Bool {
        switch self {
        case .beforeStop, .afterStop, .beforeSignal, .afterSignal, .extendedStats: true
        default: false
        }
    }

    /// The keyword arguments Circus passes besides `watcher`, `arbiter` and `hook_name`,
    /// in Circus's order.
    public var extraArguments: [HookArgument] {
        switch self {
        case .beforeStart, .afterStart, .beforeSpawn, .beforeStop, .afterStop: []
        case .afterSpawn: [.pid]
        case .beforeSignal, .afterSignal: [.pid, .signum]
        case .beforeReap: [.processPid, .time]
        case .afterReap: [.processPid, .time, .exitCode, .processStatus]
        case .extendedStats: [.pid, .stats]
        }
    }

    /// What is said of a hook name that is none of Circus's.
    public static func unknown(_ name: String) -> String {
        "unknown hook \(PythonText.repr(name)): hooks are " + allCases.map(\.rawValue).joined(separator: ", ")
    }

    /// Every argument a declared signature may bind for this hook.
    public var arguments: [HookArgument] { [.watcher, .hookName] + extraArguments }
}

/// An argument a hook receives, by the name a declared signature binds it with.
public enum HookArgument: String, CaseIterable, Hashable, Sendable {
    /// The watcher's name.
    case watcher
    /// The hook's name (`before_start`, ...).
    case hookName = "hook_name"
    case pid
    case signum
    case processPid = "process_pid"
    /// Seconds since the epoch.
    case time
    /// Exit status, or the negative signal number.
    case exitCode = "exit_code"
    /// Circus's process status: -1 for its `None` (a process the stop procedure already
    /// collected), 2 for a process that died on its own.
    case processStatus = "process_status"
    /// The process's stats as JSON text.
    case stats

    /// What kind of C value carries it.
    public var kind: HookValueKind {
        switch self {
        case .watcher, .hookName, .stats: .string
        case .pid, .signum, .processPid, .exitCode, .processStatus: .integer
        case .time: .real
        }
    }
}

/// The C values a hook argument may be declared as.
public enum HookValueKind: Hashable, Sendable {
    case integer, real, string
}
