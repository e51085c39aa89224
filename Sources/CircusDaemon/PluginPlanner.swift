// From `[plugin:NAME]` sections (their source resolved by the configuration layer) to
// plugin instances to run: which library, which config, active or not. Libraries are opened and checked here (dlopen and the ABI checks are
// file I/O, so at reloadconfig this runs on the config worker; the loop then finds them
// in the cache).

import CircusConfig
import CircusPluginHost
import CircusProtocol
import Glibc
import OrderedCollections
import Synchronization

/// One plugin instance to run.
struct PluginPlan: Sendable {
    /// `NAME` of `[plugin:NAME]`.
    let instance: String
    let source: PluginSource
    /// The library that implements it (nil for Python plugins).
    let library: PluginLibrary?
    /// false: not started, listed as inactive.
    let active: Bool
    /// `isolate = true`: run in a circus-plugin-host process of its own.
    let isolated: Bool
    /// What the plugin receives as its config: the section's keys, `use` included.
    let config: JSONObject
    let priority: Int
    /// Not from the configuration: the flapping instance circusd runs by default.
    let isDefault: Bool
    /// Where its section starts (nil for the default flapping instance): a plugin that
    /// refuses its options is reported there.
    var location: SourceLocation? = nil

    /// Whether `other` runs the same library with the same config and activity.
    func sameAs(_ other: PluginPlan) -> Bool {
        library === other.library && active == other.active && isolated == other.isolated && config == other.config
    }
}

/// Resolves plugin sections and opens their libraries, caching them. Thread-safe.
final class PluginPlanner: Sendable {
    /// The instance circusd runs when no section uses the flapping plugin, so that every
    /// watcher with `check_flapping` (the default) is watched, with Circus's defaults.
    static let defaultFlapping = "flapping"

    private let host: PluginHost
    private let executableDirectory: String
    private let libraries = Mutex<[String: PluginLibrary]>([:])
    private let shippedPaths = Mutex<[String: String]>([:])

    init(host: PluginHost) {
        self.host = host
        executableDirectory = Self.executableDirectory()
    }

    /// The instances `configuration` asks for, in start order (priority descending, then
    /// name), plus the default flapping instance when no section uses flapping and its
    /// library can be found.
    ///
    /// - Throws: `ConfigError` naming the file, line, section and option of the first
    ///   section whose library is missing or refused, or whose options are wrong.
    func plans(for configuration: CircusConfiguration) throws(ConfigError) -> [PluginPlan] {
        var plans: [PluginPlan] = []
        for section in configuration.plugins {
            plans.append(try plan(section))
        }
        let usesFlapping = plans.contains { $0.library?.name == "flapping" || $0.source == .shipped(name: "flapping") }
        if !usesFlapping, let path = shippedPath("flapping"), let library = try? open(path) {
            var name = Self.defaultFlapping
            while plans.contains(where: { $0.instance == name }) { name += "_default" }
            plans.append(PluginPlan(
                instance: name, source: .shipped(name: "flapping"), library: library, active: true, isolated: false,
                config: [:], priority: 0, isDefault: true))
        }
        return plans.enumerated().sorted { a, b in
            a.element.priority != b.element.priority ? a.element.priority > b.element.priority : a.offset < b.offset
        }.map(\.element)
    }

    private func plan(_ section: PluginConfig) throws(ConfigError) -> PluginPlan {
        func refuse(_ option: String, _ message: String) -> ConfigError {
            ConfigError(at: option == "use" ? section.useLocation ?? section.location : section.location,
                        section: section.name, option: option, message: message)
        }
        // What the plugin receives: the section's keys, `use` included (the statsd plugin
        // tells StatsdEmitter from FullStats by it), but not what circusd reads itself.
        var config: JSONObject = ["use": .string(section.use)]
        for (key, value) in section.options where key != "isolate" { config[key] = .string(value) }
        var library: PluginLibrary?
        switch section.source {
        case .python:
            break  // run as the watcher plugin:NAME
        case .library(let path):
            do {
                library = try open(path, isolated: section.isolate)
            } catch {
                throw refuse("use", error.message)
            }
        case .shipped(let name):
            guard let path = shippedPath(name) else {
                throw refuse("use", "no shipped plugin \(name): lib\(name).so is neither in \(executableDirectory) nor in "
                    + "\(Self.installedDirectory(executableDirectory))")
            }
            do {
                library = try open(path, isolated: section.isolate)
            } catch {
                throw refuse("use", error.message)
            }
        }
        return PluginPlan(
            instance: section.instanceName, source: section.source, library: library, active: section.active,
            isolated: section.isolate, config: config, priority: section.priority, isDefault: false,
            location: section.location)
    }

    /// Opens `path` once (later calls answer from the cache, without I/O). For an
    /// isolated instance the library is checked in a circus-plugin-host process, so none
    /// of its code runs in circusd.
    private func open(_ path: String, isolated: Bool = false) throws(PluginLoadError) -> PluginLibrary {
        let key = isolated ? "isolated:" + path : path
        if let cached = libraries.withLock({ $0[key] }) { return cached }
        let library = try host.load(path, isolated: isolated)
        libraries.withLock { $0[key] = library }
        return library
    }

    /// `lib<name>.so` next to circusd, else in `<prefix>/lib/circus/plugins`.
    private func shippedPath(_ name: String) -> String? {
        if let known = shippedPaths.withLock({ $0[name] }) { return known }
        let file = "lib\(name).so"
        for directory in [executableDirectory, Self.installedDirectory(executableDirectory)] {
            let path = directory + "/" + file
            if access(path, F_OK) == 0 {
                shippedPaths.withLock { $0[name] = path }
                return path
            }
        }
        return nil
    }

    /// `<prefix>/lib/circus/plugins` for circusd in `<prefix>/bin`.
    static func installedDirectory(_ executableDirectory: String) -> String {
        directory(of: executableDirectory) + "/lib/circus/plugins"
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func executableDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return "." }
        return directory(of: String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
}
