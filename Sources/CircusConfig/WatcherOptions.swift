// The one table of watcher options. The INI loader, `add`/`set` (validation and
// application), `get`/`options` and the per-process `$(circus.*)` variables all read it,
// so adding an option is one line here (plus its field in `WatcherConfig`).

public import OrderedCollections

/// One option value, independent of where it came from (INI text or JSON).
public enum OptionValue: Hashable, Sendable {
    /// Python's `None`: an option never given (`uid`, or `env` of a watcher added without one).
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    /// A JSON list of arguments (`add` accepts `args` as a list).
    case list([String])
    /// An environment.
    case dictionary(OrderedDictionary<String, String>)
}

/// What a watcher option holds, which decides how it is parsed from INI text, checked
/// and converted on the wire, and shown by `options`.
public enum OptionType: Hashable, Sendable {
    /// Circus's `int()`; the INI loader refuses negative numbers (process counts).
    case count
    /// Circus's `int()`.
    case int
    /// An `int()` in INI files, a `float()` through `set` (`warmup_delay`).
    case delay
    /// Circus's `float()`.
    case seconds
    /// Circus's `to_bool`.
    case bool
    /// A signal name or number (`to_signum`).
    case signal
    /// Text, or nil when unset.
    case text
    /// A user or group: a name or a number (`set` accepts an int or a string).
    case user
    /// A command line (shlex-split at spawn time).
    case command
    /// Extra arguments: a string split with shlex, or (from `add`) a JSON list.
    case arguments
    /// An object of strings (`env`, the stream configurations).
    case object
}

/// What `set` does with an option.
public enum LiveChange: Hashable, Sendable {
    /// `set` and `add` refuse it with `unknown key 'name'`: only a configuration file sets it.
    case refused
    /// Taken at once; the running processes are kept.
    case live
    /// Running processes must be replaced: `set` triggers a graceful reload.
    case reload
}

/// Whether circusd serves an option.
public enum Support: Hashable, Sendable {
    /// It does what Circus documents.
    case served
    /// Accepted and reported as Circus does, but it changes nothing; the reason says why
    /// that is what the option means for this daemon.
    case withoutEffect(String)
    /// Not served by this version: a configuration that sets it is refused at load.
    case notYet(String)
}

/// Where the INI loader takes an option's text from.
public enum IniExpansion: Hashable, Sendable {
    /// `$(circus.env.*)` from the global environment, before `[env:NAME]` sections apply.
    case global
    /// `$(circus.env.*)` from the global environment overlaid by the watcher's own env.
    case watcherEnv
    /// The raw text, never expanded (`name`, `stop_signal`).
    case raw
}

/// One row of the table.
public struct WatcherOption: Sendable {
    /// The option's name in INI files and on the wire.
    public let name: String
    public let type: OptionType
    /// The INI default, as `options` shows it for a watcher that does not set the option.
    public let defaultValue: OptionValue
    public let expansion: IniExpansion
    public let liveChange: LiveChange
    /// Reported by `options` and readable with `get` (Circus's `optnames`).
    public let shown: Bool
    /// Available as `$(circus.<name>)` when a process is spawned.
    public let spawnVariable: Bool
    public let support: Support
    /// Reads the option from a configuration.
    public let read: @Sendable (WatcherConfig) -> OptionValue
    /// Writes an already-converted value into a configuration.
    public let write: @Sendable (inout WatcherConfig, OptionValue) -> Void

    init(
        _ name: String, _ type: OptionType, default defaultValue: OptionValue, expansion: IniExpansion = .global,
        set liveChange: LiveChange, shown: Bool = true, spawnVariable: Bool = true, support: Support = .served,
        read: @escaping @Sendable (WatcherConfig) -> OptionValue,
        write: @escaping @Sendable (inout WatcherConfig, OptionValue) -> Void
    ) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.expansion = expansion
        self.liveChange = liveChange
        self.shown = shown
        self.spawnVariable = spawnVariable
        self.support = support
        self.read = read
        self.write = write
    }
}

extension OptionValue {
    /// The value as an int (Python `int()` of a number or a bool; 0 otherwise).
    public var intValue: Int {
        switch self {
        case .int(let n): return n
        case .float(let x): return Int(x)
        case .bool(let b): return b ? 1 : 0
        default: return 0
        }
    }
    /// The value as a float (0 for non-numbers).
    public var doubleValue: Double {
        switch self {
        case .int(let n): return Double(n)
        case .float(let x): return x
        case .bool(let b): return b ? 1 : 0
        default: return 0
        }
    }
    /// The value's truth.
    public var boolValue: Bool { if case .bool(let b) = self { return b } else { return intValue != 0 } }
    /// The value as text, nil for `None`.
    public var textValue: String? {
        switch self {
        case .none: return nil
        case .string(let s): return s
        case .int(let n): return String(n)
        default: return nil
        }
    }
    var argumentsValue: CommandArguments? {
        switch self {
        case .string(let s): return .string(s)
        case .list(let l): return .list(l)
        default: return nil
        }
    }
    static func text(_ s: String?) -> OptionValue { s.map(OptionValue.string) ?? .none }
    static func arguments(_ a: CommandArguments?) -> OptionValue {
        switch a {
        case .string(let s)?: return .string(s)
        case .list(let l)?: return .list(l)
        case nil: return .none
        }
    }
}

/// The watcher options circusd knows, in Circus's `optnames` order, then INI-only ones.
public enum WatcherOptions {
    /// Every named option. Prefixed families (`rlimit_<name>`, `hooks.<name>`,
    /// `stdout_stream.<key>`, `stderr_stream.<key>`) are in ``families``.
    public static let all: [WatcherOption] = [
        .init("numprocesses", .count, default: .int(1), set: .live,
              read: { .int($0.numprocesses) }, write: { $0.numprocesses = max(0, $1.intValue) }),
        .init("warmup_delay", .delay, default: .int(0), set: .live,
              read: { $0.warmupDelayIsFloat ? .float($0.warmupDelay) : .int(Int($0.warmupDelay)) },
              write: {
                  $0.warmupDelay = $1.doubleValue
                  if case .float = $1 { $0.warmupDelayIsFloat = true } else { $0.warmupDelayIsFloat = false }
              }),
        .init("working_dir", .text, default: .none, expansion: .watcherEnv, set: .reload,
              read: { .text($0.workingDir) }, write: { $0.workingDir = $1.textValue }),
        .init("uid", .user, default: .none, expansion: .watcherEnv, set: .reload,
              read: { .text($0.uid) }, write: { $0.uid = $1.textValue }),
        .init("gid", .user, default: .none, expansion: .watcherEnv, set: .reload,
              read: { .text($0.gid) }, write: { $0.gid = $1.textValue }),
        .init("send_hup", .bool, default: .bool(false), set: .live,
              read: { .bool($0.sendHup) }, write: { $0.sendHup = $1.boolValue }),
        .init("stop_signal", .signal, default: .int(15), expansion: .raw, set: .live,
              read: { .int(Int($0.stopSignal)) }, write: { $0.stopSignal = Int32(truncatingIfNeeded: $1.intValue) }),
        .init("stop_children", .bool, default: .bool(false), set: .live,
              read: { .bool($0.stopChildren) }, write: { $0.stopChildren = $1.boolValue }),
        .init("shell", .bool, default: .bool(false), set: .reload,
              read: { .bool($0.shell) }, write: { $0.shell = $1.boolValue }),
        .init("shell_args", .arguments, default: .none, expansion: .watcherEnv, set: .refused, spawnVariable: false,
              read: { .arguments($0.shellArgs) }, write: { $0.shellArgs = $1.argumentsValue }),
        .init("env", .object, default: .dictionary([:]), set: .reload, spawnVariable: false,
              read: { $0.absentOptions.contains("env") ? .none : .dictionary($0.env) },
              write: {
                  if case .dictionary(let env) = $1 { $0.env = env }
                  $0.absentOptions.remove("env")
              }),
        .init("max_retry", .int, default: .int(5), set: .live,
              read: { .int($0.maxRetry) }, write: { $0.maxRetry = $1.intValue }),
        .init("cmd", .command, default: .string(""), expansion: .watcherEnv, set: .reload,
              read: { .string($0.cmd) }, write: { $0.cmd = $1.textValue ?? "" }),
        .init("args", .arguments, default: .string(""), expansion: .watcherEnv, set: .reload, spawnVariable: false,
              read: { $0.absentOptions.contains("args") && $0.args == nil ? .none : .arguments($0.args ?? .string("")) },
              write: {
                  $0.args = $1.argumentsValue
                  $0.absentOptions.remove("args")
              }),
        .init("respawn", .bool, default: .bool(true), set: .live,
              read: { .bool($0.respawn) }, write: { $0.respawn = $1.boolValue }),
        .init("graceful_timeout", .seconds, default: .float(30), set: .live,
              read: { .float($0.gracefulTimeout) }, write: { $0.gracefulTimeout = $1.doubleValue }),
        .init("executable", .text, default: .none, set: .refused,
              read: { .text($0.executable) }, write: { $0.executable = $1.textValue }),
        .init("use_sockets", .bool, default: .bool(false), set: .refused,
              read: { .bool($0.useSockets) }, write: { $0.useSockets = $1.boolValue }),
        .init("priority", .int, default: .int(0), set: .refused,
              read: { .int($0.priority) }, write: { $0.priority = $1.intValue }),
        .init("copy_env", .bool, default: .bool(false), set: .reload,
              read: { .bool($0.copyEnv) }, write: { $0.copyEnv = $1.boolValue }),
        .init("singleton", .bool, default: .bool(false), set: .live,
              read: { .bool($0.singleton) }, write: { $0.singleton = $1.boolValue }),
        .init("stdout_stream_conf", .object, default: .dictionary([:]), set: .refused, spawnVariable: false,
              read: { $0.absentOptions.contains("stdout_stream_conf") ? .none : .dictionary($0.stdoutStream.filter { $0.key != "class" }) },
              write: { if case .dictionary(let d) = $1 { $0.stdoutStream = d } }),
        .init("on_demand", .bool, default: .bool(false), set: .refused,
              read: { .bool($0.onDemand) }, write: { $0.onDemand = $1.boolValue }),
        .init("stderr_stream_conf", .object, default: .dictionary([:]), set: .refused, spawnVariable: false,
              read: { $0.absentOptions.contains("stderr_stream_conf") ? .none : .dictionary($0.stderrStream.filter { $0.key != "class" }) },
              write: { if case .dictionary(let d) = $1 { $0.stderrStream = d } }),
        .init("max_age", .int, default: .int(0), expansion: .watcherEnv, set: .reload,
              read: { .int($0.maxAge) }, write: { $0.maxAge = $1.intValue }),
        .init("max_age_variance", .int, default: .int(30), expansion: .watcherEnv, set: .reload,
              read: { .int($0.maxAgeVariance) }, write: { $0.maxAgeVariance = $1.intValue }),
        .init("close_child_stdin", .bool, default: .bool(true), set: .reload, spawnVariable: false,
              read: { .bool($0.closeChildStdin) }, write: { $0.closeChildStdin = $1.boolValue }),
        .init("close_child_stdout", .bool, default: .bool(false), set: .reload, spawnVariable: false,
              read: { .bool($0.closeChildStdout) }, write: { $0.closeChildStdout = $1.boolValue }),
        .init("close_child_stderr", .bool, default: .bool(false), set: .reload, spawnVariable: false,
              read: { .bool($0.closeChildStderr) }, write: { $0.closeChildStderr = $1.boolValue }),
        // Options only a configuration file sets, not in Circus's `optnames`.
        .init("name", .text, default: .none, expansion: .raw, set: .refused, shown: false,
              read: { .string($0.name) }, write: { $0.name = $1.textValue ?? $0.name }),
        .init("autostart", .bool, default: .bool(true), set: .refused, shown: false, spawnVariable: false,
              read: { .bool($0.autostart) }, write: { $0.autostart = $1.boolValue }),
        .init("copy_path", .bool, default: .bool(false), set: .refused, shown: false, spawnVariable: false,
              support: .notYet(
                  "circusd has no Python sys.path to copy; set PYTHONPATH in an [env:NAME] section instead"),
              read: { .bool($0.copyPath) }, write: { $0.copyPath = $1.boolValue }),
        .init("virtualenv", .text, default: .none, expansion: .watcherEnv, set: .refused, shown: false,
              spawnVariable: false,
              read: { .text($0.virtualenv) }, write: { $0.virtualenv = $1.textValue }),
        .init("virtualenv_py_ver", .text, default: .none, expansion: .watcherEnv, set: .refused, shown: false,
              spawnVariable: false,
              read: { .text($0.virtualenvPyVer) }, write: { $0.virtualenvPyVer = $1.textValue }),
        .init("hook_timeout", .seconds, default: .float(30), set: .live, shown: false, spawnVariable: false,
              read: { .float($0.hookTimeout) }, write: { $0.hookTimeout = $1.doubleValue }),
        .init("stdin_socket", .text, default: .none, expansion: .watcherEnv, set: .refused, shown: false,
              spawnVariable: false,
              read: { .text($0.stdinSocket) }, write: { $0.stdinSocket = $1.textValue }),
    ]

    /// Options known by prefix: `rlimit_<name>` (served, see ``ResourceLimits``), hooks and
    /// the output streams (see ``StreamConfig``).
    public static let families: [(prefix: String, support: Support)] = [
        ("rlimit_", .served),
        ("hooks.", .served),
        ("stdout_stream.", .served),
        ("stderr_stream.", .served),
    ]

    /// Keys `set`/`add` accept besides the table's options, with what they do: Circus
    /// takes whole stream and hook objects and a `retry_in` that nothing reads.
    public static let wireOnly: [(name: String, support: Support)] = [
        ("retry_in", .withoutEffect("Circus accepts it and nothing reads it")),
        ("stdout_stream", .served),
        ("stderr_stream", .served),
        ("hooks", .served),
    ]

    /// Free-form options circusd itself reads (they stay free-form, as in Circus).
    public static let freeForm: [(name: String, support: Support)] = [
        // true (the default): the flapping plugin (running by default) watches this
        // watcher, and the supervisor spaces the respawns of processes that die within a
        // second of their spawn. false: neither; processes short-lived by design are
        // respawned at once, every time, as in Circus.
        ("check_flapping", .served),
    ]

    private static let byName: [String: WatcherOption] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// The option of that name, if the table has it.
    public static func option(_ name: String) -> WatcherOption? { byName[name] }

    /// The names `options` reports and `get` accepts (before free-form options).
    public static let shownNames: [String] = all.filter(\.shown).map(\.name)

    /// Every name a user may mean, for "did you mean" suggestions.
    public static let knownNames: [String] =
        all.map(\.name) + freeForm.map(\.name) + ResourceLimits.names.map { "rlimit_" + $0 }

    /// The known option closest to a misspelled one, when it is close enough to be a typo
    /// (an edit distance of at most 2, and less than half the name).
    public static func suggestion(for name: String) -> String? {
        var best: (name: String, distance: Int)? = nil
        for known in knownNames {
            let d = editDistance(name, known)
            if d > 0, best == nil || d < best!.distance { best = (known, d) }
        }
        guard let best, best.distance <= 2, best.distance * 2 < name.count else { return nil }
        return best.name
    }

    /// Levenshtein distance between two names (by Unicode scalar).
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                current[j] = Swift.min(
                    previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }
}

extension WatcherOption {
    /// Converts an option's INI text (already expanded) as Circus's `get_config` does.
    ///
    /// - Throws: ``ValueParseError`` naming the bad text.
    public func parse(ini text: String) throws(ValueParseError) -> OptionValue {
        switch type {
        case .count, .delay:
            let number = try ValueParser.int(text)
            guard number >= 0 else { throw ValueParseError(value: text, message: "must not be negative (\(number))") }
            return .int(number)
        case .int: return .int(try ValueParser.int(text))
        case .seconds: return .float(try ValueParser.float(text))
        case .bool: return .bool(try ValueParser.bool(text))
        case .signal:
            guard let signal = Signals.number(text), signal >= 1, signal <= 64 else {
                throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not a signal")
            }
            return .int(Int(signal))
        case .text, .user, .command, .arguments: return .string(text)
        case .object: return .dictionary([:])
        }
    }

    /// Whether `value` asks for what this option does (false for its default, which
    /// asks for nothing): a feature not served yet is refused only when asked for.
    public func requests(_ value: OptionValue) -> Bool {
        value != defaultValue && value != .none && value != .string("")
    }
}
