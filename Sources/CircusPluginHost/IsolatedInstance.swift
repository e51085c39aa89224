// One plugin instance run in a circus-plugin-host process, supervised from a thread of
// its own (an event loop over the host's socket and pidfd, and the ping and restart
// timers). The plugin sees the same ABI as in process; the daemon sees the same instance
// (its commands, hooks, events and calls go through the same PluginBus).
//
// Supervision: a host that dies (a crash in the plugin), or whose plugin thread does not
// answer a ping within `pingTimeout` (a hang: it is killed), is restarted after a delay
// that doubles with each consecutive failure. What the dead host had registered is
// withdrawn at once, and its pending requests fail with CIRCUS_E_CANCELLED, so no caller
// waits on it. A host that fails its plugin's create or start is not restarted: that is
// the plugin refusing its config.
//
// Threads: `Shared` (a mutex) holds what other threads read or queue; everything else is
// touched only on the instance's loop thread.

import CCircusPlugin
import CCircusPluginLoader
import CircusProtocol
import CircusSystem
import DequeModule
import Glibc
import Logging
import OrderedCollections
import Synchronization

final class IsolatedInstance: HostedInstance, @unchecked Sendable {
    private struct Shared {
        var lifecycle: PluginState = .loaded
        var failure: String?
        /// A host process is up and its frames are accepted.
        var connected = false
        var pid: Int32?
        var restarts = 0
        /// The current host's subscriptions, by its handle.
        var subscriptions: [UInt64: String] = [:]
        /// Daemon hook serial -> the current host's hook handle.
        var hookHandles: [UInt64: UInt64] = [:]
        /// Frames not yet taken by the loop thread for writing.
        var outbox = Deque<(bytes: [UInt8], isEvent: Bool)>()
        var queuedEvents = 0
        var flushPosted = false
        /// Events were queued with their flush left for `wake()`.
        var flushDeferred = false
        /// Events dropped here (outbox full) since the last report.
        var localDropsSinceReport: UInt64 = 0
        /// Events dropped by earlier hosts and here, and by the current host.
        var droppedBefore: UInt64 = 0
        var hostDropped: UInt64 = 0
        var hostDepth = 0
        /// The loop thread has ended (after a final stop): nothing posted to it runs.
        var finished = false
    }

    let name: String
    let serial: UInt64
    let library: PluginLibrary
    let host: PluginHost
    private let shared = Mutex(Shared())
    private let loop: EventLoop
    private let remote: EventLoop.Remote
    private let settings: PluginHost.Configuration

    // Loop-thread state.
    private var monitor: ChildMonitor!
    private var process: SpawnedProcess?
    private var socket: Int32 = -1
    private var socketRegistration: EventLoop.Registration?
    private var wantsWritable = false
    private var assembler = FrameAssembler()
    /// The host's stdout and stderr, and what was read of a line not finished yet.
    private var outputFD: Int32 = -1
    private var outputRegistration: EventLoop.Registration?
    private var outputLine: [UInt8] = []
    private var writeBuffer: [UInt8] = []
    private var writeOffset = 0
    /// Bumped for each host process: a daemon command's result for an earlier host is dropped.
    private var generation: UInt64 = 0
    private var config: JSONObject = [:]
    private var stateDirectory = ""
    private var startCompletion: (@Sendable (Result<Void, PluginInstanceError>) -> Void)?
    private var reconfigureCompletion: (@Sendable (Result<Void, PluginInstanceError>) -> Void)?
    /// After this host stops, start another with the new config (reconfigure by recreating).
    private var relaunchCompletion: (@Sendable (Result<Void, PluginInstanceError>) -> Void)?
    private var stopCompletions: [@Sendable () -> Void] = []
    private var stopping = false
    private var finalStop = false
    /// The current host's plugin started (create and start succeeded) at least once.
    private var hostStarted = false
    private var startedAt = 0.0
    private var giveUp = false
    private var hungKilled = false
    private var commands: [UInt64: String] = [:]
    private var hooks: [UInt64: UInt64] = [:]
    private var pingTimer: EventLoop.TimerID?
    private var awaitingPongSince: Double?
    private var pingSequence: UInt64 = 0
    private var restartTimer: EventLoop.TimerID?
    private var consecutiveFailures = 0
    private var thread: OSThread?

    init(name: String, serial: UInt64, library: PluginLibrary, host: PluginHost) throws(SystemError) {
        self.name = name
        self.serial = serial
        self.library = library
        self.host = host
        settings = host.configuration
        loop = try EventLoop()
        remote = loop.remote
        monitor = ChildMonitor(loop: loop)
        nonisolated(unsafe) let loop = self.loop
        thread = try OSThread.start(name: "iso:\(name)") { loop.run() }
    }

    /// Runs `job` on the loop thread; returns false (and drops it) once the thread ended.
    /// Checked and posted under the lock that `finish` takes, so a job is never posted
    /// behind the loop's last turn.
    @discardableResult
    private func onLoop(_ job: @escaping @Sendable () -> Void) -> Bool {
        shared.withLock { s in
            guard !s.finished else { return false }
            remote.post(job)
            return true
        }
    }

    private func log(_ level: Logger.Level, _ message: String) { host.bus.log(level, instance: name, message: message) }

    // MARK: Introspection (any thread)

    var lifecycle: PluginState { shared.withLock { $0.lifecycle } }
    var failure: String? { shared.withLock { $0.failure } }
    var queueDepth: Int { shared.withLock { $0.hostDepth + $0.queuedEvents } }
    var droppedEvents: UInt64 { shared.withLock { $0.droppedBefore + $0.hostDropped } }
    var isolation: (restarts: Int, pid: Int32?)? { shared.withLock { ($0.restarts, $0.pid) } }

    // MARK: From the daemon (any thread; only queue)

    func wants(_ topic: String) -> Bool {
        shared.withLock { s in
            s.connected && s.lifecycle == .started && s.subscriptions.values.contains { topic.hasPrefix($0) }
        }
    }

    func enqueueEvent(topic: String, payload: LentBytes, wake: Bool) -> Bool {
        var frame = FrameWriter(CIRCUS_FRAME_EVENT)
        frame.string(topic)
        payload.withBytes { frame.string($0) }
        let bytes = frame.frame
        // The host process reads its socket all the time (its queue is where events wait
        // and are dropped); this bound matters only while it does not read at all (a
        // host being killed as hung).
        let capacity = max(settings.queueCapacity, 4096)
        var newlyDeferred = false
        let post = shared.withLock { s -> Bool in
            guard s.connected else { return false }
            if s.queuedEvents >= capacity, let oldest = s.outbox.firstIndex(where: { $0.isEvent }) {
                s.outbox.remove(at: oldest)
                s.queuedEvents -= 1
                s.localDropsSinceReport += 1
                s.droppedBefore += 1
            }
            s.outbox.append((bytes, true))
            s.queuedEvents += 1
            if !wake {
                newlyDeferred = !s.flushDeferred
                s.flushDeferred = true
                return false
            }
            return Self.claimFlush(&s)
        }
        if post { onLoop { [self] in flush() } }
        return newlyDeferred
    }

    func wake() {
        let post = shared.withLock { s -> Bool in
            guard s.flushDeferred else { return false }
            s.flushDeferred = false
            return s.connected && Self.claimFlush(&s)
        }
        if post { onLoop { [self] in flush() } }
    }

    func enqueueRequest(
        name requestName: String, handle: UInt64?, arguments: JSONObject, deadline: Double,
        complete: @escaping @Sendable (RequestOutcome) -> Void
    ) {
        let token = PendingRequests.add(instance: serial, complete: complete)
        enum Verdict { case queued(post: Bool), notRunning, noHook }
        let verdict = shared.withLock { s -> Verdict in
            guard s.connected, s.lifecycle == .started else { return .notRunning }
            var hookHandle: UInt64 = 0
            if let handle {
                guard let mapped = s.hookHandles[handle] else { return .noHook }
                hookHandle = mapped
            }
            var frame = FrameWriter(CIRCUS_FRAME_REQUEST)
            frame.integer(token)
            frame.integer(hookHandle)
            frame.string(requestName)
            frame.json(arguments)
            s.outbox.append((frame.frame, false))
            return .queued(post: Self.claimFlush(&s))
        }
        switch verdict {
        case .notRunning:
            PendingRequests.finish(token, .failed(PluginRequestError(.cancelled, "plugin \(name) is not running")))
        case .noHook:
            PendingRequests.finish(token, .failed(PluginRequestError(.notFound, "plugin \(name) no longer handles \(requestName)")))
        case .queued(let post):
            if post { onLoop { [self] in flush() } }
            let reason = "plugin \(name) did not answer \(requestName) within \(Self.format(deadline)) s"
            host.clock.after(deadline) { PendingRequests.expire(token, reason: reason) }
        }
    }

    private static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }

    /// Marks a flush as posted; returns whether the caller must post it.
    private static func claimFlush(_ s: inout Shared) -> Bool {
        if s.flushPosted { return false }
        s.flushPosted = true
        return true
    }

    /// Queues a frame for the current host (loop thread or any).
    private func send(_ frame: FrameWriter) {
        let post = shared.withLock { s -> Bool in
            guard s.connected else { return false }
            s.outbox.append((frame.frame, false))
            return Self.claimFlush(&s)
        }
        if post { onLoop { [self] in flush() } }
    }

    // MARK: Lifecycle

    func begin(config: JSONObject, stateDirectory: String,
               completion: @escaping @Sendable (Result<Void, PluginInstanceError>) -> Void) {
        onLoop { [self] in
            self.config = config
            self.stateDirectory = stateDirectory
            startCompletion = completion
            launch()
        }
    }

    func end(final: Bool, completion: @escaping @Sendable () -> Void) {
        let posted = onLoop { [self] in
            if final { finalStop = true }
            if process != nil {
                stopCompletions.append(completion)
                if !stopping {
                    stopping = true
                    send(FrameWriter(CIRCUS_FRAME_STOP))
                }
                return
            }
            // No host running: between restarts, or failed.
            if let timer = restartTimer { loop.cancel(timer) }
            restartTimer = nil
            shared.withLock { s in if s.lifecycle != .failed { s.lifecycle = .stopped } }
            completion()
            if finalStop { finish() }
        }
        if !posted { completion() }
    }

    func reconfigure(config: JSONObject, stateDirectory: String,
                     completion: @escaping @Sendable (Result<Void, PluginInstanceError>) -> Void) {
        let posted = onLoop { [self] in
            guard process != nil, !stopping, lifecycle == .started, reconfigureCompletion == nil else {
                completion(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_INVALID, message: "not started")))
                return
            }
            if library.canReconfigure {
                reconfigureCompletion = { [self] result in
                    if case .success = result { self.config = config }  // called on the loop thread
                    completion(result)
                }
                var frame = FrameWriter(CIRCUS_FRAME_RECONFIGURE)
                frame.json(config)
                send(frame)
            } else {
                // Destroy and create again: this host stops, a new one starts with the config.
                self.config = config
                self.stateDirectory = stateDirectory
                relaunchCompletion = completion
                stopping = true
                send(FrameWriter(CIRCUS_FRAME_STOP))
            }
        }
        if !posted {
            completion(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_INVALID, message: "not started")))
        }
    }

    // MARK: The host process (loop thread)

    private func launch() {
        restartTimer = nil
        generation &+= 1
        hostStarted = false
        hungKilled = false
        awaitingPongSince = nil
        let extra = ["--instance", name, "--capacity", String(settings.queueCapacity),
                     "--slow-ms", String(Int(settings.slowCallbackSeconds * 1000))]
            + (host.bus.requestRefusal.map { ["--refuse-requests", $0] } ?? [])
        let started: IsolatedHostProcess.Started
        do {
            started = try IsolatedHostProcess.start(
                executable: settings.pluginHostExecutable, library: library.paths, extra: extra, captureOutput: true)
            do {
                try attach(started)
            } catch {
                // Not watched: end it here rather than leave it running unsupervised.
                detach(started)
                throw error
            }
        } catch {
            // Nothing ran: no host, nothing registered that needs undoing but the process.
            let message = "cannot run the plugin host \(settings.pluginHostExecutable): \(error)"
            if let completion = startCompletion {
                startCompletion = nil
                shared.withLock { s in
                    s.lifecycle = .failed
                    s.failure = message
                }
                completion(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_INTERNAL, message: message)))
            } else {
                log(.error, "plugin \(name): \(message)")
                scheduleRestart(reason: message)
            }
            return
        }
        process = started.process
        socket = started.socket
        assembler = FrameAssembler()
        writeBuffer = []
        writeOffset = 0
        shared.withLock { s in
            s.connected = true
            s.pid = started.process.pid
            s.lifecycle = .loaded
            s.hostDepth = 0
            s.hostDropped = 0
        }
        var start = FrameWriter(CIRCUS_FRAME_START)
        start.json(config)
        start.string(stateDirectory)
        send(start)
        armPing()
    }

    /// Watches a new host's exit, socket and output on the loop.
    private func attach(_ started: IsolatedHostProcess.Started) throws {
        if let output = started.output {
            outputRegistration = try loop.register(fd: output, events: .readable) { [self] _ in readOutput() }
            outputFD = output
        }
        socketRegistration = try loop.register(fd: started.socket, events: .readable) { [self] events in
            socketReady(events)
        }
        try monitor.watch(started.process) { [self] _, status in hostExited(status) }
    }

    /// Undoes a failed `attach`: the host is killed and reaped, its descriptors closed.
    private func detach(_ started: IsolatedHostProcess.Started) {
        if let registration = outputRegistration { loop.unregister(registration) }
        if let registration = socketRegistration { loop.unregister(registration) }
        outputRegistration = nil
        socketRegistration = nil
        outputFD = -1
        _ = try? started.process.signal(SIGKILL)
        _ = try? started.process.waitForExit()
        started.process.close()
        close(started.socket)
        if let output = started.output { close(output) }
    }

    private func armPing() {
        pingTimer = loop.schedule(after: PluginHost.Configuration.seconds(settings.isolation.pingInterval)) { [self] in ping() }
    }

    private func ping() {
        pingTimer = nil
        guard let process else { return }
        let now = EventLoop.monotonicNow()
        if let since = awaitingPongSince {
            if now - since >= PluginHost.Configuration.seconds(settings.isolation.pingTimeout), !hungKilled {
                hungKilled = true
                log(.error, "plugin \(name) did not answer a ping within \(Self.format(PluginHost.Configuration.seconds(settings.isolation.pingTimeout))) s: "
                    + "its host process (pid \(process.pid)) is hung; killing it")
                _ = try? process.signal(SIGKILL)
                return
            }
        } else {
            awaitingPongSince = now
            pingSequence += 1
            var frame = FrameWriter(CIRCUS_FRAME_PING)
            frame.integer(pingSequence)
            send(frame)
        }
        armPing()
    }

    private func socketReady(_ events: EventLoop.Events) {
        if events.contains(.writable) { flush() }
        guard events.contains(.readable) || events.contains(.hangup) || events.contains(.error) else { return }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while socket >= 0 {
            let n = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
            if n > 0 {
                buffer.withUnsafeBytes { assembler.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if n < buffer.count { break }
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { break }
            // End of stream (or an error): the host is gone or going; its pidfd says how.
            closeSocket()
            break
        }
        do {
            while var frame = try assembler.next() { handle(&frame) }
        } catch {
            log(.error, "plugin \(name): its host process sent a malformed frame; killing it")
            _ = try? process?.signal(SIGKILL)
            closeSocket()
        }
    }

    /// Logs what the plugin wrote to stdout or stderr, a line at a time; at the end of
    /// the stream (the host exited), the rest.
    private func readOutput() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while outputFD >= 0 {
            let n = buffer.withUnsafeMutableBytes { read(outputFD, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN { return }
            if n <= 0 {
                if !outputLine.isEmpty { logOutput(outputLine) }
                outputLine = []
                if let registration = outputRegistration { loop.unregister(registration) }
                outputRegistration = nil
                close(outputFD)
                outputFD = -1
                return
            }
            for byte in buffer[0..<n] {
                if byte == UInt8(ascii: "\n") {
                    logOutput(outputLine)
                    outputLine = []
                } else if outputLine.count < 4096 {
                    outputLine.append(byte)
                }
            }
        }
    }

    private func logOutput(_ line: [UInt8]) {
        log(.warning, "plugin \(name) wrote to its output: \(String(decoding: line, as: UTF8.self))")
    }

    private func closeSocket() {
        if let registration = socketRegistration { loop.unregister(registration) }
        socketRegistration = nil
        if socket >= 0 { close(socket) }
        socket = -1
        wantsWritable = false
    }

    /// Writes what is queued, as far as the socket takes it.
    private func flush() {
        while socket >= 0 {
            if writeOffset == writeBuffer.count {
                let (frames, drops) = shared.withLock { s -> ([[UInt8]], UInt64) in
                    let frames = s.outbox.map(\.bytes)
                    s.outbox.removeAll()
                    s.queuedEvents = 0
                    s.flushPosted = false
                    defer { s.localDropsSinceReport = 0 }
                    return (frames, frames.isEmpty ? s.localDropsSinceReport : 0)
                }
                if drops > 0 { host.reportDrops(instance: name, count: drops) }
                writeBuffer = frames.flatMap { $0 }
                writeOffset = 0
                if writeBuffer.isEmpty { break }
            }
            // MSG_NOSIGNAL: a host that died must be an EPIPE here, never a SIGPIPE that ends
            // whatever process embeds the plugin host (circusd ignores SIGPIPE, a test
            // process or another embedder need not).
            let n = writeBuffer.withUnsafeBytes { raw in
                Glibc.send(socket, raw.baseAddress! + writeOffset, raw.count - writeOffset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                writeOffset += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                setWritableInterest(true)
                return
            }
            // EPIPE: the host is gone; its exit is handled through the pidfd.
            return
        }
        setWritableInterest(false)
    }

    private func setWritableInterest(_ wanted: Bool) {
        guard wanted != wantsWritable, let registration = socketRegistration else { return }
        wantsWritable = wanted
        try? loop.modify(registration, events: wanted ? [.readable, .writable] : .readable)
    }

    // MARK: Frames from the host (loop thread)

    private func handle(_ frame: inout FrameReader) {
        switch frame.type {
        case CIRCUS_FRAME_HELLO.rawValue:
            let said = IsolatedHostProcess.readHello(&frame)
            if said.name != library.name {
                giveUp = true
                fail("its library \(library.path) now holds plugin \(said.name), not \(library.name)")
                _ = try? process?.signal(SIGKILL)
            }
        case CIRCUS_FRAME_LOAD_FAILED.rawValue:
            _ = frame.integer()
            giveUp = true
            fail(frame.string())
        case CIRCUS_FRAME_STARTED.rawValue:
            let status = frame.status(), message = frame.string()
            started(status: status, message: message)
        case CIRCUS_FRAME_LOG.rawValue:
            let level = frame.status()
            log(circusLogLevel(level), frame.string())
        case CIRCUS_FRAME_PUBLISH.rawValue:
            let topic = frame.string()
            if let payload = frame.json() { host.bus.publish(EventMessage(topic: topic, payload: payload)) }
        case CIRCUS_FRAME_SUBSCRIBE.rawValue:
            let handle = frame.integer(), prefix = frame.string()
            shared.withLock { $0.subscriptions[handle] = prefix }
        case CIRCUS_FRAME_UNSUBSCRIBE.rawValue:
            let handle = frame.integer()
            _ = shared.withLock { $0.subscriptions.removeValue(forKey: handle) }
        case CIRCUS_FRAME_REGISTER_COMMAND.rawValue:
            let handle = frame.integer(), command = frame.string(), meta = frame.json() ?? [:], flags = frame.integer()
            guard host.claimCommand(command, for: self) else {
                log(.error, "plugin \(name) tried to register the command \"\(command)\" twice")
                return
            }
            commands[handle] = command
            let readOnly = flags & UInt64(1) != 0  // CIRCUS_COMMAND_F_READ_ONLY
            host.bus.registerCommand(PluginCommand(
                name: command, instance: name, meta: meta, access: readOnly ? .readOnly : .control))
        case CIRCUS_FRAME_UNREGISTER_COMMAND.rawValue:
            if let command = commands.removeValue(forKey: frame.integer()) { withdrawCommand(command) }
        case CIRCUS_FRAME_REGISTER_HOOK.rawValue:
            let handle = frame.integer(), pattern = frame.string(), hookName = frame.string()
            let id = host.nextHandle()
            hooks[handle] = id
            shared.withLock { $0.hookHandles[id] = handle }
            host.claimHook(id, for: self)
            host.bus.registerHook(PluginHook(
                id: PluginHookID(instance: name, serial: id), watcherPattern: pattern, hookName: hookName))
        case CIRCUS_FRAME_UNREGISTER_HOOK.rawValue:
            if let id = hooks.removeValue(forKey: frame.integer()) { withdrawHook(id) }
        case CIRCUS_FRAME_REPLY.rawValue:
            let token = frame.integer(), status = frame.status(), json = frame.json() ?? [:]
            // Only this instance's requests: a host cannot answer another plugin's.
            _ = PendingRequests.answer(token, .answered(status: status, json: json), from: serial)
        case CIRCUS_FRAME_CALL.rawValue:
            let id = frame.integer(), command = frame.string(), arguments = frame.json() ?? [:]
            let generation = self.generation
            host.bus.runCommand(command, arguments: arguments, from: name) { [self] result in
                let (status, json) = PluginInstance.callResult(result)
                onLoop { [self] in
                    guard self.generation == generation, process != nil else { return }
                    var done = FrameWriter(CIRCUS_FRAME_CALL_DONE)
                    done.integer(id)
                    done.status(status)
                    done.json(json)
                    send(done)
                }
            }
        case CIRCUS_FRAME_DROPPED.rawValue:
            host.reportDrops(instance: name, count: frame.integer())
        case CIRCUS_FRAME_STATS.rawValue:
            let depth = frame.integer(), dropped = frame.integer()
            shared.withLock { s in
                s.hostDepth = Int(depth)
                s.hostDropped = dropped
            }
        case CIRCUS_FRAME_PONG.rawValue:
            _ = frame.integer()
            let depth = frame.integer(), dropped = frame.integer()
            awaitingPongSince = nil
            shared.withLock { s in
                s.hostDepth = Int(depth)
                s.hostDropped = dropped
            }
        case CIRCUS_FRAME_RECONFIGURED.rawValue:
            let status = frame.status(), message = frame.string()
            let completion = reconfigureCompletion
            reconfigureCompletion = nil
            completion?(status == CIRCUS_OK ? .success(())
                : .failure(PluginInstanceError(instance: name, status: status, message: message)))
        default:
            break  // STOPPED, and frames of a newer host: the exit follows
        }
    }

    private func started(status: Int32, message: String) {
        if status == CIRCUS_OK {
            let restarted = shared.withLock { s -> Bool in
                s.lifecycle = .started
                return s.restarts > 0 && startCompletion == nil
            }
            hostStarted = true
            startedAt = EventLoop.monotonicNow()
            if restarted { log(.notice, "plugin \(name) restarted in a new host process (pid \(process?.pid ?? 0))") }
            if let completion = startCompletion {
                startCompletion = nil
                completion(.success(()))
            }
            return
        }
        // The plugin refused to start: not something a restart fixes. The host exits.
        giveUp = true
        fail(message, status: status, afterRestart: "failed to start again after a restart: \(message); it stays stopped")
    }

    /// Fails the instance for good: the first start's completion gets the message, or it
    /// is logged.
    private func fail(_ message: String, status: Int32 = CIRCUS_E_INTERNAL, afterRestart: String? = nil) {
        shared.withLock { s in
            s.lifecycle = .failed
            s.failure = message
        }
        if let completion = startCompletion {
            startCompletion = nil
            completion(.failure(PluginInstanceError(instance: name, status: status, message: message)))
        } else {
            log(.error, "plugin \(name)" + (afterRestart.map { " \($0)" } ?? ": \(message)"))
        }
    }

    private func withdrawCommand(_ command: String) {
        host.releaseCommand(command)
        host.bus.unregisterCommand(named: command)
    }

    private func withdrawHook(_ id: UInt64) {
        _ = shared.withLock { $0.hookHandles.removeValue(forKey: id) }
        host.releaseHook(id)
        host.bus.unregisterHook(PluginHookID(instance: name, serial: id))
    }

    // MARK: The host's end (loop thread)

    private func hostExited(_ status: ProcessExitStatus) {
        // Frames it sent before it ended (its last replies, a start failure) count: the
        // exit may be seen before the socket's last bytes are read.
        if socket >= 0 { socketReady(.readable) }
        let pid = process?.pid ?? 0
        process = nil
        // What it wrote last (a runtime's fatal error, say) comes before the news of its end.
        readOutput()
        if outputFD >= 0 {
            // Still open elsewhere (a process the plugin started): not ours to wait for.
            if let registration = outputRegistration { loop.unregister(registration) }
            outputRegistration = nil
            close(outputFD)
            outputFD = -1
            outputLine = []
        }
        closeSocket()
        if let timer = pingTimer { loop.cancel(timer) }
        pingTimer = nil
        generation &+= 1
        shared.withLock { s in
            s.connected = false
            s.pid = nil
            s.subscriptions = [:]
            s.outbox.removeAll()
            s.queuedEvents = 0
            s.flushPosted = false
            s.droppedBefore += s.hostDropped
            s.hostDropped = 0
            s.hostDepth = 0
        }
        for (_, command) in commands.sorted(by: { $0.key < $1.key }) { withdrawCommand(command) }
        for (_, id) in hooks.sorted(by: { $0.key < $1.key }) { withdrawHook(id) }
        commands = [:]
        hooks = [:]

        let crashed = !stopping || !(status == .exited(0))
        let what = hungKilled ? "was hung and was killed" : "\(status)"
        let reason = stopping && !crashed
            ? "plugin \(name) was stopped before it answered"
            : "plugin \(name)'s host process (pid \(pid)) \(what) before it answered"
        PendingRequests.cancelAll(instance: serial, reason: reason)
        if let completion = reconfigureCompletion {
            reconfigureCompletion = nil
            completion(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_CANCELLED, message: reason)))
        }

        if stopping {
            stopping = false
            if let relaunch = relaunchCompletion, !finalStop, stopCompletions.isEmpty {
                relaunchCompletion = nil
                startCompletion = relaunch
                launch()
                return
            }
            if let relaunch = relaunchCompletion {
                relaunchCompletion = nil
                relaunch(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_CANCELLED, message: "stopped")))
            }
            shared.withLock { s in if s.lifecycle != .failed { s.lifecycle = .stopped } }
            let completions = stopCompletions
            stopCompletions = []
            for completion in completions { completion() }
            if finalStop { finish() }
            return
        }
        if giveUp || lifecycle == .failed { return }
        let description = "its host process (pid \(pid)) \(what)"
        if !hostStarted, let completion = startCompletion {
            // It never started: the plugin's create or start crashes, which a restart
            // would only repeat.
            startCompletion = nil
            let message = "\(description) while the plugin was starting"
            shared.withLock { s in
                s.lifecycle = .failed
                s.failure = message
            }
            completion(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_INTERNAL, message: message)))
            return
        }
        scheduleRestart(reason: description)
    }

    /// Ends the loop thread (after a final stop).
    private func finish() {
        shared.withLock { $0.finished = true }
        // After the jobs posted before the flag was set (they find no host and complete).
        nonisolated(unsafe) let loop = self.loop
        remote.post { loop.stop() }
    }

    private func scheduleRestart(reason: String) {
        if hostStarted && EventLoop.monotonicNow() - startedAt >= PluginHost.Configuration.seconds(settings.isolation.stableAfter) {
            consecutiveFailures = 0
        }
        let delay = min(PluginHost.Configuration.seconds(settings.isolation.restartDelay) * pow(2, Double(consecutiveFailures)),
                        PluginHost.Configuration.seconds(settings.isolation.maximumRestartDelay))
        consecutiveFailures += 1
        let restarts = shared.withLock { s -> Int in
            s.lifecycle = .loaded
            s.failure = reason
            s.restarts += 1
            return s.restarts
        }
        log(.error, "plugin \(name): \(reason); restarting it in \(Self.format(delay)) s (restart \(restarts))")
        restartTimer = loop.schedule(after: delay) { [self] in launch() }
    }
}
