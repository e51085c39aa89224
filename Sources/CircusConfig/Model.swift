// The typed configuration model shared by every layer of the daemon.
//
// These types are the contract between the INI loader (this module), the control
// protocol (`add` / `set` build and change `WatcherConfig`s), the watcher state
// machines in CircusCore and the supervisor. They hold already-validated values:
// whoever builds one has reported bad input with a file, a line and an option.

public import OrderedCollections

/// Where a value came from, for error messages a user can act on.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    /// The path of the file, as it was named (the main file's path or an include's).
    public var file: String
    /// One-based line number.
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(file):\(line)" }
}

/// Extra arguments of a watcher: Circus keeps INI values as a string (split with
/// shlex at spawn time) and accepts a JSON list from `add`.
public enum CommandArguments: Hashable, Sendable {
    case string(String)
    case list([String])
}

/// A hook bound in the configuration (`hooks.<name> = target[, ignore_failure]`).
public struct HookSpec: Hashable, Sendable {
    /// Where it is called.
    public var point: HookPoint
    /// What to call: `path/lib.so:symbol` or a declared signature called through libffi.
    public var target: HookTarget
    /// The checked declared signature; nil for the fixed hook signature.
    public var signature: HookSignature?
    /// When true a failing hook never aborts the operation (`, true`).
    public var ignoreFailure: Bool

    public init(point: HookPoint, target: HookTarget, signature: HookSignature?, ignoreFailure: Bool) {
        self.point = point
        self.target = target
        self.signature = signature
        self.ignoreFailure = ignoreFailure
    }

    /// Whether a failure (or a hook past its deadline) lets the watcher go on: `, true`,
    /// or a hook whose failures Circus always ignores.
    public var failureIgnored: Bool { ignoreFailure || point.failureIgnoredByDefault }

    /// The hook `hooks.<point> = target[, ignore_failure]` names (the configuration file's
    /// option, or the value `set` sends), target and declared signature checked.
    ///
    /// - Throws: ``ValueParseError`` naming what is wrong.
    public init(point: HookPoint, option text: String) throws(ValueParseError) {
        let (targetText, flag) = HookTarget.splitOption(text)
        let target = try HookTarget(parsing: targetText)
        let signature = try HookSignature(target, for: point)
        let ignore = try flag.map { f throws(ValueParseError) in try ValueParser.bool(f) } ?? false
        self.init(point: point, target: target, signature: signature, ignoreFailure: ignore)
    }
}

/// One `[watcher:NAME]` section, or a watcher created by the `add` command.
///
/// Defaults are Circus 0.19's INI defaults; every option is described once, in `WatcherOptions.all`.
public struct WatcherConfig: Hashable, Sendable {
    /// Name as written (case and spaces preserved).
    public var name: String
    /// Command template. `$(circus.env.*)` is already expanded; per-process variables
    /// such as `$(circus.wid)` are expanded at spawn time.
    public var cmd: String
    public var args: CommandArguments? = nil
    public var numprocesses: Int = 1
    /// Seconds slept after each spawn (an int in INI, a float through `set`/`add`).
    public var warmupDelay: Double = 0
    /// Whether `options` shows `warmup_delay` as a Python float: Circus keeps the INI
    /// value an int, an `add` value as sent, and converts with `float()` on `set`.
    public var warmupDelayIsFloat: Bool = false
    /// Working directory; the loader fills in circusd's cwd when the option is absent.
    public var workingDir: String? = nil
    public var shell: Bool = false
    public var shellArgs: CommandArguments? = nil
    public var uid: String? = nil
    public var gid: String? = nil
    /// `executable` (argv[0] is still the first word of cmd; we honour it, Circus ignores it).
    public var executable: String? = nil
    public var copyEnv: Bool = false
    /// Always false in a loaded configuration: circusd has no Python `sys.path` to copy,
    /// so the loader refuses `copy_path = true`.
    public var copyPath: Bool = false
    /// The environment from `[env]` and matching `[env:...]` sections, in order, after
    /// `$VAR` expansion. With `copyEnv` the supervisor lays it over its own environment.
    public var env: OrderedDictionary<String, String> = [:]
    public var sendHup: Bool = false
    public var stopSignal: Int32 = 15
    public var stopChildren: Bool = false
    /// Spawn attempts per process; -1 means forever, 0 never even tries.
    public var maxRetry: Int = 5
    public var gracefulTimeout: Double = 30
    public var priority: Int = 0
    public var singleton: Bool = false
    public var useSockets: Bool = false
    public var onDemand: Bool = false
    public var autostart: Bool = true
    public var respawn: Bool = true
    public var closeChildStdin: Bool = true
    public var closeChildStdout: Bool = false
    public var closeChildStderr: Bool = false
    /// `check_flapping` (default true): whether the flapping plugin watches this watcher.
    /// Circus keeps it as a free-form option, so it is also in `extraOptions` when set.
    public var checkFlapping: Bool = true
    public var maxAge: Int = 0
    public var maxAgeVariance: Int = 30
    public var virtualenv: String? = nil
    public var virtualenvPyVer: String? = nil
    public var stdinSocket: String? = nil
    /// Hooks by the point they are called at, in configuration order.
    public var hooks: OrderedDictionary<HookPoint, HookSpec> = [:]
    /// Seconds a hook may take before it counts as failed (`hook_timeout`).
    public var hookTimeout: Double = 30
    /// `stdout_stream.<key>` values, key without the prefix (`class`, `filename`, ...).
    public var stdoutStream: OrderedDictionary<String, String> = [:]
    public var stderrStream: OrderedDictionary<String, String> = [:]
    /// `rlimit_<name>` by lower-case name (`nofile`, `core`, ...); nil means unlimited.
    public var rlimits: OrderedDictionary<String, Int64?> = [:]
    /// Every other option of the section (free-form: `check_flapping`, `flapping.*`, ...),
    /// raw strings, reported by `options` and readable by plugins.
    public var extraOptions: OrderedDictionary<String, String> = [:]
    /// Where the section starts; nil for watchers created by `add`.
    public var location: SourceLocation? = nil
    /// Where each option of the section was given, for errors found after loading (a hook
    /// library that does not open, a Python stream class that cannot be imported).
    public var optionLocations: [String: SourceLocation] = [:]

    /// Where `option` was given, or the section when it was not (or for `add`: nil).
    public func location(of option: String) -> SourceLocation? {
        optionLocations[option] ?? location
    }
    /// Options Circus reports as null because an `add` did not give them (`args`, `env`);
    /// a configuration file always gives them a value.
    public var absentOptions: Set<String> = []

    public init(name: String, cmd: String) {
        self.name = name
        self.cmd = cmd
    }
}

/// The `[circus]` section after defaults and substitution.
public struct CircusSettings: Hashable, Sendable {
    public var endpoint: String = "tcp://127.0.0.1:5555"
    public var endpointOwner: String? = nil
    /// The Python that runs Python hooks (`python`, not a Circus option: Circus runs them
    /// in its own interpreter).
    public var python: String = "python3"
    public var pubsubEndpoint: String = "tcp://127.0.0.1:5556"
    public var multicastEndpoint: String = "udp://237.219.251.97:12027"
    public var statsEndpoint: String = "tcp://127.0.0.1:5557"
    public var statsd: Bool = false
    public var checkDelay: Double = 5.0
    /// Seconds slept after starting each watcher in start-all loops (an int, as in Circus).
    public var warmupDelay: Int = 0
    /// Process umask (parsed as octal), nil when not set.
    public var umask: UInt32? = nil
    public var pidfile: String? = nil
    public var loglevel: String? = nil
    public var logoutput: String? = nil
    public var loggerconfig: String? = nil
    public var include: [String] = []
    public var includeDir: [String] = []
    public var debug: Bool = false
    public var debugGc: Bool = false
    public var httpd: Bool = false
    public var httpdHost: String = "localhost"
    public var httpdPort: Int = 8080
    public var fqdnPrefix: String? = nil
    public var sshServer: String? = nil
    /// `control_users`, `control_groups`, `readonly_users`, `readonly_groups`, resolved.
    public var access = ControlAccess()

    public init() {}
}

/// Where a plugin's code comes from (the section's `use`).
public enum PluginSource: Hashable, Sendable {
    /// A shared library named by its path (absolute: a relative path in the file is
    /// resolved against the configuration file's directory).
    case library(path: String)
    /// One of the plugins shipped with circusd (`flapping`, `statsd`, ...), named as such or
    /// by the Circus class it replaces (`circus.plugins.flapping.Flapping`).
    case shipped(name: String)
    /// A Python class, run as Circus runs its plugins: in a process of its own (the watcher
    /// `plugin:NAME`) that talks to circusd over its endpoints.
    case python(className: String)
}

/// A `[plugin:NAME]` section. `name` is the full header (`plugin:NAME`).
public struct PluginConfig: Hashable, Sendable {
    public var name: String
    /// `use` as written (after substitution).
    public var use: String
    /// What `use` names.
    public var source: PluginSource
    public var priority: Int = 1
    /// `active` (default true): an inactive native plugin is listed but not started; a
    /// Python plugin receives it and exits at start, as Circus's do.
    public var active: Bool = true
    /// `isolate` (default false): run a native plugin in a host process of its own.
    public var isolate: Bool = false
    /// Every key of the section but `name`, raw (after substitution): what the plugin
    /// receives as its configuration. `use` is among them, as Circus's plugins see it.
    public var options: OrderedDictionary<String, String> = [:]
    public var location: SourceLocation? = nil
    /// Where `use` is written (errors about what it names point there).
    public var useLocation: SourceLocation? = nil

    /// The instance name plugins and commands use: the header without `plugin:`.
    public var instanceName: String { String(name.dropFirst("plugin:".count)) }

    public init(name: String, use: String, source: PluginSource) {
        self.name = name
        self.use = use
        self.source = source
    }
}

/// A whole configuration: what `circusd` loads at start and on `reloadconfig`.
public struct CircusConfiguration: Hashable, Sendable {
    /// The main file's absolute path.
    public var path: String
    public var settings: CircusSettings
    /// Watchers sorted by name (plain string order, as Circus does).
    public var watchers: [WatcherConfig]
    /// Sockets sorted by name.
    public var sockets: [SocketConfig]
    /// Plugins sorted by name.
    public var plugins: [PluginConfig]
    /// The `[env]` section after expansion.
    public var globalEnv: OrderedDictionary<String, String>

    public init(
        path: String,
        settings: CircusSettings = CircusSettings(),
        watchers: [WatcherConfig] = [],
        sockets: [SocketConfig] = [],
        plugins: [PluginConfig] = [],
        globalEnv: OrderedDictionary<String, String> = [:]
    ) {
        self.path = path
        self.settings = settings
        self.watchers = watchers
        self.sockets = sockets
        self.plugins = plugins
        self.globalEnv = globalEnv
    }
}
