// Loading a circus.ini: files and includes (spec 2.7), then the typed model (spec 2.2-2.6),
// following `circus.config.read_config` / `get_config` step by step.

internal import OrderedCollections

/// A loaded configuration and what the user should be told about it.
public struct LoadResult: Hashable, Sendable {
    /// The validated configuration.
    public var configuration: CircusConfiguration
    /// Things that are not errors but deserve a log line at `warning` level: include
    /// patterns that match nothing (Circus logs these too), ignored sections and options.
    public var warnings: [String]
    /// The files read, in reading order, as named in locations (main file first).
    public var files: [String]

    /// Creates a result.
    public init(configuration: CircusConfiguration, warnings: [String], files: [String]) {
        self.configuration = configuration
        self.warnings = warnings
        self.files = files
    }
}

/// Reads `circus.ini` files the way Circus 0.19 does and builds a ``CircusConfiguration``.
public enum ConfigLoader {
    /// Loads the main file, its includes, and builds the typed model.
    ///
    /// Steps, as in Circus:
    /// 1. Read the main file. Its `[circus]` `include` (whitespace-separated globs) and
    ///    `include_dir` (directories, meaning `<dir>/*.ini`) are expanded against the main
    ///    file's directory unless absolute (`$(circus.env.X)` in them comes from
    ///    `environment`). Files are read in that order: main, `include` matches (sorted
    ///    per pattern), `include_dir` matches. Includes of includes are not followed.
    ///    Because the first definition of an option wins, includes add options and
    ///    sections but never override the main file.
    /// 2. Build `[env]` (expanded against `environment`), the global substitution
    ///    environment (`environment` overlaid by `[env]`), `[circus]`, watchers, sockets
    ///    and plugins, with Circus's types, defaults and substitution rules.
    ///
    /// - Parameters:
    ///   - path: the main file as the user named it (relative to `currentDirectory`).
    ///   - environment: circusd's environment (`$(circus.env.*)`, `$VAR` in env values).
    ///   - currentDirectory: circusd's working directory: resolves a relative `path`, and is
    ///     the `working_dir` of watchers that set none (see ``WorkingDirectory``).
    /// - Returns: the configuration, the warnings to log, and the files read.
    /// - Throws: ``ConfigError`` for a missing or unreadable file (main or include), a
    ///   syntax error, or any invalid value; circusd must not start.
    public static func load(
        path: String,
        environment: [String: String],
        currentDirectory: String
    ) throws(ConfigError) -> LoadResult {
        let absolutePath = FileSystem.absolute(path, currentDirectory: currentDirectory)
        guard FileSystem.exists(absolutePath) else {
            throw ConfigError(message: "the configuration file \(PythonText.repr(path)) does not exist")
        }
        var parser = IniParser()
        switch FileSystem.readText(absolutePath) {
        case .success(let text): try parser.read(text, file: path)
        case .failure(let failure):
            throw ConfigError(file: path, message: "cannot read the configuration file: \(failure.reason)")
        }

        var warnings: [String] = []
        var files = [path]
        let environmentTable = Substitution.Table(ordered: ["env": .dictionary(sortedEnvironment(environment))])
        let main = parser.document
        let include = main.value("include", in: "circus")
        let includeDir = main.value("include_dir", in: "circus")
        let includePatterns = include.map { PythonText.splitWhitespace(Substitution.replace($0.value, table: environmentTable)) } ?? []
        let includeDirs = includeDir.map { PythonText.splitWhitespace(Substitution.replace($0.value, table: environmentTable)) } ?? []

        // Python joins patterns to dirname(path) as named; we glob the absolute form and
        // name the matches the way Python's glob would have returned them.
        let namedDirectory = FileSystem.dirname(path)
        let absoluteDirectory = FileSystem.dirname(absolutePath)
        var includes: [(name: String, absolute: String, origin: IniValue, option: String)] = []
        func scan(_ item: String, origin: IniValue, option: String) {
            let namedPattern = FileSystem.join(namedDirectory, item)
            let absolutePattern = FileSystem.join(absoluteDirectory, item)
            let matches = FileSystem.glob(absolutePattern)
            if matches.isEmpty {
                warnings.append(
                    "\(PythonText.repr(namedPattern)) does not lead to any config. "
                        + "Make sure include paths are relative to the main config file")
            }
            let absolutePrefix = FileSystem.join(absoluteDirectory, "")
            let namedPrefix = FileSystem.join(namedDirectory, "")
            for match in matches {
                var name = match
                if !item.hasPrefix("/"), match.hasPrefix(absolutePrefix) {
                    name = namedPrefix + match.dropFirst(absolutePrefix.count)
                }
                includes.append((name, match, origin, option))
            }
        }
        if let include {
            for item in includePatterns { scan(item, origin: include, option: "include") }
        }
        if let includeDir {
            for item in includeDirs { scan(FileSystem.join(item, "*.ini"), origin: includeDir, option: "include_dir") }
        }
        for file in includes {
            switch FileSystem.readText(file.absolute) {
            case .success(let text):
                try parser.read(text, file: file.name)
                files.append(file.name)
            case .failure(let failure):
                throw ConfigError(
                    at: file.origin.location, section: "circus", option: file.option,
                    message: "cannot read \(PythonText.repr(file.name)): \(failure.reason)")
            }
        }

        var builder = ConfigBuilder(document: parser.document, environment: environment, currentDirectory: currentDirectory)
        var configuration = try builder.build(path: absolutePath)
        configuration.settings.include = includePatterns
        configuration.settings.includeDir = includeDirs
        return LoadResult(configuration: configuration, warnings: warnings + builder.warnings, files: files)
    }

    /// `environment` in a stable order (by code point), standing in for the order of
    /// Python's `os.environ`, which decides between names that differ only by case.
    static func sortedEnvironment(_ environment: [String: String]) -> OrderedDictionary<String, String> {
        OrderedDictionary(uniqueKeysWithValues: environment.sorted { PythonText.precedes($0.key, $1.key) })
    }
}

/// Builds the typed model from a document (Circus's `get_config` and the validation its
/// `Watcher` and `CircusSocket` constructors do).
struct ConfigBuilder {
    let document: IniDocument
    let environment: [String: String]
    let currentDirectory: String
    private(set) var warnings: [String] = []

    /// `[env]` expanded against the process environment (Circus's `local_env`).
    private(set) var localEnv: OrderedDictionary<String, String> = [:]
    /// The process environment overlaid by `[env]` (Circus's `global_env`).
    private let globalEnv: OrderedDictionary<String, String>
    private let globalTable: Substitution.Table

    init(document: IniDocument, environment: [String: String], currentDirectory: String) {
        self.document = document
        self.environment = environment
        self.currentDirectory = currentDirectory
        let processEnv = ConfigLoader.sortedEnvironment(environment)
        let processTable = Substitution.Table(ordered: ["env": .dictionary(processEnv)])
        var local: OrderedDictionary<String, String> = [:]
        for (key, value) in document.items(in: "env") ?? [:] {
            local[key] = Substitution.replace(value.value, table: processTable)
        }
        var global = processEnv
        for (key, value) in local { global[key] = value }
        self.localEnv = local
        self.globalEnv = global
        self.globalTable = Substitution.Table(ordered: ["env": .dictionary(global)])
    }

    /// The whole model, in Circus's order: `[circus]`, then sections in file order, then
    /// watchers sorted by name with env sections applied and the second substitution pass.
    mutating func build(path: String) throws(ConfigError) -> CircusConfiguration {
        let settings = try buildSettings()
        var watchers: [PendingWatcher] = []
        var sockets: [SocketConfig] = []
        var socketHeaders: [String] = []
        var plugins: [PluginConfig] = []
        for (name, section) in document.sections {
            try Self.checkSectionName(name, at: section.location)
            guard let items = document.items(in: name), !items.isEmpty else {
                if name.hasPrefix("watcher:") || name.hasPrefix("socket:") || name.hasPrefix("plugin:") {
                    warnings.append("\(section.location): section [\(name)] is empty and is ignored")
                }
                continue
            }
            if name.hasPrefix("socket:") {
                sockets.append(try buildSocket(name, section: section, items: items))
                socketHeaders.append(name)
            } else if name.hasPrefix("plugin:") {
                plugins.append(try buildPlugin(name, section: section, items: items))
            } else if name.hasPrefix("watcher:") {
                watchers.append(try firstPass(name, section: section, items: items))
            } else if name != "circus" && name != "env" && !name.hasPrefix("env:") {
                warnings.append("\(section.location): section [\(name)] is not a Circus section and is ignored")
            }
        }

        // In section order, so that the error names the later of two clashing sections.
        try checkUnique(watchers.map { ($0.config.name, $0.sectionLocation, $0.section) }, what: "watcher")
        try checkUnique(zip(sockets, socketHeaders).map { ($0.name, $0.location!, $1) }, what: "socket")

        watchers.sort { PythonText.precedes($0.config.name, $1.config.name) }
        applyEnvSections(to: &watchers)
        var built: [WatcherConfig] = []
        for pending in watchers {
            built.append(try secondPass(pending))
        }
        sockets.sort { PythonText.precedes($0.name, $1.name) }
        plugins.sort { PythonText.precedes($0.name, $1.name) }

        return CircusConfiguration(
            path: path, settings: settings, watchers: built, sockets: sockets, plugins: plugins, globalEnv: localEnv)
    }

    // MARK: - Substitution and conversion helpers

    /// Engine (a) with the global environment: what Circus's parser `get`/`items` return.
    private func expandGlobal(_ value: IniValue) -> String {
        Substitution.replace(value.value, table: globalTable)
    }

    private func convert<T>(
        _ text: String, at value: IniValue, section: String, option: String,
        _ parse: (String) throws(ValueParseError) -> T
    ) throws(ConfigError) -> T {
        do {
            return try parse(text)
        } catch {
            throw ConfigError(at: value.location, section: section, option: option, message: error.message)
        }
    }

    private func bool(_ value: IniValue, _ section: String, _ option: String) throws(ConfigError) -> Bool {
        try convert(expandGlobal(value), at: value, section: section, option: option, ValueParser.bool)
    }

    private func int(_ value: IniValue, _ section: String, _ option: String) throws(ConfigError) -> Int {
        try convert(expandGlobal(value), at: value, section: section, option: option, ValueParser.int)
    }

    private func float(_ value: IniValue, _ section: String, _ option: String) throws(ConfigError) -> Double {
        try convert(expandGlobal(value), at: value, section: section, option: option, ValueParser.float)
    }

    private func nonNegative(_ number: Int, _ value: IniValue, _ section: String, _ option: String) throws(ConfigError) -> Int {
        guard number >= 0 else {
            throw ConfigError(at: value.location, section: section, option: option, message: "must not be negative (\(number))")
        }
        return number
    }

    // MARK: - [circus]

    private func buildSettings() throws(ConfigError) -> CircusSettings {
        var s = CircusSettings()
        let section = "circus"
        func raw(_ option: String) -> IniValue? { document.value(option, in: section) }
        func string(_ option: String) -> String? { raw(option).map(expandGlobal) }

        if let v = raw("check_delay") { s.checkDelay = try float(v, section, "check_delay") }
        if let v = string("endpoint") { s.endpoint = v }
        s.endpointOwner = string("endpoint_owner")
        if let v = string("pubsub_endpoint") { s.pubsubEndpoint = v }
        if let v = string("multicast_endpoint") { s.multicastEndpoint = v }
        if let v = raw("statsd") { s.statsd = try bool(v, section, "statsd") }
        if let v = raw("umask") {
            let text = expandGlobal(v)
            let number = try convert(text, at: v, section: section, option: "umask", ValueParser.octal)
            guard let mask = UInt32(exactly: number) else {
                throw ConfigError(at: v.location, section: section, option: "umask", message: "\(PythonText.repr(text)) is not a umask")
            }
            s.umask = mask
        }
        // Setting stats_endpoint at all (even to "") turns statsd on, as in Circus.
        if let v = string("stats_endpoint") {
            s.statsEndpoint = v
            s.statsd = true
        }
        if let v = raw("warmup_delay") {
            s.warmupDelay = try nonNegative(try int(v, section, "warmup_delay"), v, section, "warmup_delay")
        }
        if let v = raw("httpd") { s.httpd = try bool(v, section, "httpd") }
        if let v = string("httpd_host") { s.httpdHost = v }
        if let v = raw("httpd_port") { s.httpdPort = try int(v, section, "httpd_port") }
        if let v = raw("debug") { s.debug = try bool(v, section, "debug") }
        if let v = raw("debug_gc") { s.debugGc = try bool(v, section, "debug_gc") }
        s.pidfile = string("pidfile")
        s.loglevel = string("loglevel")
        s.logoutput = string("logoutput")
        s.loggerconfig = string("loggerconfig")
        s.fqdnPrefix = string("fqdn_prefix")
        s.sshServer = string("ssh_server")
        s.access = try Self.controlAccess(endpointOwner: s.endpointOwner) { option in raw(option).map { ($0, expandGlobal($0)) } }
        try checkEndpointSettings(s)
        return s
    }

    // MARK: - [socket:NAME]

    private static let socketFamilies: Set<String> = ["AF_INET", "AF_INET6", "AF_UNIX"]
    private static let socketTypes: Set<String> = ["SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET"]

    private func buildSocket(
        _ header: String, section: IniSection, items: OrderedDictionary<String, IniValue>
    ) throws(ConfigError) -> SocketConfig {
        // Circus takes the text after the *last* "socket:" and lower-cases it.
        let name = Self.textAfterLast("socket:", in: header).lowercased()
        var socket = SocketConfig(name: name)
        socket.location = section.location
        var raw: OrderedDictionary<String, String> = [:]
        for (key, value) in items { raw[key] = expandGlobal(value) }
        socket.raw = raw

        func text(_ option: String) -> (String, IniValue)? {
            guard let value = items[option] else { return nil }
            return (raw[option]!, value)
        }
        func integer(_ option: String) throws(ConfigError) -> Int? {
            guard let (t, v) = text(option) else { return nil }
            return try convert(t, at: v, section: header, option: option, ValueParser.int)
        }
        func flag(_ option: String) throws(ConfigError) -> Bool {
            guard let (t, v) = text(option) else { return false }
            return try convert(t, at: v, section: header, option: option, ValueParser.bool)
        }

        if let (t, _) = text("host") { socket.host = t }
        if let port = try integer("port") { socket.port = port }
        if let (t, v) = text("family") {
            let family = t.uppercased()
            guard Self.socketFamilies.contains(family) else {
                throw ConfigError(
                    at: v.location, section: header, option: "family",
                    message: "\(PythonText.repr(t)) is not a socket family (AF_INET, AF_INET6 or AF_UNIX)")
            }
            socket.family = family
        }
        if let (t, v) = text("type") {
            let type = t.uppercased()
            guard Self.socketTypes.contains(type) else {
                throw ConfigError(
                    at: v.location, section: header, option: "type",
                    message: "\(PythonText.repr(t)) is not a socket type (SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM or SOCK_SEQPACKET)")
            }
            socket.type = type
        }
        if let (t, _) = text("proto") { socket.proto = t }
        if let backlog = try integer("backlog") { socket.backlog = backlog }
        if let (t, _) = text("path") {
            socket.path = t
            socket.family = "AF_UNIX"  // a path forces a Unix socket, as in CircusSocket
        }
        if let umask = try integer("umask") { socket.umask = umask }  // decimal, as Circus parses it
        socket.replace = try flag("replace")
        socket.soReusePort = try flag("so_reuseport")
        socket.blocking = try flag("blocking")
        if let (t, _) = text("interface") { socket.interface = t }
        if socket.family != "AF_UNIX", !(0...65535).contains(socket.port), let (_, v) = text("port") {
            throw ConfigError(at: v.location, section: header, option: "port", message: "\(socket.port) is not a port number (0-65535)")
        }
        return socket
    }

    /// The text after the last occurrence of `marker` (Python `text.split(marker)[-1]`).
    static func textAfterLast(_ marker: String, in text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        let needle = Array(marker.unicodeScalars)
        var start = 0
        var i = 0
        while i + needle.count <= scalars.count {
            if Array(scalars[i..<(i + needle.count)]) == needle {
                i += needle.count
                start = i
            } else {
                i += 1
            }
        }
        return String(String.UnicodeScalarView(scalars[start...]))
    }

    // MARK: - [plugin:NAME]

    private func buildPlugin(
        _ header: String, section: IniSection, items: OrderedDictionary<String, IniValue>
    ) throws(ConfigError) -> PluginConfig {
        guard let use = items["use"] else {
            throw ConfigError(at: section.location, section: header, option: "use", message: "missing: a plugin needs 'use'")
        }
        let useText = expandGlobal(use)
        guard !useText.isEmpty else {
            throw ConfigError(at: use.location, section: header, option: "use", message: "is empty")
        }
        var plugin = PluginConfig(name: header, use: useText)
        plugin.location = section.location
        if let priority = items["priority"] {
            plugin.priority = try int(priority, header, "priority")
        }
        for (key, value) in items where key != "use" && key != "priority" && key != "name" {
            plugin.options[key] = expandGlobal(value)
        }
        return plugin
    }

    // MARK: - [watcher:NAME]

    /// A watcher between Circus's first pass (typed options, global environment) and the
    /// second (string options expanded with the watcher's own environment).
    struct PendingWatcher {
        var config: WatcherConfig
        var section: String
        var sectionLocation: SourceLocation
        /// Options still raw until the second pass, by option name.
        var deferred: [String: IniValue] = [:]
        var locations: [String: SourceLocation] = [:]
    }

    /// Options Circus hands to `Watcher.__init__` as named arguments: they never reach the
    /// free-form options that `options` reports.
    private static let ignoredWatcherOptions: [String: String] = [
        "env": "use [env] or [env:NAME] sections",
        "rlimits": "use rlimit_<name> options",
        "hooks": "use hooks.<name> options",
        "prereload_fn": "it names a Python function",
        "loop": "it is internal to Circus",
    ]

    private mutating func firstPass(
        _ header: String, section: IniSection, items: OrderedDictionary<String, IniValue>
    ) throws(ConfigError) -> PendingWatcher {
        let name = String(header.dropFirst("watcher:".count))
        var w = PendingWatcher(
            config: WatcherConfig(name: name, cmd: ""), section: header, sectionLocation: section.location)
        w.config.location = section.location

        for (option, value) in items {
            w.locations[option] = value.location
            switch option {
            case "cmd", "args", "working_dir", "uid", "gid", "shell_args", "virtualenv", "virtualenv_py_ver",
                 "stdin_socket", "max_age", "max_age_variance":
                w.deferred[option] = value
            case "name":
                // Circus lets a `name` option rename the watcher (raw, never expanded).
                guard !PythonText.strip(value.value).isEmpty else {
                    throw ConfigError(at: value.location, section: header, option: option, message: "is empty")
                }
                w.config.name = value.value
            case "numprocesses":
                w.config.numprocesses = try nonNegative(try int(value, header, option), value, header, option)
            case "warmup_delay":
                w.config.warmupDelay = Double(try nonNegative(try int(value, header, option), value, header, option))
            case "executable":
                w.config.executable = expandGlobal(value)
            case "on_demand": w.config.onDemand = try bool(value, header, option)
            case "shell": w.config.shell = try bool(value, header, option)
            case "send_hup": w.config.sendHup = try bool(value, header, option)
            case "stop_children": w.config.stopChildren = try bool(value, header, option)
            case "close_child_stderr": w.config.closeChildStderr = try bool(value, header, option)
            case "close_child_stdout": w.config.closeChildStdout = try bool(value, header, option)
            case "use_sockets": w.config.useSockets = try bool(value, header, option)
            case "singleton": w.config.singleton = try bool(value, header, option)
            case "copy_env": w.config.copyEnv = try bool(value, header, option)
            case "copy_path": w.config.copyPath = try bool(value, header, option)
            case "stop_signal":
                // Circus parses the raw text (no substitution).
                guard let signal = Signals.number(value.value), signal >= 1, signal <= 64 else {
                    throw ConfigError(
                        at: value.location, section: header, option: option,
                        message: "\(PythonText.repr(value.value)) is not a signal")
                }
                w.config.stopSignal = signal
            case "max_retry": w.config.maxRetry = try int(value, header, option)
            case "graceful_timeout": w.config.gracefulTimeout = try float(value, header, option)
            case "priority": w.config.priority = try int(value, header, option)
            case "respawn": w.config.respawn = try bool(value, header, option)
            case "autostart": w.config.autostart = try bool(value, header, option)
            case "close_child_stdin": w.config.closeChildStdin = try bool(value, header, option)
            case "check_flapping":
                // Typed for the daemon, and kept as a free-form option: Circus reports it
                // in `options` like any other.
                w.config.checkFlapping = try bool(value, header, option)
                w.deferred[option] = value
            case _ where option.hasPrefix("stdout_stream") || option.hasPrefix("stderr_stream"):
                let parts = option.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, parts[0] == "stdout_stream" || parts[0] == "stderr_stream" else {
                    throw ConfigError(
                        at: value.location, section: header, option: option,
                        message: "not a stream option: use stdout_stream.<key> or stderr_stream.<key>")
                }
                w.deferred[option] = value
            case _ where option.hasPrefix("rlimit_"):
                let limit = String(option.dropFirst("rlimit_".count))
                guard ResourceLimits.number(limit) != nil else {
                    throw ConfigError(
                        at: value.location, section: header, option: option,
                        message: "\(PythonText.repr(limit)) is not a Linux resource limit (known: "
                            + ResourceLimits.numbersByName.keys.sorted().joined(separator: ", ") + ")")
                }
                w.config.rlimits[limit.lowercased()] = try convert(
                    value.value, at: value, section: header, option: option, ResourceLimits.value)
            case _ where option.hasPrefix("hooks."):
                let hookName = String(option.dropFirst("hooks.".count))
                let (target, flag) = HookTarget.splitOption(value.value)
                _ = try convert(target, at: value, section: header, option: option) { (t: String) throws(ValueParseError) in
                    try HookTarget(parsing: t)
                }
                var ignoreFailure = false
                if let flag {
                    ignoreFailure = try convert(flag, at: value, section: header, option: option, ValueParser.bool)
                }
                w.config.hooks[hookName] = HookSpec(target: target, ignoreFailure: ignoreFailure)
            case _ where Self.ignoredWatcherOptions[option] != nil:
                warnings.append(
                    "\(value.location): [\(header)] option '\(option)' is ignored: \(Self.ignoredWatcherOptions[option]!)")
            default:
                w.deferred[option] = value  // free-form
            }
        }
        return w
    }

    /// `[env:PATTERNS]` sections, in section order: each section's raw values go into the
    /// env of every watcher whose name matches one of its comma-separated patterns.
    private mutating func applyEnvSections(to watchers: inout [PendingWatcher]) {
        for index in watchers.indices {
            watchers[index].config.env = localEnv
        }
        for (name, section) in document.sections where name.hasPrefix("env:") {
            let patterns = name.dropFirst("env:".count).split(separator: ",", omittingEmptySubsequences: false)
                .map { Fnmatch.Pattern(PythonText.strip($0)) }
            let items = document.items(in: name) ?? [:]
            var matched = false
            for index in watchers.indices where patterns.contains(where: { $0.matches(watchers[index].config.name) }) {
                matched = true
                for (key, value) in items {
                    watchers[index].config.env[key] = value.value
                }
            }
            if !matched {
                warnings.append("\(section.location): section [\(name)] matches no watcher")
            }
        }
    }

    /// Circus's second pass (every string option expanded with the global environment
    /// overlaid by the watcher's env), then the checks `Watcher.__init__` makes.
    private func secondPass(_ pending: PendingWatcher) throws(ConfigError) -> WatcherConfig {
        var w = pending.config
        let header = pending.section
        var env = globalEnv
        for (key, value) in w.env { env[key] = value }
        let table = Substitution.Table(ordered: ["env": .dictionary(env)])
        func expand(_ text: String) -> String { Substitution.replace(text, table: table) }

        var expanded: [String: String] = [:]
        for (option, value) in pending.deferred {
            expanded[option] = expand(value.value)
        }
        func location(_ option: String) -> SourceLocation { pending.locations[option] ?? pending.sectionLocation }
        func failure(_ option: String, _ message: String) -> ConfigError {
            ConfigError(at: location(option), section: header, option: option, message: message)
        }
        func checkSplittable(_ option: String, _ text: String) throws(ConfigError) {
            do {
                _ = try Shlex.split(text)
            } catch {
                throw ConfigError(
                    at: location(option), section: header, option: option,
                    message: "\(PythonText.repr(text)) cannot be split into words: \(error.message)")
            }
        }

        guard let cmd = expanded["cmd"] else { throw failure("cmd", "missing: every watcher needs a command") }
        guard !cmd.isEmpty else { throw failure("cmd", "is empty") }
        try checkSplittable("cmd", cmd)
        w.cmd = cmd
        if let args = expanded["args"] {
            try checkSplittable("args", args)
            w.args = .string(args)
        }
        if let shellArgs = expanded["shell_args"] {
            try checkSplittable("shell_args", shellArgs)
            w.shellArgs = .string(shellArgs)
        }
        let workingDir = expanded["working_dir"] ?? ""
        w.workingDir = workingDir.isEmpty ? currentDirectory : workingDir
        w.uid = expanded["uid"]
        w.gid = expanded["gid"]
        w.executable = w.executable.map(expand)
        w.virtualenv = expanded["virtualenv"]
        w.virtualenvPyVer = expanded["virtualenv_py_ver"]
        w.stdinSocket = expanded["stdin_socket"]
        for option in ["max_age", "max_age_variance"] {
            guard let text = expanded[option], let value = pending.deferred[option] else { continue }
            let number = try convert(text, at: value, section: header, option: option, ValueParser.int)
            if option == "max_age" { w.maxAge = number } else { w.maxAgeVariance = number }
        }

        // Stream options and free-form options keep their order in the section.
        let handled: Set<String> = [
            "cmd", "args", "shell_args", "working_dir", "uid", "gid", "virtualenv", "virtualenv_py_ver",
            "stdin_socket", "max_age", "max_age_variance",
        ]
        for option in document.items(in: header)?.keys ?? [] {
            guard let text = expanded[option], !handled.contains(option) else { continue }
            if option.hasPrefix("stdout_stream.") {
                w.stdoutStream[String(option.dropFirst("stdout_stream.".count))] = text
            } else if option.hasPrefix("stderr_stream.") {
                w.stderrStream[String(option.dropFirst("stderr_stream.".count))] = text
            } else {
                w.extraOptions[option] = text
            }
        }

        // Watcher.load_from_config: `$VAR` expansion of the env.
        w.env = Substitution.parseEnvironment(w.env, environment: environment)

        // Checks Circus makes when it constructs the Watcher.
        if w.singleton && w.numprocesses > 1 {
            throw failure(
                pending.locations["numprocesses"] != nil ? "numprocesses" : "singleton",
                "cannot have \(w.numprocesses) processes with a singleton watcher")
        }
        if w.copyPath && !w.copyEnv {
            throw failure("copy_path", "copy_env and copy_path must have the same value (copy_path needs copy_env = true)")
        }
        if w.virtualenv != nil && !w.copyEnv {
            throw failure("virtualenv", "virtualenv needs copy_env = true")
        }
        return w
    }

    /// Names must be unique once lower-cased (Circus looks watchers up by lower-cased name,
    /// so a second one would silently replace the first).
    private func checkUnique(
        _ entries: [(name: String, location: SourceLocation, section: String)], what: String
    ) throws(ConfigError) {
        var seen: [String: (name: String, section: String)] = [:]
        for entry in entries {
            let key = entry.name.lowercased()
            if let earlier = seen[key] {
                throw ConfigError(
                    at: entry.location, section: entry.section,
                    message: "\(what) name \(PythonText.repr(entry.name)) clashes with \(PythonText.repr(earlier.name)) "
                        + "of [\(earlier.section)]: \(what) names must differ in more than letter case")
            }
            seen[key] = (entry.name, entry.section)
        }
    }
}
