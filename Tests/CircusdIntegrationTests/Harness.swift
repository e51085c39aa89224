// End-to-end harness: one real circusd per test, driven over its ZeroMQ endpoints.
//
// Every blocking operation (a DEALER round trip, the SUB reader, waiting for a process)
// runs on a thread of its own, never on Swift's cooperative pool, so tests can run in
// parallel on a two-core machine. A gate bounds how many daemons run at once.

import CircusBus
import CircusClient
import CircusProtocol
import Foundation
import OrderedCollections
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Small concurrency helpers

/// A value guarded by a lock, shared between the reader thread and the test task.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    var snapshot: Value { withLock { $0 } }
}

/// Runs `body` on a fresh thread and awaits its result, keeping blocking calls (zmq_poll,
/// waitpid) off the cooperative thread pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// Bounds the number of daemons alive at once (tests run in parallel; the machine has two
/// cores and several tests measure latencies).
actor DaemonGate {
    static let shared = DaemonGate(limit: Int(ProcessInfo.processInfo.environment["CIRCUSD_INTEG_PARALLEL"] ?? "") ?? 6)

    private let limit: Int
    private var running = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    func acquire() async {
        if running < limit {
            running += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            running -= 1
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// A failure of the harness itself or of an expectation that cannot go on (the test stops).
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - /proc helpers

/// What /proc/<pid>/stat says about one process.
struct ProcStat: Equatable {
    let pid: Int32
    let state: Character
    let ppid: Int32
    let startTime: UInt64
    /// The kernel's per-process flags (`PF_*`).
    let flags: UInt32

    var isZombie: Bool { state == "Z" || state == "X" }
    /// A kernel thread (PF_KTHREAD): no user image, its cmdline and environ are always empty.
    var isKernelThread: Bool { flags & 0x0020_0000 != 0 }

    static func read(_ pid: Int32) -> ProcStat? {
        guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // Fields after the command: state(3) ppid(4) ... flags(9) ... starttime(22).
        guard fields.count > 19, let state = fields[0].first, let ppid = Int32(fields[1]),
              let flags = UInt32(fields[6]), let start = UInt64(fields[19])
        else { return nil }
        return ProcStat(pid: pid, state: state, ppid: ppid, startTime: start, flags: flags)
    }
}

enum Proc {
    /// Real uid of a process (first value of `Uid:` in /proc/<pid>/status).
    static func uid(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Uid:") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    /// The environment of a process, from /proc/<pid>/environ.
    static func environment(_ pid: Int32) -> [String: String]? {
        guard let data = execImageFile(pid, "environ") else { return nil }
        var env: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            if let eq = text.firstIndex(of: "=") { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
        }
        return env
    }

    static func cmdline(_ pid: Int32) -> [String]? {
        guard let data = execImageFile(pid, "cmdline") else { return nil }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// /proc/<pid>/cmdline or environ of a process that may be in the middle of execve.
    ///
    /// circusd answers as soon as the kernel releases the vfork'd parent, which happens
    /// inside execve before the new image's argument and environment areas are set up:
    /// for that instant both files read empty. Read again until they are not, while the
    /// process is a live user process (a zombie's and a kernel thread's are empty for good:
    /// waiting on those would stall a scan of /proc for seconds per kernel thread, blocking
    /// a thread of the test's cooperative pool all that time).
    private static func execImageFile(_ pid: Int32, _ name: String) -> Data? {
        let deadline = Date().addingTimeInterval(5)
        while true {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/\(name)") else { return nil }
            if !data.isEmpty || Date() > deadline { return data }
            guard let stat = ProcStat.read(pid), !stat.isZombie, !stat.isKernelThread else { return data }
            usleep(1000)
        }
    }

    /// Whether `pid` is a running (not zombie) process.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = ProcStat.read(pid) else { return false }
        return !stat.isZombie
    }
}

// MARK: - Events

/// One message seen on the pub/sub endpoint.
struct Event: Sendable, CustomStringConvertible {
    let topic: String
    let raw: [UInt8]
    let payload: JSON
    let at: ContinuousClock.Instant

    /// The last part of the topic (`spawn`, `kill`, ...).
    var name: String { topic.split(separator: ".").last.map(String.init) ?? topic }
    /// The watcher part of `watcher.<name>.<event>`.
    var watcher: String {
        guard topic.hasPrefix("watcher."), let dot = topic.lastIndex(of: ".") else { return "" }
        return String(topic[topic.index(topic.startIndex, offsetBy: 8)..<dot])
    }
    var pid: Int32? { payload["process_pid"]?.intValue.map { Int32($0) } }
    var keys: [String] { payload.objectValue.map { Array($0.keys) } ?? [] }

    var description: String { "\(topic) \(String(decoding: raw, as: UTF8.self))" }
}

/// Reads the SUB socket on its own thread and keeps every event, in arrival order.
final class EventRecorder: @unchecked Sendable {
    let endpoint: String
    let events = Locked<[Event]>([])
    private let stopFlag = Locked(false)
    private let finished = Locked(false)
    private let handshaken = Locked(false)
    /// Called on the reader thread for each event (pid tracking).
    private let onEvent: @Sendable (Event) -> Void

    /// `ZMQ_EVENT_HANDSHAKE_SUCCEEDED` (libzmq 4.3): the SUB socket's connection is up and
    /// its subscription goes out right after.
    private static let eventHandshakeSucceeded: Int32 = 0x1000

    init(endpoint: String, onEvent: @escaping @Sendable (Event) -> Void) throws {
        self.endpoint = endpoint
        self.onEvent = onEvent
        let ready = DispatchSemaphore(value: 0)
        let failure = Locked<(any Error)?>(nil)
        let thread = Thread { [self] in
            let subscriber: ZMQSocket
            let monitor: ZMQSocket
            do {
                subscriber = try ZMQSocket(context: .shared, kind: .sub)
                try subscriber.setLinger(milliseconds: 0)
                try subscriber.subscribe(prefix: [])
                let monitorEndpoint = "inproc://harness-sub-monitor-\(UInt(bitPattern: ObjectIdentifier(self).hashValue))"
                try subscriber.monitor(monitorEndpoint, events: Self.eventHandshakeSucceeded)
                monitor = try ZMQSocket(context: .shared, kind: .pair)
                try monitor.connect(monitorEndpoint)
                try subscriber.connect(endpoint)
            } catch {
                failure.withLock { $0 = error }
                ready.signal()
                finished.withLock { $0 = true }
                return
            }
            ready.signal()
            while !stopFlag.snapshot {
                while let frames = try? monitor.tryReceive() {
                    if let header = frames.first, header.count >= 2,
                       Int32(header.withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }) == Self.eventHandshakeSucceeded {
                        handshaken.withLock { $0 = true }
                    }
                }
                guard let frames = try? subscriber.receive(timeout: .milliseconds(20)), frames.count == 2 else { continue }
                let payload = (try? JSONParser.parse(frames[1])) ?? .null
                let event = Event(topic: String(decoding: frames[0], as: UTF8.self), raw: frames[1], payload: payload, at: .now)
                self.onEvent(event)
                self.events.withLock { $0.append(event) }
            }
            subscriber.close()
            monitor.close()
            finished.withLock { $0 = true }
        }
        thread.start()
        ready.wait()
        if let error = failure.snapshot { throw error }
    }

    /// Whether the SUB socket has completed its handshake with the publisher (its
    /// subscription is then on its way).
    var isConnected: Bool { handshaken.snapshot }

    var count: Int { events.withLock { $0.count } }

    func all(since mark: Int = 0) -> [Event] {
        events.withLock { Array($0.dropFirst(mark)) }
    }

    func stop() async {
        stopFlag.withLock { $0 = true }
        let deadline = ContinuousClock.now + .seconds(2)
        while !finished.snapshot, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

// MARK: - The daemon harness

/// One circusd with a fresh temporary directory, its control and pub/sub endpoints.
final class DaemonHarness: @unchecked Sendable {
    /// The temporary directory (short, under /tmp, so ipc paths stay well under 100 bytes).
    let dir: String
    let configPath: String
    let logPath: String
    /// circusd's stdout (and that of children without streams).
    let stdoutPath: String
    let controlEndpoint: String
    let pubsubEndpoint: String
    let process: Process
    private(set) var recorder: EventRecorder!
    /// Every pid learned from the daemon (events, list, stats), with its start time.
    private let seenPids = Locked<[Int32: UInt64?]>([:])
    private var tornDown = false
    private var gateHeld = false

    /// The circusd binary: `CIRCUSD_BIN`, else `<package root>/.build/debug/circusd`.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["CIRCUSD_BIN"], !path.isEmpty { return path }
        let here = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/circusd").path
    }

    /// Makes a fresh short directory under /tmp.
    static func makeTempDir() throws -> String {
        var template = Array("/tmp/ci-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard result != nil else { throw HarnessError("mkdtemp failed: errno \(errno)") }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Builds the INI: `%DIR%` is replaced by the temporary directory, and the endpoints
    /// are written first in `[circus]` (first definition wins).
    static func renderConfig(_ ini: String, dir: String, control: String, pubsub: String) -> String {
        let body = ini.replacingOccurrences(of: "%DIR%", with: dir)
        let endpoints = "endpoint = \(control)\npubsub_endpoint = \(pubsub)\n"
        var lines = body.components(separatedBy: "\n")
        if let index = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "[circus]" }) {
            lines.insert(endpoints, at: index + 1)
            return lines.joined(separator: "\n")
        }
        return "[circus]\n" + endpoints + "\n" + body
    }

    private init(dir: String, process: Process) {
        self.dir = dir
        self.configPath = dir + "/circus.ini"
        self.logPath = dir + "/circusd.log"
        self.stdoutPath = dir + "/stdout.log"
        self.controlEndpoint = "ipc://\(dir)/ctl.sock"
        self.pubsubEndpoint = "ipc://\(dir)/pub.sock"
        self.process = process
    }

    /// Writes the config, starts the SUB reader, launches circusd and waits for `list`.
    ///
    /// - Parameters:
    ///   - ini: the configuration; `%DIR%` stands for the temporary directory.
    ///   - arguments: extra circusd arguments placed before the config path.
    ///   - waitReady: wait until `list` answers (deadline 10 s).
    /// `environment` adds to the test process's environment for circusd (`%DIR%` substituted).
    static func launch(_ ini: String, arguments: [String] = [], files: [String: String] = [:],
                       environment: [String: String] = [:], waitReady: Bool = true) async throws -> DaemonHarness {
        await DaemonGate.shared.acquire()
        let dir: String
        do {
            dir = try makeTempDir()
        } catch {
            await DaemonGate.shared.release()
            throw error
        }
        let harness = DaemonHarness(dir: dir, process: Process())
        harness.gateHeld = true
        do {
            for (name, content) in files.sorted(by: { $0.key < $1.key }) {
                try harness.writeFile(name, content)
            }
            try harness.rewriteConfig(ini)
            harness.recorder = try EventRecorder(endpoint: harness.pubsubEndpoint) { [weak harness] event in
                // Only spawns name a process that is alive right now (a reaped pid may be reused).
                guard let harness, event.name == "spawn", let pid = event.pid else { return }
                harness.track(pid)
            }
            try harness.startProcess(arguments: arguments + [harness.configPath], environment: environment)
            if waitReady { try await harness.waitReady() }
        } catch {
            await harness.teardown()
            throw error
        }
        return harness
    }

    /// Writes `<dir>/<name>` (mode 0755, `%DIR%` substituted); a name ending in `/` makes a directory.
    func writeFile(_ name: String, _ content: String) throws {
        let path = dir + "/" + name
        if name.hasSuffix("/") {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            return
        }
        try content.replacingOccurrences(of: "%DIR%", with: dir).write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
    }

    /// (Re)writes the configuration file with this harness's endpoints.
    func rewriteConfig(_ ini: String) throws {
        try Self.renderConfig(ini, dir: dir, control: controlEndpoint, pubsub: pubsubEndpoint)
            .write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// A circusd started by `--daemon` (not our child): stopped and checked at teardown.
    let detachedPid = Locked<Int32?>(nil)

    private func startProcess(arguments: [String], environment: [String: String] = [:]) throws {
        if !environment.isEmpty {
            var merged = ProcessInfo.processInfo.environment
            for (key, value) in environment { merged[key] = value.replacingOccurrences(of: "%DIR%", with: dir) }
            process.environment = merged
        }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logPath), let out = FileHandle(forWritingAtPath: stdoutPath) else {
            throw HarnessError("cannot open \(logPath)")
        }
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments.map { $0.replacingOccurrences(of: "%DIR%", with: dir) }
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        process.standardError = log
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        try? out.close()
    }

    /// Polls `list` until it answers, then the SUB socket until its handshake with the
    /// publisher is done (ZeroMQ's slow joiner: it reconnects every 100 ms), then makes one
    /// more round trip: the subscription, sent right after the handshake, reaches circusd
    /// (whose one I/O thread reads its connections in order) before that request, so
    /// every event published from then on is seen. Deadline 10 s.
    func waitReady() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            if !process.isRunning {
                throw HarnessError("circusd exited (\(process.terminationStatus)) before answering:\n\(log)")
            }
            if let reply = try? await call("list", timeout: .milliseconds(500)), reply["status"] == "ok" { break }
            if ContinuousClock.now > deadline {
                throw HarnessError("circusd did not answer list within 10 s:\n\(log)\n--- its threads:\n\(threadStates())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        while !recorder.isConnected {
            if ContinuousClock.now > deadline { throw HarnessError("the SUB socket did not connect to \(pubsubEndpoint) within 10 s") }
            try await Task.sleep(for: .milliseconds(5))
        }
        _ = try await call("list")
    }

    /// The daemon's stderr so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the running daemon's log has `text`: its lines are written by a thread
    /// of their own, so one may come after the event or reply that followed what it tells.
    /// (Once the daemon has exited, its log is complete: read `log` directly.)
    func waitLog(_ text: String, timeout: Double = 5) async throws {
        try await waitUntil("the log line \(text)", timeout: timeout) { self.log.contains(text) }
    }
    /// The daemon's stdout so far.
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }

    var pid: Int32 { process.processIdentifier }

    /// Each of circusd's threads: name, state and what it waits in (`wchan`), for a
    /// daemon that stopped answering.
    func threadStates() -> String {
        let base = "/proc/\(pid)/task"
        let tids = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        return tids.sorted().map { tid -> String in
            func read(_ name: String) -> String {
                ((try? String(contentsOfFile: "\(base)/\(tid)/\(name)", encoding: .utf8)) ?? "?")
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let stat = read("stat")
            let state = stat.split(separator: ")").last?.split(separator: " ").first.map(String.init) ?? "?"
            return "\(tid) \(read("comm")) \(state) \(read("wchan"))"
        }.joined(separator: "\n")
    }

    // MARK: Pid tracking

    /// Remembers a live pid learned from the daemon (spawn event, list or stats reply) with
    /// its start time, so that it is recognised later and a recycled pid is never signalled.
    func track(_ pid: Int32) {
        guard pid > 0 else { return }
        let start = ProcStat.read(pid)?.startTime
        seenPids.withLock { seen in
            if let start {
                seen[pid] = start
            } else if seen[pid] == nil {
                seen[pid] = .some(nil)
            }
        }
    }

    /// The same process as the one tracked under this pid, if it still exists.
    func trackedStat(_ pid: Int32) -> ProcStat? {
        guard let entry = seenPids.withLock({ $0[pid] }), let start = entry,
              let stat = ProcStat.read(pid), stat.startTime == start
        else { return nil }
        return stat
    }

    /// Whether a leftover's parent makes it ours: init (orphaned when circusd went away),
    /// circusd itself, or another process circusd ran.
    func isOurs(_ stat: ProcStat) -> Bool {
        stat.ppid == 1 || stat.ppid == process.processIdentifier || stat.ppid == detachedPid.snapshot
            || trackedStat(stat.ppid) != nil
    }

    var trackedPids: [Int32] { seenPids.withLock { Array($0.keys) } }

    // MARK: Control channel

    /// Sends one request from a fresh DEALER and returns the parsed reply.
    ///
    /// - Throws: `HarnessError` on timeout or unparsable reply.
    @discardableResult
    func call(_ command: String, _ properties: JSON? = nil, id: JSON = "t", cast: Bool = false,
              timeout: Duration = .seconds(10)) async throws -> JSON {
        var request: JSONObject = ["id": id, "command": .string(command)]
        if let properties { request["properties"] = properties }
        if cast { request["msg_type"] = "cast" }
        let bytes = JSONWriter.serialize(.object(request))
        guard let reply = try await raw(bytes, timeout: timeout) else {
            if cast { return .null }
            throw HarnessError("no reply to \(String(decoding: bytes, as: UTF8.self)) within \(timeout)\n--- circusd log:\n\(log.suffix(3000))")
        }
        let json: JSON
        do {
            json = try JSONParser.parse(reply)
        } catch {
            throw HarnessError("unparsable reply \(String(decoding: reply, as: UTF8.self)): \(error)")
        }
        trackPids(in: json)
        return json
    }

    /// The bytes of a fire-and-forget (`cast`) request.
    static func castRequest(_ command: String, _ properties: JSON? = nil) -> [UInt8] {
        var request: JSONObject = ["id": "cast", "command": .string(command), "msg_type": "cast"]
        if let properties { request["properties"] = properties }
        return JSONWriter.serialize(.object(request))
    }

    /// Sends each of `messages` (a message is a list of frames), then a `numwatchers`
    /// request with id `probe`, all from one DEALER, and returns the first reply.
    ///
    /// The daemon reads one client's requests in order and answers synchronous ones at
    /// once, so the probe's answer comes first exactly when the messages before it got
    /// none: this proves silence without waiting for a timeout.
    func firstReply(after messages: [[[UInt8]]], timeout: Duration = .seconds(10)) async throws -> JSON {
        let endpoint = controlEndpoint
        let probe = JSONWriter.serialize(.object(["id": "probe", "command": "numwatchers"]))
        let frames = try await onThread { () -> [[UInt8]]? in
            let socket = try ZMQSocket(context: .shared, kind: .dealer)
            defer { socket.close() }
            try socket.connect(endpoint)
            for message in messages { try socket.send(message, timeout: .seconds(2)) }
            try socket.send([probe], timeout: .seconds(2))
            return try socket.receive(timeout: timeout)
        }
        guard let frames else { throw HarnessError("no reply to the probe within \(timeout)\n\(log.suffix(3000))") }
        guard frames.count == 1 else { throw HarnessError("a reply of \(frames.count) frames: \(frames)") }
        return try JSONParser.parse(frames[0])
    }

    /// Publishes an event on `watcher` and waits for it; returns its index in the events.
    ///
    /// `set` of `graceful_timeout` to its current value changes nothing but publishes
    /// `updated`, after every job queued before it on that watcher; the SUB socket
    /// receives in publishing order, so every event published before it has then been
    /// recorded. A test proves that something did not happen by looking before it.
    @discardableResult
    func eventBarrier(on watcher: String) async throws -> Int {
        let current = try await call("get", ["name": .string(watcher), "keys": ["graceful_timeout"]])
        guard let timeout = current["options"]?["graceful_timeout"] else {
            throw HarnessError("get graceful_timeout of \(watcher): \(current)")
        }
        let topic = "watcher.\(watcher.lowercased().replacingOccurrences(of: " ", with: "_")).updated"
        let mark = self.mark
        let reply = try await call("set", ["name": .string(watcher), "options": ["graceful_timeout": timeout],
                                           "waiting": true])
        guard reply["status"] == "ok" else { throw HarnessError("set for the event barrier: \(reply)") }
        try await waitEvent(topic, since: mark)
        let all = recorder.all()
        return all.indices.first { $0 >= mark && all[$0].topic == topic }!
    }

    /// Sends `bytes` as one frame from a fresh DEALER; the reply frame, or nil on timeout.
    func raw(_ bytes: [UInt8], timeout: Duration = .seconds(3)) async throws -> [UInt8]? {
        let endpoint = controlEndpoint
        return try await onThread {
            let connection = try CircusConnection(endpoint: endpoint, timeout: timeout)
            defer { connection.close() }
            do {
                return try connection.call(bytes)
            } catch let error as CircusClientError where error.code == .timedOut {
                return nil
            }
        }
    }

    /// Sends a multipart message from a fresh socket of `kind` (DEALER or REQ) and
    /// returns whatever comes back within `timeout`.
    func rawFrames(_ frames: [[UInt8]], kind: ZMQSocket.Kind = .dealer, timeout: Duration = .seconds(1))
        async throws -> [[UInt8]]?
    {
        let endpoint = controlEndpoint
        return try await onThread {
            let socket = try ZMQSocket(context: .shared, kind: kind)
            defer { socket.close() }
            try socket.connect(endpoint)
            try socket.send(frames, timeout: .seconds(2))
            return try socket.receive(timeout: timeout)
        }
    }

    private func trackPids(in json: JSON) {
        if let pids = json["pids"]?.arrayValue { for pid in pids { if let p = pid.intValue { track(Int32(p)) } } }
        // Not "stopped": those are dead, and their pids may already name someone else.
        for key in ["started", "kept"] {
            for pid in json[key]?.arrayValue ?? [] { if let p = pid.intValue { track(Int32(p)) } }
            for pid in json["info"]?[key]?.arrayValue ?? [] { if let p = pid.intValue { track(Int32(p)) } }
        }
    }

    /// `list <name>`: the watcher's active pids.
    func childPids(_ watcher: String) async throws -> [Int32] {
        let reply = try await call("list", ["name": .string(watcher)])
        guard let pids = reply["pids"]?.arrayValue else { throw HarnessError("list \(watcher): \(reply)") }
        return pids.compactMap { $0.intValue.map { Int32($0) } }
    }

    /// Children (as `stats` reports them) of a watcher's processes: the grandchildren.
    func statsChildren(_ watcher: String) async throws -> [Int32] {
        let reply = try await call("stats", ["name": .string(watcher)])
        var result: [Int32] = []
        for (_, info) in reply["info"]?.objectValue ?? [:] {
            for child in info["children"]?.arrayValue ?? [] {
                if let pid = child["pid"]?.intValue {
                    track(Int32(pid))
                    result.append(Int32(pid))
                }
            }
        }
        return result
    }

    func status(_ watcher: String) async throws -> String {
        let reply = try await call("status", ["name": .string(watcher)])
        return reply["status"]?.stringValue ?? "?"
    }

    // MARK: Waiting

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    func waitUntil(_ what: @autoclosure () -> String, timeout: Double = 5,
                   _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while true {
            if try await condition() { return }
            if ContinuousClock.now > deadline {
                throw HarnessError("timed out after \(timeout) s waiting for \(what())\n--- events:\n"
                    + recorder.all().suffix(40).map(\.description).joined(separator: "\n")
                    + "\n--- circusd log:\n\(log.suffix(3000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Index of the next event to arrive (for `events(since:)`).
    var mark: Int { recorder.count }

    func events(since mark: Int = 0) -> [Event] { recorder.all(since: mark) }

    /// The events from `mark` up to, not including, index `end` (an `eventBarrier`).
    func events(since mark: Int, before end: Int) -> [Event] {
        Array(recorder.all().prefix(end).dropFirst(mark))
    }

    /// Waits for an event matching `predicate` at or after `mark`.
    @discardableResult
    func waitEvent(since mark: Int = 0, timeout: Double = 5, _ what: String = "event",
                   _ predicate: @escaping (Event) -> Bool) async throws -> Event {
        var found: Event?
        try await waitUntil(what, timeout: timeout) {
            found = recorder.all(since: mark).first(where: predicate)
            return found != nil
        }
        return found!
    }

    /// Waits for an event with this exact topic (and pid, if given).
    @discardableResult
    func waitEvent(_ topic: String, pid: Int32? = nil, since mark: Int = 0, timeout: Double = 5) async throws -> Event {
        try await waitEvent(since: mark, timeout: timeout, "\(topic)\(pid.map { " pid \($0)" } ?? "")") {
            $0.topic == topic && (pid == nil || $0.pid == pid)
        }
    }

    /// Waits until `count` events match.
    @discardableResult
    func waitEvents(since mark: Int = 0, count: Int, timeout: Double = 5, _ what: String = "events",
                    _ predicate: @escaping (Event) -> Bool) async throws -> [Event] {
        var found: [Event] = []
        try await waitUntil("\(count) × \(what)", timeout: timeout) {
            found = recorder.all(since: mark).filter(predicate)
            return found.count >= count
        }
        return found
    }

    /// Waits until `list <watcher>` has `count` pids (returns them).
    @discardableResult
    func waitPids(_ watcher: String, count: Int, timeout: Double = 5,
                  where extra: @escaping ([Int32]) -> Bool = { _ in true }) async throws -> [Int32] {
        var pids: [Int32] = []
        try await waitUntil("\(count) pids in \(watcher)", timeout: timeout) {
            pids = try await childPids(watcher)
            return pids.count == count && extra(pids)
        }
        return pids
    }

    func waitStatus(_ watcher: String, _ status: String, timeout: Double = 5) async throws {
        try await waitUntil("\(watcher) \(status)", timeout: timeout) { try await self.status(watcher) == status }
    }

    /// Waits until a file exists and its trimmed content satisfies `accept`; returns it.
    @discardableResult
    func waitFile(_ path: String, timeout: Double = 5, _ accept: @escaping (String) -> Bool = { !$0.isEmpty })
        async throws -> String
    {
        var text = ""
        try await waitUntil("file \(path)", timeout: timeout) {
            text = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
            return accept(text)
        }
        return text
    }

    /// Waits for circusd to exit; true if it did within `timeout`.
    func waitExit(timeout: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while process.isRunning {
            if ContinuousClock.now > deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    // MARK: Teardown

    /// Quits the daemon (kill -9 after 10 s), checks that no process it ran is left alive
    /// or a zombie, kills leftovers by pid and removes the directory.
    func teardown(sourceLocation: SourceLocation = #_sourceLocation) async {
        guard !tornDown else { return }
        tornDown = true
        if process.processIdentifier > 0, !process.isRunning, process.terminationReason == .uncaughtSignal {
            Issue.record("circusd died of signal \(process.terminationStatus)\n\(log.suffix(3000))",
                         sourceLocation: sourceLocation)
        }
        if process.isRunning {
            // Learn the last pids before asking it to go.
            for name in (try? await call("list", timeout: .seconds(2)))?["watchers"]?.arrayValue ?? [] {
                if let name = name.stringValue { _ = try? await childPids(name) }
            }
            _ = try? await call("quit", ["waiting": true], timeout: .seconds(10))
            if !(await waitExit(timeout: 10)) {
                Issue.record("circusd did not exit within 10 s of quit; killing it\n\(log.suffix(2000))",
                             sourceLocation: sourceLocation)
                kill(pid, SIGKILL)
                _ = await waitExit(timeout: 5)
            }
        }
        if let detached = detachedPid.snapshot, Proc.isAlive(detached) {
            _ = try? await call("quit", ["waiting": true], timeout: .seconds(10))
            let deadline = ContinuousClock.now + .seconds(10)
            while Proc.isAlive(detached), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
            if Proc.isAlive(detached) {
                Issue.record("detached circusd \(detached) did not exit within 10 s of quit; killing it",
                             sourceLocation: sourceLocation)
                kill(detached, SIGKILL)
            }
        }
        await recorder?.stop()
        await checkNoLeftovers(sourceLocation: sourceLocation)
        if ProcessInfo.processInfo.environment["CIRCUSD_INTEG_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: dir)
        }
        if gateHeld {
            gateHeld = false
            await DaemonGate.shared.release()
        }
    }

    /// Every tracked pid must be gone: not alive, not a zombie. Leftovers are killed.
    func checkNoLeftovers(sourceLocation: SourceLocation = #_sourceLocation) async {
        // A zombie re-parented to init may need a moment to be reaped by it.
        let deadline = ContinuousClock.now + .seconds(2)
        var leftovers: [ProcStat] = []
        repeat {
            leftovers = trackedPids.compactMap { trackedStat($0) }.filter { isOurs($0) }
            if leftovers.isEmpty { return }
            try? await Task.sleep(for: .milliseconds(50))
        } while ContinuousClock.now < deadline
        for stat in leftovers {
            if stat.isZombie {
                Issue.record("pid \(stat.pid) is a zombie (parent \(stat.ppid)) after circusd exited",
                             sourceLocation: sourceLocation)
            } else {
                Issue.record("pid \(stat.pid) (\(Proc.cmdline(stat.pid) ?? [])) still alive after circusd exited; killed",
                             sourceLocation: sourceLocation)
                kill(stat.pid, SIGKILL)
            }
        }
    }
}

/// Runs `body` against a fresh daemon running `ini`, and always tears it down.
func withDaemon(_ ini: String, arguments: [String] = [], files: [String: String] = [:], waitReady: Bool = true,
                sourceLocation: SourceLocation = #_sourceLocation,
                _ body: (DaemonHarness) async throws -> Void) async throws {
    let harness = try await DaemonHarness.launch(ini, arguments: arguments, files: files, waitReady: waitReady)
    do {
        try await body(harness)
    } catch {
        await harness.teardown(sourceLocation: sourceLocation)
        throw error
    }
    await harness.teardown(sourceLocation: sourceLocation)
}

// MARK: - JSON conveniences for assertions

extension JSON {
    /// Keys of an object, in order.
    var keys: [String] { objectValue.map { Array($0.keys) } ?? [] }
    /// An array of integers as pids.
    var pids: [Int32] { arrayValue?.compactMap { $0.intValue.map { Int32($0) } } ?? [] }
}

/// The keys every ok reply has around its payload: `status, time, <payload...>, id`.
func okKeys(_ payload: [String]) -> [String] { ["status", "time"] + payload + ["id"] }
/// The keys of every error reply.
let errorKeys = ["status", "reason", "tb", "time", "errno", "id"]

/// Checks an error reply: errno, reason, envelope key order.
func expectError(_ reply: JSON, errno: Int64, reason: String? = nil, reasonContains: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(reply["status"] == "error", "\(reply)", sourceLocation: sourceLocation)
    #expect(reply["errno"] == .int(errno), "\(reply)", sourceLocation: sourceLocation)
    #expect(reply.keys == errorKeys, "\(reply)", sourceLocation: sourceLocation)
    if let reason { #expect(reply["reason"]?.stringValue == reason, "\(reply)", sourceLocation: sourceLocation) }
    if let reasonContains {
        #expect(reply["reason"]?.stringValue?.contains(reasonContains) == true, "\(reply)",
                sourceLocation: sourceLocation)
    }
}

/// Checks an ok reply with exactly these payload keys (in order).
func expectOK(_ reply: JSON, keys payload: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(reply["status"] == "ok", "\(reply)", sourceLocation: sourceLocation)
    #expect(reply.keys == okKeys(payload), "\(reply)", sourceLocation: sourceLocation)
    #expect(reply["time"]?.doubleValue != nil, "\(reply)", sourceLocation: sourceLocation)
}

/// Reads a whole file as text ("" if missing).
func readFile(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
