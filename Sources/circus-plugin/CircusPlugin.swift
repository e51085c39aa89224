// circus-plugin: runs a native plugin against a running daemon over its endpoints, as
// Circus's `circus-plugin` runs a plugin class: for developing a plugin without
// restarting circusd, and for watching a remote daemon. Circus's options; `plugin` is
// what `use` of a [plugin:NAME] section may be: a library's path, a shipped plugin's
// name, or one of Circus's plugin classes (run by its native twin).

import ArgumentParser
import CircusConfig
import CircusDaemon
import CircusPluginHost
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections
import Synchronization

@main
struct CircusPluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circus-plugin",
        abstract: "Run a circus plugin against a running circusd, over its endpoints.",
        version: Version.text
    )

    @Option(name: .customLong("endpoint"), help: "The daemon's control endpoint.")
    var endpoint = "tcp://127.0.0.1:5555"

    @Option(name: .customLong("pubsub"), help: "The daemon's pub/sub endpoint.")
    var pubsub = "tcp://127.0.0.1:5556"

    @Option(name: .customLong("config"), help: "The plugin's options: key:value pairs joined by ':::'.")
    var config: String?

    @Option(name: .customLong("check-delay"), help: "Circus's check delay for the plugin (5.0, the only value served).")
    var checkDelay: Double = 5.0

    @Option(name: .customLong("log-level"), help: "Log level: critical, error, warning, info or debug.")
    var logLevel = "info"

    @Option(name: .customLong("log-output"), help: "Where to log: '-' for stderr, else a file path.")
    var logOutput = "-"

    // Declared so that it is refused with its reason rather than as an unknown option.
    @Option(name: .customLong("ssh"), help: "An SSH server to tunnel through: not supported (refused).")
    var ssh: String?

    @Argument(help: "The plugin: a path to its library (.so), a shipped plugin's name (flapping, statsd, ...) or a Circus plugin class (circus.plugins.flapping.Flapping).")
    var plugin: String?

    func validate() throws {
        if let ssh {
            throw ValidationError(
                "--ssh \(ssh): is not supported by circus-plugin: tunnel the daemon's endpoints yourself "
                    + "(ssh -L) and give the local ends as --endpoint and --pubsub")
        }
        // Circus hands its plugins the check delay; native plugins are written for the one
        // circusd always gives them (Circus never passes its own to plugins either).
        if checkDelay != 5.0 {
            throw ValidationError(
                "--check-delay \(checkDelay): native plugins run with Circus's plugin check delay of 5.0, "
                    + "the value circusd gives every plugin; other values are not supported")
        }
    }

    func run() throws {
        guard let plugin else {
            // Circus prints its usage and exits 0 without a plugin.
            print("usage: " + Self.usageString())
            return
        }
        let sink = try LogSink(output: logOutput)
        let level = CircusLogHandler.level(named: logLevel)
        let logger = Logger(label: "circus-plugin") { CircusLogHandler(label: $0, sink: sink, level: level) }
        defer { sink.flush() }

        // INT and TERM end the plugin; they are taken with sigwait, so every thread
        // started from here on has them blocked.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        logger.info("Loading the plugin...")
        logger.info("Endpoint: '\(endpoint)'")
        logger.info("Pub/sub: '\(pubsub)'")
        let bus = RemoteBus(endpoint: endpoint, pubsub: pubsub, logger: logger)
        let host = try PluginHost(bus: bus)
        let library: PluginLibrary
        do {
            library = try host.load(try Self.libraryPath(for: plugin))
        } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
        // As in a [plugin:NAME] section, the plugin sees what `use` named (statsd tells
        // Circus's two classes apart by it).
        var options = Self.parseConfig(config)
        if options["use"] == nil { options["use"] = .string(plugin) }
        let stateDirectory = try Self.stateDirectory(for: library.name)
        defer { Self.remove(stateDirectory) }
        try bus.attach(host)

        let started = Mutex<Result<Void, PluginInstanceError>?>(nil)
        let startedSignal = Semaphore()
        try host.startInstance(library.name, of: library, config: options, stateDirectory: stateDirectory) {
            result in
            started.withLock { $0 = result }
            startedSignal.signal()
        }
        startedSignal.wait()
        if case .failure(let error) = started.withLock({ $0! }) {
            logger.error("\(error)")
            bus.close()
            throw ExitCode.failure
        }
        logger.info("Starting")
        var received: Int32 = 0
        sigwait(&signals, &received)
        logger.info("Stopping")
        let stopped = Semaphore()
        host.stopInstance(library.name) { stopped.signal() }
        stopped.wait()
        bus.close()
        host.shutdown()
    }

    /// The library `plugin` names, as `use` would: a path, or a shipped plugin's library
    /// next to this executable.
    static func libraryPath(for plugin: String) throws -> String {
        switch ShippedPlugins.source(of: plugin, configDirectory: ".") {
        case .success(.library(let path)): return path
        case .success(.shipped(let name)): return PluginHost.executableDirectory + "/lib\(name).so"
        case .success(.python(let className)):
            throw ValidationError(
                "\(className) is a Python class: circus-plugin runs native plugins; run it with Circus's own "
                    + "circus-plugin (pip install circus)")
        case .failure(let error):
            throw ValidationError(error.message)
        }
    }

    /// Circus's serialized plugin config: `key:value` items joined by `:::`, each split at
    /// its first `:`, keys and values stripped; an item without `:` is skipped.
    static func parseConfig(_ text: String?) -> JSONObject {
        var config: JSONObject = [:]
        guard let text else { return config }
        for item in text.split(separator: ":::", omittingEmptySubsequences: false) {
            guard let colon = item.firstIndex(of: ":") else { continue }
            let key = item[..<colon].trimmingWhitespace, value = item[item.index(after: colon)...].trimmingWhitespace
            config[key] = .string(value)
        }
        return config
    }

    /// A private directory for the instance's state, removed at exit.
    static func stateDirectory(for name: String) throws -> String {
        var template = Array("/tmp/circus-plugin-\(name)-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ValidationError("cannot create a state directory in /tmp: \(String(cString: strerror(errno)))")
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static func remove(_ directory: String) {
        guard let dir = opendir(directory) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { unlink(directory + "/" + name) }
        }
        closedir(dir)
        rmdir(directory)
    }
}

extension Substring {
    /// Without leading and trailing blanks (Python's `str.strip()`).
    var trimmingWhitespace: String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        return String(drop(while: blank).reversed().drop(while: blank).reversed())
    }
}

/// A one-shot wake-up between threads (a pipe: `wait` blocks until `signal`).
final class Semaphore: Sendable {
    private let fds: (read: Int32, write: Int32)

    init() {
        var pair: [Int32] = [-1, -1]
        _ = pipe(&pair)  // not inherited: the plugin host, our only child, keeps none of our descriptors
        fds = (pair[0], pair[1])
    }

    func signal() {
        var byte: UInt8 = 1
        _ = write(fds.write, &byte, 1)
    }

    func wait() {
        var byte: UInt8 = 0
        while read(fds.read, &byte, 1) < 0 && errno == EINTR {}
    }

    deinit {
        close(fds.read)
        close(fds.write)
    }
}
