// Circus calls its hooks, Python callables, inside circusd. We run them in one long-lived
// Python helper, started by the first hook call of a configuration that names one: the
// helper imports each hook once and calls it in a thread of its own, so a slow hook holds
// up only the watcher that waits for it. One thread of ours writes the requests and reads
// the answers; nothing here runs on the supervisor's loop thread.

import CircusConfig
import CircusHooks
import CircusProtocol
import CircusStreams
import CircusSystem
import Glibc
import OrderedCollections
import Synchronization

/// Calls Python hooks in a helper process.
final class PythonHookBridge: Sendable {
    /// One hook call.
    struct Call: Sendable {
        /// The callable, as the configuration names it (`pkg.mod.fn` or `pkg.mod:fn`).
        var hook: String
        /// `before_start`, `after_spawn`, ...
        var hookName: String
        /// What the hook's `watcher` proxy offers: `name`, `numprocesses`, `processes`
        /// (`[{"wid", "pid"}]`), `options`, `env`.
        var watcher: JSONObject
        /// What the `arbiter` proxy offers: `watchers` (the names).
        var arbiter: JSONObject
        /// Circus's extra keyword arguments (`pid`, `signum`, ...).
        var extra: JSONObject
        /// How long the hook may run.
        var deadline: Duration
        /// Import the hook's module anew before the call (a `set` named the hook since).
        var reload = false
    }

    /// How a call ended: the hook's result as a boolean (None is False, as in Circus), or
    /// why it has none (it raised, the helper could not run, the deadline passed).
    typealias Outcome = HookOutcome

    private struct Pending {
        var deadline: ContinuousClock.Instant
        var completion: @Sendable (Outcome) -> Void
    }

    private struct State: ~Copyable {
        var process: SpawnedProcess?
        var toHelper: Int32 = -1
        var fromHelper: Int32 = -1
        var outbox: [UInt8] = []
        var pending: [UInt64: Pending] = [:]
        var nextID: UInt64 = 1
        var thread: OSThread?
        var stopping = false
    }

    private let runtime: PythonRuntime
    private let endpoint: String
    private let state = Mutex(State())
    /// Wakes the bridge thread when a request is queued or circusd stops (a self-pipe:
    /// the bridge thread polls the read end, callers write a byte to the other).
    private let wake: Int32
    private let wakeWriter: Int32

    /// A bridge that runs the hooks with `runtime`; their `arbiter.call` reaches circusd
    /// at `endpoint`.
    init(runtime: PythonRuntime, endpoint: String) {
        self.runtime = runtime
        self.endpoint = endpoint
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            }
        }
        wake = fds[0]
        wakeWriter = fds[1]
    }

    deinit {
        close(wake)
        close(wakeWriter)
    }

    private func wakeUp() {
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
    }

    /// Calls a hook; `completion` runs once, on the bridge's thread.
    func call(_ call: Call, completion: @escaping @Sendable (Outcome) -> Void) {
        var message: JSONObject = [
            "id": .null, "hook": .string(call.hook), "hook_name": .string(call.hookName),
            "watcher": .object(call.watcher), "arbiter": .object(call.arbiter), "extra": .object(call.extra),
            "reload": .bool(call.reload),
        ]
        let failure: String? = state.withLock { state in
            if state.stopping { return "circusd is stopping" }
            if state.process == nil, let problem = start(&state) { return problem }
            let id = state.nextID
            state.nextID += 1
            message["id"] = .int(Int64(id))
            state.outbox += Array(JSONWriter.string(.object(message)).utf8) + [0x0A]
            state.pending[id] = Pending(deadline: .now + call.deadline, completion: completion)
            return nil
        }
        if let failure {
            completion(.failed(failure))
            return
        }
        wakeUp()
    }

    /// Stops the helper (closing its stdin ends it) and fails what is still pending.
    func shutdown() {
        let thread = state.withLock { state in
            state.stopping = true
            return state.thread
        }
        wakeUp()
        thread?.join()
    }

    // MARK: - The helper process

    /// Starts the helper and the bridge thread; returns why it could not.
    private func start(_ state: inout State) -> String? {
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        guard pipe(&input) == 0 else { return "cannot create a pipe: \(String(cString: strerror(errno)))" }
        guard pipe(&output) == 0 else {
            close(input[0]); close(input[1])
            return "cannot create a pipe: \(String(cString: strerror(errno)))"
        }
        for fd in input + output { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var request = runtime.request(["-c", PythonHookScript.source, endpoint])
        request.stdin = .fd(input[0])
        request.stdout = .fd(output[1])
        request.stderr = .inherit
        do {
            state.process = try ChildMonitor.spawnOwned(request)
        } catch {
            for fd in input + output { close(fd) }
            return runtime.cannotRun("hooks", error)
        }
        close(input[0])
        close(output[1])
        _ = fcntl(input[1], F_SETFL, fcntl(input[1], F_GETFL) | O_NONBLOCK)
        state.toHelper = input[1]
        state.fromHelper = output[0]
        // One bridge thread for the bridge's lifetime; a helper started again after an exit
        // is served by the same thread.
        guard state.thread == nil else { return nil }
        do {
            state.thread = try OSThread.start(name: "python hooks") { [self] in self.serve() }
        } catch {
            return "cannot start the hook thread: \(error)"
        }
        return nil
    }

    /// The bridge thread: writes queued requests, reads answers, expires deadlines.
    private func serve() {
        var lines = LineBuffer()
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let (toHelper, fromHelper, wantsWrite, nextDeadline, stopping) = state.withLock { state in
                (state.toHelper, state.fromHelper, !state.outbox.isEmpty,
                 state.pending.values.map(\.deadline).min(), state.stopping)
            }
            if stopping { break }
            var fds = [
                pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
                pollfd(fd: fromHelper, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wantsWrite ? toHelper : -1, events: Int16(POLLOUT), revents: 0),
            ]
            let timeout = nextDeadline.map { Self.milliseconds(until: $0) } ?? -1
            if poll(&fds, 3, timeout) < 0 && errno != EINTR { break }
            if fds[0].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wake, &drain, drain.count) > 0 {}
            }
            if fds[2].revents != 0 { flush() }
            if fds[1].revents != 0 {
                let count = read(fromHelper, &buffer, buffer.count)
                if count > 0 {
                    for line in lines.append(buffer[..<count]) { answer(line) }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    helperEnded()
                    continue
                }
            }
            expire()
        }
        helperEnded(reason: "circusd is stopping")
    }

    private func flush() {
        state.withLock { state in
            let written = state.outbox.withUnsafeBytes { write(state.toHelper, $0.baseAddress, $0.count) }
            if written > 0 { state.outbox.removeFirst(written) }
        }
    }

    private func answer(_ line: [UInt8]) {
        guard let message = try? JSONParser.parse(line), let id = message["id"]?.intValue else { return }
        let pending = state.withLock { $0.pending.removeValue(forKey: UInt64(id)) }
        guard let pending else { return }  // answered after its deadline
        if let result = message["result"]?.boolValue {
            pending.completion(.returned(result))
        } else {
            pending.completion(.failed(message["error"]?.stringValue ?? "the hook failed"))
        }
    }

    private func expire() {
        let now = ContinuousClock.now
        let late = state.withLock { state in
            let ids = state.pending.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { state.pending.removeValue(forKey: $0) }
        }
        for pending in late { pending.completion(.failed("the hook did not return in time")) }
    }

    /// The helper exited (or circusd stops): fail what it was running; the next call
    /// starts a new helper.
    private func helperEnded(reason: String? = nil) {
        let (pending, process, fds) = state.withLock { state in
            let taken = state.pending
            state.pending = [:]
            state.outbox = []
            let process = state.process
            let fds = [state.toHelper, state.fromHelper]
            state.process = nil
            state.toHelper = -1
            state.fromHelper = -1
            return (taken, process, fds)
        }
        for fd in fds where fd >= 0 { close(fd) }
        var why = reason ?? "the Python hook helper exited"
        if let process {
            // Its stdin is closed; a helper stuck in a hook is not waited for.
            if reason != nil { try? process.signal(SIGTERM) }
            let status = (try? process.waitForExit()) ?? .unknown
            ChildMonitor.unmarkOwned(process.pid)
            process.close()
            if reason == nil { why += " (\(status))" }
        }
        for entry in pending.values { entry.completion(.failed(why)) }
    }

    private static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let left = ContinuousClock.now.duration(to: deadline)
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
    }
}

/// Splits a byte stream into lines.
private struct LineBuffer {
    private var partial: [UInt8] = []

    mutating func append(_ bytes: ArraySlice<UInt8>) -> [[UInt8]] {
        partial += bytes
        var lines: [[UInt8]] = []
        while let newline = partial.firstIndex(of: 0x0A) {
            lines.append(Array(partial[..<newline]))
            partial.removeSubrange(...newline)
        }
        return lines
    }
}
