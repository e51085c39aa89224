// One watcher as the supervisor holds it: the pure state machine plus the handles of
// the effects it asked for (timers).

import CircusConfig
import CircusCore
import CircusSystem
import DequeModule

/// A watcher owned by the supervisor. Reference type so that timers and exit handlers
/// can reach it after it was removed from the arbiter (rm --nostop still reaps).
final class WatcherEntry {
    var machine: WatcherMachine
    /// The configuration the watcher was created from, for reloadconfig's diff (Circus
    /// compares with the creation config, not with what `set` changed since).
    var creationConfig: WatcherConfig
    var timers: [TimerKey: EventLoop.TimerID] = [:]
    /// False once `rm` took it out of the arbiter.
    var attached = true
    /// The thread that calls this watcher's hooks, made at the first call; replaced when a
    /// call outlives its deadline (that thread stays with the hung call).
    var hookWorker: SerialWorker?

    /// The watcher's hook thread, made at first use (named after the watcher for `top -H`).
    func hookThread() -> SerialWorker {
        if let worker = hookWorker { return worker }
        let worker = SerialWorker(name: "hooks:\(name)")
        hookWorker = worker
        return worker
    }
    /// The spawn run under way on `hookWorker`, if any (see Supervisor+SpawnRuns.swift).
    var spawnRun: SpawnRun?
    /// True while the watcher waits for a hook's answer. What it would do meanwhile (the
    /// machine's effects, a `signal` command's signals) waits in `heldWork`, in order, so
    /// that events keep Circus's order.
    var waitingForHook = false
    var heldWork: Deque<() -> Void> = []
    /// An on_demand watcher's wait for a connection on its sockets.
    var activation = OnDemandActivation()
    /// Python hooks a `set` named since their last call: their module is imported anew at
    /// the next call, as Circus's `set` of a hook reloads it.
    var pythonHooksToReload: Set<HookPoint> = []

    init(config: WatcherConfig) {
        machine = WatcherMachine(config: config, seed: UInt64.random(in: 1...UInt64.max))
        creationConfig = config
    }

    var name: String { machine.config.name }
    /// The lookup key: Circus matches names case-insensitively.
    var key: String { machine.config.name.lowercased() }
    var config: WatcherConfig { machine.config }
}
