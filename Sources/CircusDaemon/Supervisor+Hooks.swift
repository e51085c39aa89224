// Calling a watcher's hooks: the configuration's own (`hooks.<name> = lib.so:symbol`), then
// those plugins registered. Each call runs on the watcher's hook thread with a deadline;
// the answer comes back to the loop as an event. While a watcher waits for a hook, its
// other effects wait too (so events keep Circus's order: `hook_success before_reap`,
// `reap`, `hook_success after_reap`), and every other watcher and the control channel go on.

import CircusConfig
import CircusCore
import CircusHooks
public import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections

/// Watcher hooks that plugins registered (`register_hook` in `circus/plugin.h`). The
/// supervisor consults them after the watcher's own configured hook.
public protocol PluginHookSource: AnyObject {
    /// The hook points some plugin asked for on watcher `watcher`.
    func points(forWatcher watcher: String) -> Set<HookPoint>

    /// Asks the matching plugin hooks, in registration order, stopping at the first that
    /// does not allow. Calls `completion` on the loop thread with each answer, labelled
    /// with the plugin's name; a hook past `deadline` seconds answers `.failed`.
    func consult(
        watcher: String, point: HookPoint, request: JSONObject, deadline: Double,
        completion: @escaping ([(plugin: String, outcome: HookOutcome)]) -> Void)
}

/// One config hook call, answered either by the hook or by its deadline, whichever
/// comes first.
private final class HookCallState {
    var answered = false
}

extension Supervisor {
    /// Performs a `.callHook` effect: later effects of the watcher are held until every
    /// hook of that point answered; an awaited answer goes back to the machine.
    func callHooks(_ call: HookCall, on entry: WatcherEntry) {
        entry.waitingForHook = true
        consultHooks(call, on: entry) { [unowned self] allowed in
            let answer = call.awaited ? entry.machine.hookReturned(call.point, allowed: allowed, at: self.moment()) : []
            self.releaseHeldEffects(of: entry, then: answer)
        }
    }

    /// Whether a signal to `pid` goes through before_signal / after_signal: only for the
    /// watcher's own processes, as in Circus.
    func signalIsHooked(_ pid: Int32, entry: WatcherEntry) -> Bool {
        entry.machine.processes[pid] != nil
            && (entry.machine.isHooked(.beforeSignal) || entry.machine.isHooked(.afterSignal))
    }

    /// The stop procedure's signal with Circus's hooks around it: before_signal may keep
    /// the signal from being sent (never SIGKILL), after_signal follows, then `kill` is
    /// published whatever before_signal said.
    func signalWithHooks(_ signo: Int32, to pid: Int32, scope: SignalScope, entry: WatcherEntry) {
        entry.waitingForHook = true
        let before = HookCall(.beforeSignal, pid: pid, signum: signo, awaited: false)
        consultHooks(before, on: entry) { [unowned self] allowed in
            let send = allowed || signo == SIGKILL
            if send {
                // A tree's kill events come once its descendants were read.
                self.signal(signo, to: pid, scope: scope, publishKill: scope == .tree, entry: entry)
            } else {
                self.logger.debug("before_signal hook didn't return True => signal \(signo) is not sent to \(pid)")
            }
            let after = HookCall(.afterSignal, pid: pid, signum: signo, awaited: false)
            self.consultHooks(after, on: entry) { _ in
                if !(send && scope == .tree) {
                    self.publish(.kill(pid: Int64(pid), time: EventLoop.wallNow()), for: entry.name)
                }
                self.releaseHeldEffects(of: entry, then: [])
            }
        }
    }

    private func releaseHeldEffects(of entry: WatcherEntry, then more: [Effect]) {
        entry.waitingForHook = false
        let held = entry.heldEffects
        entry.heldEffects = []
        perform(held + more, on: entry)
        drainDeferred()
    }

    /// Calls the watcher's configured hook for `call.point`, then the plugins' hooks, and
    /// `done` with whether to go on: false when one returned false, or failed and its
    /// failure is not ignored. Publishes `hook_success` / `hook_failure` for each.
    private func consultHooks(_ call: HookCall, on entry: WatcherEntry, done: @escaping (Bool) -> Void) {
        let request = hookRequest(call, watcher: entry.name)
        let plugins = { [unowned self] in
            self.consultPluginHooks(call.point, request: request, entry: entry, done: done)
        }
        guard let spec = entry.config.hooks[call.point], let function = hookCatalog.function(for: spec) else {
            return plugins()
        }
        let invocation = HookInvocation(
            point: call.point, watcher: entry.name, pid: call.pid, signum: call.signum, time: call.time,
            exitCode: call.exitCode, processStatus: call.processStatus,
            requestJSON: JSONWriter.string(.object(request)))
        runConfigHook(function, invocation, entry: entry) { [unowned self] outcome in
            let allowed = self.recordHookOutcome(outcome, point: call.point, ignored: spec.failureIgnored, entry: entry)
            if allowed { plugins() } else { done(false) }
        }
    }

    private func consultPluginHooks(
        _ point: HookPoint, request: JSONObject, entry: WatcherEntry, done: @escaping (Bool) -> Void
    ) {
        guard let source = pluginHooks, source.points(forWatcher: entry.name).contains(point) else { return done(true) }
        source.consult(watcher: entry.name, point: point, request: request, deadline: entry.config.hookTimeout) {
            [unowned self] answers in
            var allowed = true
            for answer in answers where allowed {
                allowed = self.recordHookOutcome(
                    answer.outcome, point: point, ignored: point.failureIgnoredByDefault, entry: entry,
                    plugin: answer.plugin)
            }
            done(allowed)
        }
    }

    /// Publishes the outcome of one hook and says whether the watcher goes on.
    private func recordHookOutcome(
        _ outcome: HookOutcome, point: HookPoint, ignored: Bool, entry: WatcherEntry, plugin: String? = nil
    ) -> Bool {
        let now = EventLoop.wallNow()
        switch outcome {
        case .returned(let value):
            publish(.hookSuccess(name: point.rawValue, time: now), for: entry.name)
            return value
        case .failed(let reason):
            let error = plugin.map { "plugin \($0): \(reason)" } ?? reason
            logger.error("Hook '\(point.rawValue)' of \(entry.name) failed: \(error)")
            publish(.hookFailure(name: point.rawValue, time: now, error: error), for: entry.name)
            return ignored
        }
    }

    /// Runs `function` on the watcher's hook thread. Past `hook_timeout` the call counts as
    /// failed and the thread is left to it: the watcher's next hook gets a new thread.
    private func runConfigHook(
        _ function: HookFunction, _ invocation: HookInvocation, entry: WatcherEntry,
        then: @escaping (HookOutcome) -> Void
    ) {
        let worker = entry.hookWorker ?? SerialWorker(name: "hooks")
        entry.hookWorker = worker
        let state = HookCallState()
        let timeout = entry.config.hookTimeout
        let symbol = function.spec.target.symbol
        let timer = loop.schedule(after: timeout) { [unowned self] in
            guard !state.answered else { return }
            state.answered = true
            if entry.hookWorker === worker { entry.hookWorker = nil }
            self.abandonHookWorker(worker)
            then(.failed("\(symbol) did not return within hook_timeout (\(PythonFloat.repr(timeout)) s)"))
        }
        let logger = self.logger
        let label = "\(entry.name) \(invocation.point.rawValue) hook"
        do {
            try loop.offload(to: worker, {
                function.call(invocation) { level, text in
                    switch level {
                    case .debug: logger.debug("\(label): \(text)")
                    case .info: logger.info("\(label): \(text)")
                    case .warning: logger.warning("\(label): \(text)")
                    case .error: logger.error("\(label): \(text)")
                    }
                }
            }) { [unowned self] outcome in
                guard !state.answered else { return }
                state.answered = true
                self.loop.cancel(timer)
                then(outcome)
            }
        } catch {
            state.answered = true
            loop.cancel(timer)
            then(.failed("cannot start the thread that calls hooks: \(error)"))
        }
    }

    /// Keeps a worker whose hook is hung out of the way; those that came back are let go.
    private func abandonHookWorker(_ worker: SerialWorker) {
        abandonedHookWorkers.removeAll { $0.pendingCount == 0 }
        abandonedHookWorkers.append(worker)
        if abandonedHookWorkers.count > 1 {
            logger.warning("\(abandonedHookWorkers.count) hook calls are still running past their deadline")
        }
    }

    /// The request hooks receive as JSON (fixed signature, plugins): the watcher, the
    /// hook's name and time, and Circus's keyword arguments of that hook.
    func hookRequest(_ call: HookCall, watcher: String) -> JSONObject {
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
