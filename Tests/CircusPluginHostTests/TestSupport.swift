// Support for the plugin host tests: a PluginBus that records what the host sends (the
// host's real counterpart interface, played by the test), building plugins with plain
// `cc -shared` from the header alone, temporary directories, and waiting with deadlines.

import CircusPluginHost
import CircusProtocol
import CircusSystem
import Foundation
import Glibc
import Logging
import OrderedCollections
import Synchronization
import Testing

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: The daemon's side

/// Plays the daemon: records published events, registrations and logs; answers the daemon
/// command `status` with `{"status": "active"}` and every other with "unknown command".
final class RecordingBus: PluginBus {
    struct Record {
        var events: [EventMessage] = []
        var commands: [String: PluginCommand] = [:]
        var unregisteredCommands: [String] = []
        var hooks: [PluginHook] = []
        var unregisteredHooks: [PluginHookID] = []
        var logs: [(level: Logger.Level, instance: String, message: String)] = []
        var calls: [(name: String, arguments: JSONObject, instance: String)] = []
    }

    let record = Mutex(Record())

    func publish(_ event: EventMessage) { record.withLock { $0.events.append(event) } }

    func runCommand(
        _ name: String, arguments: JSONObject, from instance: String,
        reply: @escaping @Sendable (Result<JSONObject, CommandError>) -> Void
    ) {
        record.withLock { $0.calls.append((name, arguments, instance)) }
        if name == "status" { reply(.success(["status": "active"])) } else { reply(.failure(.unknownCommand(name))) }
    }

    func registerCommand(_ command: PluginCommand) { record.withLock { $0.commands[command.name] = command } }

    func unregisterCommand(named name: String) {
        record.withLock {
            $0.commands[name] = nil
            $0.unregisteredCommands.append(name)
        }
    }

    func registerHook(_ hook: PluginHook) { record.withLock { $0.hooks.append(hook) } }

    func unregisterHook(_ id: PluginHookID) {
        record.withLock {
            $0.hooks.removeAll { $0.id == id }
            $0.unregisteredHooks.append(id)
        }
    }

    func log(_ level: Logger.Level, instance: String, message: String) {
        record.withLock { $0.logs.append((level, instance, message)) }
    }

    /// Events whose topic is `topic`, in publishing order.
    func events(_ topic: String) -> [EventMessage] {
        record.withLock { $0.events.filter { $0.topic == topic } }
    }

    /// Waits until `probe` returns a value.
    func wait<T>(for what: String, timeout: Double = 10, _ probe: (Record) -> T?) throws -> T {
        try waitUntil(what, timeout: timeout) { record.withLock { probe($0) } }
    }
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

/// Collects the values an asynchronous completion is called with (to check "exactly once").
final class Outcomes<T: Sendable>: Sendable {
    private let values = Mutex<[T]>([])

    func put(_ value: T) { values.withLock { $0.append(value) } }

    var all: [T] { values.withLock { $0 } }

    /// Waits for the first value.
    func first(_ what: String, timeout: Double = 10) throws -> T {
        try waitUntil(what, timeout: timeout) { values.withLock { $0.first } }
    }
}

/// Where a test runs its plugin: in the daemon's process, or in a circus-plugin-host.
enum Mode: String, CaseIterable, CustomTestStringConvertible {
    case inProcess = "in process"
    case isolated

    var isolated: Bool { self == .isolated }
    var testDescription: String { rawValue }
}

extension PluginHost {
    /// Loads a library for `mode` (an isolated load runs none of its code here).
    func load(_ path: String, _ mode: Mode) throws -> PluginLibrary {
        try load(path, isolated: mode.isolated)
    }

    /// Starts an instance and waits for create and start.
    func startAndWait(_ name: String, of library: PluginLibrary, config: JSONObject = [:], stateDirectory: String,
                      mode: Mode = .inProcess) throws {
        let outcome = Outcomes<Result<Void, PluginInstanceError>>()
        try startInstance(name, of: library, config: config, stateDirectory: stateDirectory, isolate: mode.isolated) {
            outcome.put($0)
        }
        try outcome.first("instance \(name) to start").get()
    }

    /// Stops an instance and waits until destroy returned.
    func stopAndWait(_ name: String) throws {
        let done = Outcomes<Bool>()
        stopInstance(name) { done.put(true) }
        _ = try done.first("instance \(name) to stop")
    }

    /// Runs a plugin command and waits for its reply.
    func call(_ name: String, _ arguments: JSONObject = [:], deadline: Duration? = nil) throws
        -> Result<JSONObject, PluginRequestError> {
        let outcome = Outcomes<Result<JSONObject, PluginRequestError>>()
        invokeCommand(named: name, arguments: arguments, deadline: deadline) { outcome.put($0) }
        return try outcome.first("the reply to \(name)")
    }
}

// MARK: Building plugins

enum Build {
    /// The repository's root, found from this file's path.
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let include = root + "/include"
    static let example = root + "/Plugins/example-c/example.c"
    static let probe = root + "/Tests/CircusPluginHostTests/Fixtures/probe.c"

    /// Compiles `source` into `<directory>/<output>` as a plugin, with the flags a third
    /// party uses (Plugins/example-c/Makefile): only `cc` and `-I` to our include dir.
    @discardableResult
    static func plugin(_ source: String, into directory: String, as output: String, defines: [String] = []) throws -> String {
        let path = directory + "/" + output
        try run("cc", ["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-pedantic", "-Werror"]
            + defines + ["-I", include, "-fvisibility=hidden", "-fPIC", "-shared", "-Wl,--no-undefined", "-pthread",
                         "-o", path, source])
        return path
    }

    /// Runs a tool from PATH; throws with its output when it fails.
    static func run(_ tool: String, _ arguments: [String], input: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        if let input {
            let stdin = Pipe()
            process.standardInput = stdin
            try process.run()
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        } else {
            try process.run()
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure("\(tool) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)):\n\(text)")
        }
    }
}

// MARK: Directories

/// A fresh private directory under /tmp, removed with everything in it by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/circus-plugin-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw TestFailure("mkdtemp failed: errno \(errno)")
        }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// The probe plugin's journal, which it writes in its state directory.
func probeJournal(_ stateDirectory: String) throws -> String {
    (try? String(contentsOfFile: stateDirectory + "/journal", encoding: .utf8)) ?? ""
}

/// A FIFO in `directory`, held open for reading and writing by the test (so that the
/// plugin's open never waits for a writer, and its reads see the bytes the test writes).
struct FIFO {
    let path: String
    let fd: Int32

    init(in directory: String, named name: String) throws {
        path = directory + "/" + name
        guard mkfifo(path, 0o600) == 0 else { throw TestFailure("mkfifo \(path): errno \(errno)") }
        fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw TestFailure("open \(path): errno \(errno)") }
    }

    func write(_ byte: UInt8) {
        var value = byte
        _ = Glibc.write(fd, &value, 1)
    }

    func close() { _ = Glibc.close(fd) }
}
