// Calling a watcher's hooks: the configuration's own (`hooks.<name> = lib.so:symbol`, or a
// Python callable), then those plugins registered. Each call runs on the watcher's hook thread with a deadline;
// the answer comes back to the loop as an event. While a watcher waits for a hook, its
// other effects wait too (so events keep Circus's order: `hook_success before_reap`,
// `reap`, `hook_success after_reap`), and every other watcher and the control channel go on.

import CircusConfig
import CircusCore
import CircusHooks
import CircusMessageBus
import CircusPluginHost
import CircusProtocol
import CircusStreams
import CircusSystem
import DequeModule
import Glibc
import Logging
import OrderedCollections

/// A value handed across threads as a whole that only the loop thread ever touches (a
/// closure called there, the objects a job posted to the loop works on).
final class LoopBound<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// One config hook call, answered either by the hook or by its deadline, whichever
/// comes first.
private final class HookCallState {
    var answered = false
}

/// The Python helper's answer, waited for on the watcher's hook thread.
private final class HookAnswer: @unchecked Sendable {
    // `outcome` is guarded by `mutex`; `condition` wakes the waiting thread. Allocated:
    // pthread objects must not move.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var outcome: HookOutcome?

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func give(_ value: HookOutcome) {
        pthread_mutex_lock(mutex)
        outcome = value
        pthread_mutex_unlock(mutex)
        // After the unlock, so that the waiter does not wake only to block on the mutex.
        pthread_cond_signal(condition)
    }

    func wait() -> HookOutcome {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while outcome == nil { pthread_cond_wait(condition, mutex) }
        return outcome!
    }
}

extension Supervisor {
    /// Tells every watcher at which points plugins hook it; called on the loop thread when
    /// a registration comes or goes. Each operation also refreshes its watcher's set when it
    /// begins (a watcher added since matches a registration too).
    func pluginHooksChanged() {
        for entry in watchers { refreshPluginHooks(of: entry) }
    }

    func refreshPluginHooks(of entry: WatcherEntry) {
        let points = pluginHooks.count == 0 ? [] : Set(HookPoint.allCases.filter {
            !pluginHooks.matching(watcher: entry.name, hookName: $0.rawValue).isEmpty
        })
        if entry.machine.pluginHooks != points { entry.machine.pluginHooks = points }
    }

    /// Performs a `.callHook` effect: later work of the watcher is held until every hook
    /// of that point answered; an awaited answer goes back to the machine.
    func callHooks(_ call: HookCall, on entry: WatcherEntry) {
        entry.waitingForHook = true
        consultHooks(call, on: entry) { [unowned self] allowed in
            let answer = call.awaited ? entry.machine.hookReturned(call.point, allowed: allowed, at: self.moment()) : []
            self.releaseHeldWork(of: entry, then: answer)
        }
    }

    /// Holds `effects` until the watcher's hook answered.
    func hold(_ effects: some Sequence<Effect>, of entry: WatcherEntry) {
        for effect in effects {
            entry.heldWork.append { [unowned self] in self.perform([effect], on: entry) }
        }
    }

    /// Runs `work` now, or after the hook the watcher waits for (and what was held before it).
    private func whenHooksAnswered(_ entry: WatcherEntry, _ work: @escaping () -> Void) {
        if entry.waitingForHook { entry.heldWork.append(work) } else { work() }
    }

    func releaseHeldWork(of entry: WatcherEntry, then more: [Effect]) {
        entry.waitingForHook = false
        hold(more, of: entry)
        while !entry.waitingForHook, let work = entry.heldWork.popFirst() { work() }
        drainDeferred()
    }

    /// Whether a signal to `pid` goes through before_signal / after_signal: only for the
    /// watcher's own processes, as in Circus.
    func signalIsHooked(_ pid: Int32, entry: WatcherEntry) -> Bool {
        entry.machine.processes[pid] != nil
            && (entry.machine.isHooked(.beforeSignal) || entry.machine.isHooked(.afterSignal))
    }

    /// Circus's `send_signal`: before_signal may keep the signal from being sent (never
    /// SIGKILL), after_signal follows whatever it said; then `done` (the watcher's held
    /// work waits until then).
    private func signalWithHooks(_ signo: Int32, to pid: Int32, entry: WatcherEntry, send: @escaping () -> Void,
                                 done: @escaping () -> Void) {
        entry.waitingForHook = true
        let before = HookCall(.beforeSignal, pid: pid, signum: signo, awaited: false)
        consultHooks(before, on: entry) { [unowned self] allowed in
            if allowed || signo == SIGKILL {
                send()
            } else {
                self.logger.debug("before_signal hook didn't return True => signal \(signo) is not sent to \(pid)")
            }
            let after = HookCall(.afterSignal, pid: pid, signum: signo, awaited: false)
            self.consultHooks(after, on: entry) { _ in
                done()
                self.releaseHeldWork(of: entry, then: [])
            }
        }
    }

    /// The stop procedure's signal with Circus's hooks around it; `kill` is published after
    /// after_signal, whatever before_signal said.
    func signalWithHooks(_ signo: Int32, to pid: Int32, scope: SignalScope, entry: WatcherEntry) {
        var sentToTree = false
        signalWithHooks(signo, to: pid, entry: entry, send: { [unowned self] in
            // A tree's kill events come once its descendants were read.
            sentToTree = scope == .tree
            self.signal(signo, to: pid, scope: scope, publishKill: sentToTree, entry: entry)
        }, done: { [unowned self] in
            if !sentToTree { self.publish(.kill(pid: Int64(pid), time: EventLoop.wallNow()), for: entry.name) }
        })
    }

    /// The `signal` command's signals to the watcher's own processes, one after another,
    /// each through before_signal and after_signal as Circus's `send_signal` does (no
    /// `kill` event); then `then`.
    func signalCommand(_ signo: Int32, to pids: [Int32], entry: WatcherEntry, then: @escaping () -> Void) {
        guard let pid = pids.first else { return then() }
        let rest = Array(pids.dropFirst())
        whenHooksAnswered(entry) { [unowned self] in
            let send = { [unowned self] in _ = try? self.monitor.signal(pid, signo) }
            guard self.signalIsHooked(pid, entry: entry) else {
                send()
                return self.signalCommand(signo, to: rest, entry: entry, then: then)
            }
            self.signalWithHooks(signo, to: pid, entry: entry, send: send) {
                self.signalCommand(signo, to: rest, entry: entry, then: then)
            }
        }
    }

    /// `stats <name> [<pid>] --extended`: the processes are sampled on the stats worker,
    /// then extended_stats is called once per process with its pid and stats, one after
    /// another, and the reply leaves once they all answered. As in Circus, which calls this
    /// hook directly, no hook event is published and its answer changes nothing (a C hook
    /// cannot add keys to the reply: it only reads them).
    func extendedStats(_ query: StatsQuery, entry: WatcherEntry, _ respond: Responder) {
        let sampler = statsService.sampler
        do {
            try loop.offload(to: statsService.worker, { StatsService.answer(query, sampler: sampler) }) {
                [unowned self] result in
                guard case .success(let payload) = result, case .object(let infos)? = payload["info"] else {
                    return self.replyStats(result, respond)
                }
                // `stats <name> <pid>` has one info object; `stats <name>` one per pid.
                let byPid: [(pid: Int32, stats: JSON)] = infos["pid"] != nil
                    ? [(Int32(truncatingIfNeeded: infos["pid"]?.intValue ?? 0), .object(infos))]
                    : infos.compactMap { key, value in Int32(key).map { ($0, value) } }
                self.extendedStatsHooks(byPid[...], entry: entry) { self.replyStats(result, respond) }
            }
        } catch {
            respond.fail(.osError("cannot sample processes: \(error)"))
        }
    }

    private func extendedStatsHooks(_ processes: ArraySlice<(pid: Int32, stats: JSON)>, entry: WatcherEntry,
                                    then: @escaping () -> Void) {
        guard let process = processes.first else { return then() }
        whenHooksAnswered(entry) { [unowned self] in
            entry.waitingForHook = true
            let call = HookCall(.extendedStats, pid: process.pid, awaited: false)
            self.consultHooks(call, on: entry, stats: JSONWriter.string(process.stats), events: false) { _ in
                self.extendedStatsHooks(processes.dropFirst(), entry: entry, then: then)
                self.releaseHeldWork(of: entry, then: [])
            }
        }
    }

    private func replyStats(_ result: Result<JSONObject, CommandError>, _ respond: Responder) {
        switch result {
        case .success(let payload): respond.ok(payload)
        case .failure(let error): respond.fail(error)
        }
    }

    /// Calls the watcher's configured hook for `call.point`, then the plugins' hooks, and
    /// `done` with whether to go on: false when one returned false, or failed and its
    /// failure is not ignored. Publishes `hook_success` / `hook_failure` for each, unless
    /// `events` is false.
    private func consultHooks(_ call: HookCall, on entry: WatcherEntry, stats: String? = nil, events: Bool = true,
                              done: @escaping (Bool) -> Void) {
        var request = Self.hookRequest(call, watcher: entry.name)
        if let stats { request["stats"] = (try? JSONParser.parse(stats)) ?? .null }
        let plugins = { [unowned self] in
            self.consultPluginHooks(call.point, request: request, entry: entry, events: events, done: done)
        }
        guard let spec = entry.config.hooks[call.point] else { return plugins() }
        let work: @Sendable () -> HookOutcome
        let label = "\(entry.name) \(call.point.rawValue) hook"
        if let name = spec.target.python {
            work = pythonHookWork(name, call, request: request, entry: entry)
        } else if let function = hookCatalog.function(for: spec) {
            let invocation = HookInvocation(
                point: call.point, watcher: entry.name, pid: call.pid, signum: call.signum, time: call.time,
                exitCode: call.exitCode, processStatus: call.processStatus, stats: stats,
                request: { [request] in JSONWriter.string(.object(request)) })
            let log = hookLog(label)
            work = { function.call(invocation, log: log) }
        } else {
            return plugins()
        }
        let name = spec.target.python ?? spec.target.symbol
        runConfigHook(work, named: name, label: label, entry: entry) { [unowned self] outcome in
            let allowed = self.recordHookOutcome(
                outcome, point: call.point, ignored: spec.failureIgnored, entry: entry, events: events)
            if allowed { plugins() } else { done(false) }
        }
    }

    /// Asks the plugin hooks registered for this point and watcher, in registration order,
    /// until one does not allow. A plugin's failure or timeout is judged like the watcher's
    /// own hook's: ignored with `, true` or for hooks whose failures Circus ignores.
    private func consultPluginHooks(
        _ point: HookPoint, request: JSONObject, entry: WatcherEntry, events: Bool, done: @escaping (Bool) -> Void
    ) {
        let hooks = pluginHooks.matching(watcher: entry.name, hookName: point.rawValue)
        guard !hooks.isEmpty, let host = pluginHost else { return done(true) }
        let ignored = entry.config.hooks[point]?.failureIgnored ?? point.failureIgnoredByDefault
        askPluginHooks(hooks[...], host: host, point: point, request: request, ignored: ignored, entry: entry,
                       events: events, done: done)
    }

    private func askPluginHooks(
        _ hooks: ArraySlice<PluginHook>, host: PluginHost, point: HookPoint, request: JSONObject, ignored: Bool,
        entry: WatcherEntry, events: Bool, done: @escaping (Bool) -> Void
    ) {
        guard let hook = hooks.first else { return done(true) }
        let answered = LoopBound<(Result<Bool, PluginRequestError>) -> Void> { [unowned self] result in
            let outcome: HookOutcome = switch result {
            case .success(let allow): .returned(allow)
            case .failure(let error): .failed(error.reason)
            }
            if self.recordHookOutcome(
                outcome, point: point, ignored: ignored, entry: entry, events: events, plugin: hook.id.instance)
            {
                self.askPluginHooks(hooks.dropFirst(), host: host, point: point, request: request, ignored: ignored,
                                    entry: entry, events: events, done: done)
            } else {
                done(false)
            }
        }
        let remote = bus.remote
        host.invokeHook(hook.id, request: request, deadline: .milliseconds(Int64(entry.config.hookTimeout * 1000))) {
            result in remote.perform { _ in answered.value(result) }
        }
    }

    /// Publishes the outcome of one hook and says whether the watcher goes on.
    func recordHookOutcome(
        _ outcome: HookOutcome, point: HookPoint, ignored: Bool, entry: WatcherEntry, events: Bool,
        plugin: String? = nil
    ) -> Bool {
        let now = EventLoop.wallNow()
        switch outcome {
        case .returned(let value):
            if events { publish(.hookSuccess(name: point.rawValue, time: now), for: entry.name) }
            return value
        case .failed(let reason):
            let error = plugin.map { "plugin \($0): \(reason)" } ?? reason
            logger.error("Hook '\(point.rawValue)' of \(entry.name) failed: \(error)")
            if events { publish(.hookFailure(name: point.rawValue, time: now, error: error), for: entry.name) }
            return ignored
        }
    }

    /// Runs `work` (the hook `name`) on the watcher's hook thread. Past `hook_timeout` the
    /// call counts as failed and the thread is left to it: the watcher's next hook gets a
    /// new thread.
    private func runConfigHook(
        _ work: @escaping @Sendable () -> HookOutcome, named name: String, label: String, entry: WatcherEntry,
        then: @escaping (HookOutcome) -> Void
    ) {
        // A spawn run holding the thread stops after its current process (see spawnRunReported).
        entry.spawnRun?.cancel()
        let worker = entry.hookThread()
        let state = HookCallState()
        let timeout = entry.config.hookTimeout
        let timer = loop.schedule(after: timeout) { [unowned self] in
            guard !state.answered else { return }
            state.answered = true
            if entry.hookWorker === worker { entry.hookWorker = nil }
            self.abandonHookWorker(worker)
            then(.failed("\(name) did not return within hook_timeout (\(PythonFloat.repr(timeout)) s)"))
        }
        let asked = EventLoop.monotonicNow()
        do {
            try loop.offload(to: worker, work) { [unowned self] outcome in
                guard !state.answered else { return }
                state.answered = true
                self.loop.cancel(timer)
                // What the hook cost the watcher (Benchmarks/hooks.py reads it).
                self.logger.debug("\(label) answered in \(Int((EventLoop.monotonicNow() - asked) * 1e6)) µs")
                then(outcome)
            }
        } catch {
            state.answered = true
            loop.cancel(timer)
            then(.failed("cannot start the thread that calls hooks: \(error)"))
        }
    }

    /// A Python hook's call, for the watcher's hook thread: it hands the call to the Python
    /// helper (started by the first one) and waits for its answer there, never on the loop.
    private func pythonHookWork(_ name: String, _ call: HookCall, request: JSONObject, entry: WatcherEntry)
        -> @Sendable () -> HookOutcome
    {
        let bridge: PythonHookBridge
        if let existing = pythonHookBridge {
            bridge = existing
        } else {
            bridge = PythonHookBridge(
                runtime: PythonRuntime(python: configuration.settings.python, environment: environment),
                endpoint: configuration.settings.endpoint)
            pythonHookBridge = bridge
        }
        let arguments = Set(call.point.extraArguments.map(\.rawValue))
        let watcher: JSONObject = [
            "name": .string(entry.name), "numprocesses": .int(Int64(entry.config.numprocesses)),
            "processes": .array(entry.machine.processes.values.map { .object(["wid": .int(Int64($0.wid)), "pid": .int(Int64($0.pid))]) }),
            "options": .object(optionsObject(entry.config)),
            "env": .object(JSONObject(uniqueKeysWithValues: childEnvironment(for: entry.config).map { ($0.key, .string($0.value)) })),
        ]
        let bridgeCall = PythonHookBridge.Call(
            hook: name, hookName: call.point.rawValue, watcher: watcher,
            arbiter: ["watchers": .array(watchers.map { .string($0.name) })],
            extra: request.filter { arguments.contains($0.key) },
            deadline: .milliseconds(Int64(entry.config.hookTimeout * 1000)),
            reload: entry.pythonHooksToReload.remove(call.point) != nil)
        return {
            let answer = HookAnswer()
            bridge.call(bridgeCall) { answer.give($0) }
            return answer.wait()
        }
    }

    /// Keeps a worker whose hook is hung out of the way; those that came back are let go.
    func abandonHookWorker(_ worker: SerialWorker) {
        abandonedHookWorkers.removeAll { $0.pendingCount == 0 }
        abandonedHookWorkers.append(worker)
        if abandonedHookWorkers.count > 1 {
            logger.warning("\(abandonedHookWorkers.count) hook calls are still running past their deadline")
        }
    }

    /// Where what a native hook logs goes (`api->log`): circusd's log, from any thread.
    func hookLog(_ label: String) -> @Sendable (HookLogLevel, String) -> Void {
        let logger = self.logger
        return { level, text in
            switch level {
            case .debug: logger.debug("\(label): \(text)")
            case .info: logger.info("\(label): \(text)")
            case .warning: logger.warning("\(label): \(text)")
            case .error: logger.error("\(label): \(text)")
            }
        }
    }

    /// The request hooks receive as JSON (fixed signature, plugins): the watcher, the
    /// hook's name and time, and Circus's keyword arguments of that hook. Safe from any
    /// thread.
    static func hookRequest(_ call: HookCall, watcher: String) -> JSONObject {
        var request: JSONObject = [
            "watcher": .string(watcher), "hook": .string(call.point.rawValue), "time": .double(EventLoop.wallNow()),
        ]
        for argument in call.point.extraArguments {
            switch argument {
            case .pid: request["pid"] = call.pid.map { .int(Int64($0)) } ?? .null
            case .signum: request["signum"] = call.signum.map { .int(Int64($0)) } ?? .null
            case .processPid: request["process_pid"] = call.pid.map { .int(Int64($0)) } ?? .null
            case .time: request["time"] = call.time.map { .double($0) } ?? .null
            case .exitCode: request["exit_code"] = call.exitCode.map { .int(Int64($0)) } ?? .null
            case .processStatus: request["process_status"] = call.processStatus.map { .int(Int64($0)) } ?? .null
            case .watcher, .hookName, .stats: break
            }
        }
        return request
    }
}
