// `[plugin:NAME]` sections. Circus runs every plugin as a watcher of its own, a Python
// process that talks to circusd over its endpoints. We run our native twins of Circus's
// plugins (and any C-ABI library) inside circusd, and keep Circus's way for third-party
// Python classes: such a section becomes the watcher `plugin:NAME` whose command is
// Circus's own plugin runner.

public import OrderedCollections

/// The plugins shipped with circusd, and the Circus classes they replace.
public enum ShippedPlugins {
    /// Shipped plugin names: each is `lib<name>.so` beside circusd.
    public static let names: [String] = [
        "flapping", "statsd", "watchdog", "resource_watcher", "command_reloader", "http_observer", "redis_observer",
    ]

    /// Circus 0.19's plugin classes and the shipped plugin that does their work (both of
    /// Circus's statsd classes are one library: it reads `use` to tell which it is).
    public static let circusClasses: OrderedDictionary<String, String> = [
        "circus.plugins.flapping.Flapping": "flapping",
        "circus.plugins.statsd.StatsdEmitter": "statsd",
        "circus.plugins.statsd.FullStats": "statsd",
        "circus.plugins.watchdog.WatchDog": "watchdog",
        "circus.plugins.resource_watcher.ResourceWatcher": "resource_watcher",
        "circus.plugins.command_reloader.CommandReloader": "command_reloader",
        "circus.plugins.http_observer.HttpObserver": "http_observer",
        "circus.plugins.redis_observer.RedisObserver": "redis_observer",
    ]

    /// What `use` names, or why it names nothing we can run.
    ///
    /// - Parameter configDirectory: resolves a relative library path.
    public static func source(of use: String, configDirectory: String) -> Result<PluginSource, ValueParseError> {
        if let name = circusClasses[use] { return .success(.shipped(name: name)) }
        if names.contains(use) { return .success(.shipped(name: use)) }
        if HookTarget.looksLikeLibrary(use) {
            return .success(.library(path: use.hasPrefix("/") ? use : FileSystem.join(configDirectory, use)))
        }
        if use.hasPrefix("circus.") {
            // Circus's own modules: its plugin runner could import them, but a class that
            // is not one of the above is not one of Circus's plugins.
            return .failure(ValueParseError(
                value: use,
                message: "\(PythonText.repr(use)) is not one of Circus's plugins (\(circusClasses.keys.joined(separator: ", ")))"))
        }
        if HookTarget.isPythonDottedName(use), !use.contains(":"), use.contains(".") {
            return .success(.python(className: use))
        }
        return .failure(ValueParseError(
            value: use,
            message: "\(PythonText.repr(use)) names no plugin: give a library path (a '/' or '.so'), a shipped plugin ("
                + names.joined(separator: ", ") + "), a Circus plugin class, or a Python class as package.module.Class"))
    }
}

extension PluginSource {
    /// Whether it is a Python class (run as the watcher `plugin:NAME`).
    public var isPython: Bool {
        if case .python = self { return true }
        return false
    }
}

extension ConfigBuilder {
    /// Keys of a plugin section that circusd reads itself, besides `use` and `priority`.
    private static let hostKeys: Set<String> = ["active", "isolate", "python"]

    func buildPlugin(
        _ header: String, section: IniSection, items: OrderedDictionary<String, IniValue>, configDirectory: String
    ) throws(ConfigError) -> PluginConfig {
        guard let use = items["use"] else {
            throw ConfigError(at: section.location, section: header, option: "use", message: "missing: a plugin needs 'use'")
        }
        let useText = expandGlobal(use)
        guard !useText.isEmpty else {
            throw ConfigError(at: use.location, section: header, option: "use", message: "is empty")
        }
        let source: PluginSource
        switch ShippedPlugins.source(of: useText, configDirectory: configDirectory) {
        case .success(let found): source = found
        case .failure(let error): throw ConfigError(at: use.location, section: header, option: "use", message: error.message)
        }
        var plugin = PluginConfig(name: header, use: useText, source: source)
        plugin.location = section.location
        plugin.useLocation = use.location
        if let priority = items["priority"] {
            plugin.priority = try int(priority, header, "priority")
        }
        if let active = items["active"] {
            plugin.active = try bool(active, header, "active")
        }
        if let isolate = items["isolate"] {
            plugin.isolate = try bool(isolate, header, "isolate")
            if source.isPython, plugin.isolate {
                throw ConfigError(
                    at: isolate.location, section: header, option: "isolate",
                    message: "applies to native plugins: a Python plugin already runs in a process of its own")
            }
        }
        if let python = items["python"], !source.isPython {
            throw ConfigError(
                at: python.location, section: header, option: "python",
                message: "names the Python that runs a Python plugin, and \(PythonText.repr(useText)) is native")
        }
        // Circus gives the plugin every key but `use` (its config dict, `name` aside).
        for (key, value) in items where key != "use" && key != "name" {
            plugin.options[key] = expandGlobal(value)
        }
        return plugin
    }

    /// The watcher that runs a Python plugin, as Circus builds it: named `plugin:NAME`,
    /// running Circus's plugin runner, a singleton of priority 1 (unless the section says
    /// otherwise) that inherits circusd's environment and whose output is discarded; every
    /// other key of the section is also a watcher option (Circus applies them all, so
    /// `max_retry` there is both the plugin's and its watcher's).
    ///
    /// - Returns: the section's items as a watcher section would hold them.
    func pythonPluginWatcherItems(
        _ plugin: PluginConfig, settings: CircusSettings, items: OrderedDictionary<String, IniValue>
    ) -> OrderedDictionary<String, IniValue> {
        let at = items["use"]?.location ?? plugin.location!
        var watcher: OrderedDictionary<String, IniValue> = [:]
        for (key, value) in items where key != "use" && key != "python" && key != "name" {
            watcher[key] = value
        }
        let python = plugin.options["python"] ?? "python3"
        // Circus's --config: `key:value` items joined by ":::", sorted by key, with the
        // parser's `__name__` and `name` entries its plugins have always received.
        var config = plugin.options.filter { $0.key != "python" }
        config["__name__"] = plugin.name
        config["name"] = plugin.name
        let serialized = config.keys.sorted(by: PythonText.precedes).map { "\($0):\(config[$0]!)" }.joined(separator: ":::")
        var words = [python, "-c", "from circus import plugins;plugins.main()",
                     "--endpoint", settings.endpoint, "--pubsub", settings.pubsubEndpoint,
                     "--config", serialized]
        if let level = settings.loglevel { words += ["--log-level", level] }
        if let output = settings.logoutput { words += ["--log-output", output] }
        words.append(plugin.use)
        watcher["cmd"] = IniValue(value: words.map(Shlex.quote).joined(separator: " "), location: at)
        for (key, value) in [("priority", "1"), ("singleton", "True"), ("copy_env", "True"),
                             ("close_child_stdout", "True"), ("close_child_stderr", "True")] where watcher[key] == nil {
            watcher[key] = IniValue(value: value, location: at)
        }
        return watcher
    }
}
