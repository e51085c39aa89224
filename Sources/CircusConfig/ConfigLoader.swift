// Loading a circus.ini: files and includes, then the typed model,
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
    ///   - accounts: the user and group databases that `endpoint_owner` and the control
    ///     grants are checked against.
    /// - Returns: the configuration, the warnings to log, and the files read.
    /// - Throws: ``ConfigError`` for a missing or unreadable file (main or include), a
    ///   syntax error, or any invalid value; circusd must not start.
    public static func load(
        path: String,
        environment: [String: String],
        currentDirectory: String,
        accounts: any AccountDirectory
    ) throws(ConfigError) -> LoadResult {
        try read(path: path, environment: environment, currentDirectory: currentDirectory, accounts: accounts,
                 servedOnly: true)
    }

    /// Like ``load(path:environment:currentDirectory:accounts:)``, but parses and checks the
    /// `[circus]` options this version does not serve yet instead of refusing them (watcher
    /// options are refused either way).
    public static func parse(
        path: String,
        environment: [String: String],
        currentDirectory: String,
        accounts: any AccountDirectory
    ) throws(ConfigError) -> LoadResult {
        try read(path: path, environment: environment, currentDirectory: currentDirectory, accounts: accounts,
                 servedOnly: false)
    }

    private static func read(
        path: String,
        environment: [String: String],
        currentDirectory: String,
        accounts: any AccountDirectory,
        servedOnly: Bool
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

        var builder = ConfigBuilder(
            document: parser.document, environment: environment, currentDirectory: currentDirectory, accounts: accounts)
        var configuration = try builder.build(path: absolutePath)
        if servedOnly { try builder.refuseUnserved() }
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
    /// What `endpoint_owner` and the control grants are checked against.
    let accounts: any AccountDirectory
    var warnings: [String] = []

    /// `[env]` expanded against the process environment (Circus's `local_env`).
    private(set) var localEnv: OrderedDictionary<String, String> = [:]
    /// The process environment overlaid by `[env]` (Circus's `global_env`).
    private let globalEnv: OrderedDictionary<String, String>
    let globalTable: Substitution.Table

    init(document: IniDocument, environment: [String: String], currentDirectory: String, accounts: any AccountDirectory) {
        self.document = document
        self.accounts = accounts
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
                let plugin = try buildPlugin(
                    name, section: section, items: items, configDirectory: FileSystem.dirname(path))
                plugins.append(plugin)
                if plugin.source.isPython {
                    let runner = pythonPluginWatcherItems(plugin, settings: settings, items: items)
                    watchers.append(try firstPass(name, named: name, section: section, items: runner))
                }
            } else if name.hasPrefix("watcher:") {
                watchers.append(
                    try firstPass(name, named: String(name.dropFirst("watcher:".count)), section: section, items: items))
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
            let watcher = try secondPass(pending)
            try checkSockets(
                of: watcher, header: pending.section, sectionLocation: pending.sectionLocation,
                locations: pending.locations, sockets: sockets)
            built.append(watcher)
        }
        sockets.sort { PythonText.precedes($0.name, $1.name) }
        plugins.sort { PythonText.precedes($0.name, $1.name) }

        return CircusConfiguration(
            path: path, settings: settings, watchers: built, sockets: sockets, plugins: plugins, globalEnv: localEnv)
    }

    // MARK: - Substitution and conversion helpers

    /// Engine (a) with the global environment: what Circus's parser `get`/`items` return.
    func expandGlobal(_ value: IniValue) -> String {
        Substitution.replace(value.value, table: globalTable)
    }

    func convert<T>(
        _ text: String, at value: IniValue, section: String, option: String,
        _ parse: (String) throws(ValueParseError) -> T
    ) throws(ConfigError) -> T {
        do {
            return try parse(text)
        } catch {
            throw ConfigError(at: value.location, section: section, option: option, message: error.message)
        }
    }

    /// `hooks.<name> = target[, ignore_failure]`: the hook name, the target and a declared
    /// signature are all checked here, before anything starts (Circus resolves an unknown
    /// hook name and never calls it; here it is refused).
    private func hook(_ value: IniValue, _ section: String, _ option: String) throws(ConfigError) -> HookSpec {
        let name = String(option.dropFirst("hooks.".count))
        guard let point = HookPoint(rawValue: name) else {
            throw ConfigError(
                at: value.location, section: section, option: option,
                message: HookPoint.unknown(name))
        }
        return try convert(expandGlobal(value), at: value, section: section, option: option) { (t: String) throws(ValueParseError) in
            try HookSpec(point: point, option: t)
        }
    }

    func bool(_ value: IniValue, _ section: String, _ option: String) throws(ConfigError) -> Bool {
        try convert(expandGlobal(value), at: value, section: section, option: option, ValueParser.bool)
    }

    func int(_ value: IniValue, _ section: String, _ option: String) throws(ConfigError) -> Int {
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
        if let v = string("python") { s.python = v }
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
        s.access = try controlAccess(endpointOwner: s.endpointOwner) { option in raw(option).map { ($0, expandGlobal($0)) } }
        try checkEndpointSettings(s)
        return s
    }

    // MARK: - [socket:NAME] (see SocketSections.swift)

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

    /// The error for an option this version does not serve.
    private func unserved(_ value: IniValue, _ header: String, _ option: String, _ reason: String) -> ConfigError {
        ConfigError(
            at: value.location, section: header, option: option,
            message: "is not supported yet by this version of circusd: \(reason)")
    }

    private mutating func firstPass(
        _ header: String, named name: String, section: IniSection, items: OrderedDictionary<String, IniValue>
    ) throws(ConfigError) -> PendingWatcher {
        var w = PendingWatcher(
            config: WatcherConfig(name: name, cmd: ""), section: header, sectionLocation: section.location)
        w.config.location = section.location

        for (option, value) in items {
            w.locations[option] = value.location
            if option.hasPrefix("stdout_stream") || option.hasPrefix("stderr_stream") {
                let parts = option.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, parts[0] == "stdout_stream" || parts[0] == "stderr_stream" else {
                    throw ConfigError(
                        at: value.location, section: header, option: option,
                        message: "not a stream option: use stdout_stream.<key> or stderr_stream.<key>")
                }
                // Expanded with the watcher's env in the second pass, then checked there.
                w.deferred[option] = value
                continue
            }
            if let reason = Self.ignoredWatcherOptions[option] {
                warnings.append("\(value.location): [\(header)] option '\(option)' is ignored: \(reason)")
                continue
            }
            if option.hasPrefix("hooks.") {
                let spec = try hook(value, header, option)
                w.config.hooks[spec.point] = spec
                continue
            }
            if let family = WatcherOptions.families.first(where: { option.hasPrefix($0.prefix) }),
               case .notYet(let reason) = family.support
            {
                throw unserved(value, header, option, reason)
            }
            // Circus lets a `name` option rename the watcher; an empty one would name it "".
            if option == "name", PythonText.strip(value.value).isEmpty {
                throw ConfigError(at: value.location, section: header, option: option, message: "is empty")
            }
            if let known = WatcherOptions.option(option) {
                switch known.expansion {
                case .watcherEnv:
                    w.deferred[option] = value
                    if case .notYet(let reason) = known.support { throw unserved(value, header, option, reason) }
                case .global, .raw:
                    let text = known.expansion == .raw ? value.value : expandGlobal(value)
                    let parsed = try convert(text, at: value, section: header, option: option, known.parse)
                    if case .notYet(let reason) = known.support, known.requests(parsed) {
                        throw unserved(value, header, option, reason)
                    }
                    known.write(&w.config, parsed)
                }
                continue
            }
            switch option {
            case "check_flapping":
                // Typed for the daemon, and kept as a free-form option: Circus reports it
                // in `options` like any other.
                w.config.checkFlapping = try bool(value, header, option)
                w.deferred[option] = value
            case _ where option.hasPrefix("rlimit_"):
                let limit = String(option.dropFirst("rlimit_".count))
                guard ResourceLimits.number(limit) != nil else {
                    throw ConfigError(
                        at: value.location, section: header, option: option,
                        message: "\(PythonText.repr(limit)) is not a Linux resource limit (known: "
                            + ResourceLimits.names.joined(separator: ", ") + ")")
                }
                w.config.rlimits[limit.lowercased()] = try convert(
                    value.value, at: value, section: header, option: option, ResourceLimits.value)
            default:
                w.deferred[option] = value  // free-form
                if let guess = WatcherOptions.suggestion(for: option) {
                    warnings.append(
                        "\(value.location): [\(header)] unknown option '\(option)' is kept as a free-form option: "
                            + "did you mean \(guess)?")
                }
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
        w.optionLocations = pending.locations
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
        for option in ["cmd", "args", "shell_args"] {
            if let text = expanded[option] { try checkSplittable(option, text) }
        }
        // Options expanded with the watcher's env, converted by their type.
        for known in WatcherOptions.all where known.expansion == .watcherEnv {
            guard let text = expanded[known.name], let value = pending.deferred[known.name] else { continue }
            known.write(&w, try convert(text, at: value, section: header, option: known.name, known.parse))
        }
        if w.workingDir?.isEmpty ?? true { w.workingDir = currentDirectory }
        w.executable = w.executable.map(expand)

        // Free-form options keep their order in the section; stream keys go to their stream.
        for option in document.items(in: header)?.keys ?? [] {
            guard let text = expanded[option], WatcherOptions.option(option) == nil else { continue }
            if option.hasPrefix("stdout_stream.") {
                w.stdoutStream[String(option.dropFirst("stdout_stream.".count))] = text
            } else if option.hasPrefix("stderr_stream.") {
                w.stderrStream[String(option.dropFirst("stderr_stream.".count))] = text
            } else {
                w.extraOptions[option] = text
            }
        }
        for (prefix, keys) in [("stdout_stream.", w.stdoutStream), ("stderr_stream.", w.stderrStream)] {
            do {
                _ = try StreamConfig.parse(keys)
            } catch {
                throw failure(prefix + error.key, error.message)
            }
        }

        // Watcher.load_from_config: `$VAR` expansion of the env.
        w.env = Substitution.parseEnvironment(w.env, environment: environment)

        // A deadline of nothing would fail every hook.
        if w.hookTimeout <= 0 {
            throw failure("hook_timeout", "must be more than 0 seconds")
        }
        // Checks Circus makes when it constructs the Watcher.
        if w.singleton && w.numprocesses > 1 {
            throw failure(
                pending.locations["numprocesses"] != nil ? "numprocesses" : "singleton",
                "cannot have \(w.numprocesses) processes with a singleton watcher")
        }
        if let venv = w.virtualenv {
            guard w.copyEnv else { throw failure("virtualenv", "virtualenv needs copy_env = true") }
            switch Virtualenv.siteDirectory(venv: venv, pythonVersion: w.virtualenvPyVer) {
            case .success(let site):
                Virtualenv.apply(venv: venv, siteDirectory: site, to: &w.env, inherited: environment)
            case .failure(let tried):
                throw failure(
                    "virtualenv",
                    "\(tried.paths.joined(separator: ",")) does not exist: \(PythonText.repr(venv)) is not a virtualenv"
                        + (w.virtualenvPyVer.map { " for Python \($0) (virtualenv_py_ver)" } ?? ""))
            }
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
