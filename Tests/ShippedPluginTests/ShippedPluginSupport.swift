// Support for the shipped plugins' tests: a PluginBus that plays the daemon (records the
// commands a plugin calls and answers them as circusd would, with Circus-shaped JSON),
// building a plugin library with plain `cc` and the strictest flags, a loaded instance,
// real UDP sockets, and waiting with deadlines.

import CircusPluginHost
import CircusProtocol
import CircusSystem
import Foundation
import Glibc
import Logging
import OrderedCollections
import Synchronization

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `probe` every millisecond until it returns a value, or fails after `timeout`.
func waitUntil<T>(_ what: String, timeout: Double = 10, _ probe: () -> T?) throws -> T {
    let deadline = EventLoop.monotonicNow() + timeout
    while true {
        if let value = probe() { return value }
        if EventLoop.monotonicNow() > deadline { throw TestFailure("timed out after \(timeout) s waiting for \(what)") }
        usleep(1000)
    }
}

/// A value set once from any thread, read by the test.
final class Slot<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)
    func put(_ v: T) { value.withLock { $0 = v } }
    var get: T? { value.withLock { $0 } }
}

// MARK: The daemon's side

/// Plays circusd for plugins: records every command a plugin calls (with the monotonic
/// time of the call) and answers it through `answer` (by default: unknown command).
final class DaemonBus: PluginBus {
    struct Call: Sendable {
        var name: String
        var arguments: JSONObject
        var at: Double
    }

    typealias Answer = @Sendable (String, JSONObject) -> Result<JSONObject, CommandError>

    private struct State {
        var calls: [Call] = []
        var logs: [(level: Logger.Level, message: String)] = []
        var commands: [String: PluginCommand] = [:]
        var answer: Answer = { name, _ in .failure(.unknownCommand(name)) }
    }

    private let state = Mutex(State())

    /// How commands are answered from now on.
    func answer(_ answer: @escaping Answer) { state.withLock { $0.answer = answer } }

    /// Every command called so far, in order.
    var calls: [Call] { state.withLock { $0.calls } }

    /// The calls of commands other than `options` and `list` (the plugin's actions).
    var actions: [Call] { calls.filter { $0.name != "options" && $0.name != "list" } }

    /// Every log line so far.
    var logs: [String] { state.withLock { $0.logs.map(\.message) } }

    /// Waits for a log line matching `match`. An isolated plugin's lines come over its
    /// socket, so one may arrive after what the plugin sent another way (a datagram).
    func waitForLog(_ what: String = "a log line", timeout: Double = 10, where match: (String) -> Bool) throws {
        _ = try waitUntil("\(what) in the log: \(logs)", timeout: timeout) { logs.contains(where: match) ? true : nil }
    }

    /// Waits for exactly this log line.
    func waitForLog(_ line: String, timeout: Double = 10) throws {
        try waitForLog("\"\(line)\"", timeout: timeout) { $0 == line }
    }

    /// Waits until at least `count` calls satisfy `filter`, and returns them.
    @discardableResult
    func waitForCalls(_ what: String, count: Int, timeout: Double = 10, where filter: (Call) -> Bool) throws -> [Call] {
        try waitUntil(what, timeout: timeout) {
            let matching = calls.filter(filter)
            return matching.count >= count ? matching : nil
        }
    }

    func publish(_ event: EventMessage) {}

    func runCommand(
        _ name: String, arguments: JSONObject, from instance: String,
        reply: @escaping @Sendable (Result<JSONObject, CommandError>) -> Void
    ) {
        let answer = state.withLock { s in
            s.calls.append(Call(name: name, arguments: arguments, at: EventLoop.monotonicNow()))
            return s.answer
        }
        reply(answer(name, arguments))
    }

    func registerCommand(_ command: PluginCommand) { state.withLock { $0.commands[command.name] = command } }
    func unregisterCommand(named name: String) { _ = state.withLock { $0.commands.removeValue(forKey: name) } }
    func registerHook(_ hook: PluginHook) {}
    func unregisterHook(_ id: PluginHookID) {}

    func log(_ level: Logger.Level, instance: String, message: String) {
        state.withLock { $0.logs.append((level, message)) }
    }
}

// MARK: Building and running a shipped plugin

enum ShippedPlugin: String {
    case flapping, statsd, watchdog
    case resourceWatcher = "resource_watcher"
    case commandReloader = "command_reloader"
    case httpObserver = "http_observer"
    case redisObserver = "redis_observer"

    /// The repository's root, found from this file's path.
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Every C file of the shared toolbox (Plugins/support).
    static let supportSources: [String] = {
        let directory = "\(root)/Plugins/support"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".c") }.sorted().map { "\(directory)/\($0)" }
    }()

    var sources: [String] {
        let own = ["\(Self.root)/Plugins/\(rawValue)/\(rawValue).c"]
        let extra = self == .watchdog ? ["\(Self.root)/Plugins/watchdog/pyregex.c"] : []
        return own + extra + Self.supportSources
    }

    /// The system libraries the plugin links (the toolbox's worker thread needs pthread).
    var libraries: [String] {
        switch self {
        case .httpObserver: ["-lcurl", "-lpthread"]
        case .redisObserver: ["-lhiredis", "-lpthread"]
        default: ["-lpthread"]
        }
    }

    /// Compiles the plugin into `directory` with plain `cc`, as strict as can be: C99,
    /// pedantic, every warning an error, and no undefined symbol (nothing of circusd).
    func build(into directory: String) throws -> String {
        let path = "\(directory)/lib\(rawValue).so"
        try runTool("cc", ["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-pedantic", "-Wall", "-Wextra", "-Werror",
                       "-I", "\(Self.root)/include", "-I", "\(Self.root)/Plugins/support/include",
                       "-fvisibility=hidden", "-fPIC", "-shared", "-Wl,--no-undefined", "-o", path] + sources + libraries)
        return path
    }
}

/// A shipped plugin built, loaded into a real PluginHost talking to a DaemonBus, run in
/// process or isolated (in a circus-plugin-host process).
final class LoadedPlugin {
    let directory: String
    let bus = DaemonBus()
    let host: PluginHost
    let library: PluginLibrary
    let isolated: Bool

    convenience init(_ plugin: ShippedPlugin, isolated: Bool = false) throws {
        try self.init(isolated: isolated, building: plugin.build(into:))
    }

    /// Builds a library with `build` (given a fresh temporary directory, returning the
    /// library's path) and loads it, for running in process or isolated.
    init(isolated: Bool = false, building build: (String) throws -> String) throws {
        self.isolated = isolated
        var template = Array("/tmp/circus-shipped-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw TestFailure("mkdtemp failed: errno \(errno)")
        }
        directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        host = try PluginHost(bus: bus)
        library = try host.load(try build(directory), isolated: isolated)
    }

    /// Starts the instance `name` with `config` (INI strings, as circusd passes them).
    func start(_ name: String, _ config: JSONObject) throws {
        let outcome = Slot<Result<Void, PluginInstanceError>>()
        try host.startInstance(name, of: library, config: config, stateDirectory: directory, isolate: isolated) {
            outcome.put($0)
        }
        try waitUntil("instance \(name) to start") { outcome.get }.get()
    }

    /// Starts the instance expecting it to fail, and returns the plugin's message.
    func startFailure(_ name: String, _ config: JSONObject) throws -> String {
        do {
            try start(name, config)
        } catch let error as PluginInstanceError {
            return error.message
        }
        throw TestFailure("instance \(name) started with a bad config")
    }

    /// Runs a plugin command and waits for its reply.
    func command(_ name: String) throws -> JSONObject {
        let outcome = Slot<Result<JSONObject, PluginRequestError>>()
        host.invokeCommand(named: name, arguments: [:]) { outcome.put($0) }
        return try waitUntil("the reply to \(name)") { outcome.get }.get()
    }

    /// Delivers `watcher.<watcher>.<event>` with `payload`, as circusd publishes it.
    func event(_ watcher: String, _ event: String, _ payload: JSONObject = [:]) {
        var payload = payload
        payload["time"] = .double(EventLoop.wallNow())
        host.deliver(EventMessage(topic: "watcher.\(watcher).\(event)", payload: payload))
    }

    func close() {
        for instance in host.instances {
            let done = Slot<Bool>()
            host.stopInstance(instance.name) { done.put(true) }
            _ = try? waitUntil("instance \(instance.name) to stop") { done.get }
        }
        host.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

// MARK: UDP

/// A UDP socket bound on 127.0.0.1 (any free port), for receiving what a plugin sends.
final class UDPReceiver {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestFailure("bind: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
    }

    /// Metrics received but not yet returned by `receive`.
    private var pending: [String] = []

    /// The next datagram as it came, or a failure after `timeout` seconds.
    func receiveDatagram(timeout: Double = 10) throws -> String {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else {
            throw TestFailure("no datagram within \(timeout) s")
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        guard n >= 0 else { throw TestFailure("recv: errno \(errno)") }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// The next metric: the plugins send several in one datagram, one per line, as statsd
    /// reads them.
    func receive(timeout: Double = 10) throws -> String {
        while pending.isEmpty {
            pending = try receiveDatagram(timeout: timeout).split(separator: "\n", omittingEmptySubsequences: false)
                .map(String.init)
        }
        return pending.removeFirst()
    }

    /// Metrics until one satisfies `last`, all of them in order.
    func receive(until last: (String) -> Bool, timeout: Double = 10) throws -> [String] {
        var all: [String] = []
        while true {
            let metric = try receive(timeout: timeout)
            all.append(metric)
            if last(metric) { return all }
        }
    }

    deinit { Glibc.close(fd) }
}

/// Sends one UDP datagram to 127.0.0.1:port.
func sendUDP(_ text: String, to port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = port.bigEndian
    let bytes = Array(text.utf8)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
}

/// Sends one datagram to the AF_UNIX datagram socket at `path`, as sd_notify(3) does.
func sendNotify(_ text: String, to path: String) {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, byte) in path.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
    }
    let bytes = Array(text.utf8)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
}

/// Runs `body` every `interval` seconds on a thread of its own until `stop()`.
final class Repeater: Sendable {
    private let stopping = Slot<Bool>()
    private let finished = Slot<Bool>()

    init(every interval: Double, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [stopping, finished] in
            while stopping.get == nil {
                body()
                usleep(useconds_t(interval * 1_000_000))
            }
            finished.put(true)
        }
        thread.start()
    }

    /// Stops, and returns once the last `body` has returned.
    func stop() throws {
        stopping.put(true)
        _ = try waitUntil("the repeater to stop") { finished.get }
    }
}
