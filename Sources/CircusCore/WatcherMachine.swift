// The state machine of one watcher: its processes, its status, and the operations
// (start, stop, reload, resize, kill) that change them over time.
//
// Circus runs these as coroutines that sleep and poll. Here each operation is a short
// list of steps; a step either finishes at once or waits for something the supervisor
// reports back (a spawn result, a process exit, a timer). Crashes are seen the moment a
// child exits, so respawn is immediate; a crash loop is slowed down by a backoff
// (see `crashBackoff(after:)`) instead of Circus's polling tick.

public import CircusConfig
public import OrderedCollections
import DequeModule

/// A command the supervisor runs on one watcher.
public enum WatcherCommand: Hashable, Sendable {
    /// Start a stopped watcher, or top up a running one.
    case start
    /// Stop every process (stop signal, graceful timeout, SIGKILL) and mark it stopped.
    case stop
    /// Stop then start.
    case restart
    /// Reload: graceful (new processes first), sequential (one by one), or a restart.
    ///
    /// A stopped watcher is started, as Circus does (a graceful reload then publishes
    /// `reload` after `start`), unless `runningOnly`: reload-all and SIGHUP reload what
    /// runs and leave a stopped watcher stopped. Whether the watcher is stopped is decided
    /// when the operation begins, after whatever was queued before it.
    case reload(graceful: Bool, sequential: Bool, runningOnly: Bool = false)
    /// Spawn missing processes (with warmup) and stop the oldest surplus (incr, decr, set).
    case manage
    /// Run the stop procedure on some (or all) processes; they are respawned afterwards.
    case kill(pids: [Int32]?, signal: Int32?, gracefulTimeout: Double?)
}

/// One supervised process as the machine sees it.
public struct ManagedProcess: Hashable, Sendable {
    public let pid: Int32
    /// Worker id: the smallest free integer in `1...2*numprocesses` at spawn time.
    public let wid: Int
    /// Wall-clock spawn time (the `time` of the `spawn` event, `started` in `stats`).
    public let started: Double
    /// Monotonic spawn time, for ages and backoff.
    public let startedMonotonic: Double
    /// Monotonic time at which `max_age` expires, if enabled.
    public let expiresAt: Double?
    /// True once the stop procedure began; such a process no longer counts as running.
    public internal(set) var stopping: Bool = false
}

/// The whole state of one watcher. A value type: the supervisor owns one per watcher.
public struct WatcherMachine: Sendable {
    public private(set) var config: WatcherConfig
    public private(set) var status: WatcherStatus = .stopped
    /// Processes in spawn order (oldest first), including those being stopped.
    public private(set) var processes: OrderedDictionary<Int32, ManagedProcess> = [:]
    /// The last spawn error, shown by `status` and in logs; cleared by a successful spawn.
    public private(set) var lastError: String?

    private var current: Operation?
    private var queue: Deque<(OperationID?, WatcherCommand)> = []
    /// Consecutive exits of processes that lived less than `minimumUptime`.
    private var quickExits = 0
    private var backoffArmed = false
    private var maxAgeArmedAt: Double?
    private var random: SplitMix64
    private var lastRunID = 0

    /// Hook points that plugins registered for this watcher (the configuration's own
    /// hooks are in `config.hooks`); the supervisor keeps it current.
    public var pluginHooks: Set<HookPoint> = []

    /// A process that lives at least this long resets the crash backoff.
    public static let minimumUptime: Double = 1.0
    /// Longest delay between respawns of a crash-looping watcher.
    public static let maximumBackoff: Double = 10.0

    public init(config: WatcherConfig, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) {
        self.config = config
        self.random = SplitMix64(seed: seed)
    }

    // MARK: - Queries

    /// Pids of processes that are running and not being stopped, oldest first.
    public var activePids: [Int32] {
        var pids: [Int32] = []
        pids.reserveCapacity(processes.count)
        for process in processes.values where !process.stopping { pids.append(process.pid) }
        return pids
    }

    /// How many processes are not being stopped (`activePids.count` without the array:
    /// asked on every exit and spawn).
    var activeCount: Int {
        var count = 0
        for process in processes.values where !process.stopping { count += 1 }
        return count
    }
    /// Every pid the watcher still owns, oldest first.
    public var allPids: [Int32] { Array(processes.keys) }
    /// True while an operation runs or waits its turn.
    public var isBusy: Bool { current != nil || !queue.isEmpty }
    /// Whether anything (the configuration or a plugin) is called at `point`.
    public func isHooked(_ point: HookPoint) -> Bool { config.hooks[point] != nil || pluginHooks.contains(point) }

    /// Whether this watcher's spawns go in runs (`Effect.spawnRun`): its spawn hooks are the
    /// configuration's native ones (C, libffi), which the supervisor calls on the watcher's
    /// hook thread right around each spawn, so that a start of many processes does not wait
    /// for a thread round trip per hook. A Python or plugin hook answers through the loop,
    /// and is asked one spawn at a time.
    public var spawnsInRuns: Bool {
        var hooked = false
        for point in [HookPoint.beforeSpawn, .afterSpawn] {
            if pluginHooks.contains(point) { return false }
            if let spec = config.hooks[point] {
                if spec.target.python != nil { return false }
                hooked = true
            }
        }
        return hooked
    }

    /// Most workers one run asks for: each one's descriptors are prepared when the run
    /// begins, so a start of many processes goes in runs of this size.
    public static let spawnRunLimit = 32

    /// How long to wait before respawning after `quickExits` consecutive quick exits:
    /// 0 for the first, then 0.1 s doubling up to `maximumBackoff`.
    public static func crashBackoff(after quickExits: Int) -> Double {
        guard quickExits > 1 else { return 0 }
        let exponent = min(quickExits - 2, 16)
        return min(0.1 * Double(1 << exponent), maximumBackoff)
    }

    // MARK: - Inputs

    /// Replaces the configuration (set, reloadconfig). The caller decides which command
    /// applies it (`manage` or a reload).
    public mutating func replaceConfig(_ config: WatcherConfig) {
        self.config = config
    }

    /// Lets go of the processes without stopping them (`rm --nostop`): the watcher is
    /// marked stopped, so exits are still reaped and published but nothing respawns.
    public mutating func abandon() -> [Effect] {
        var effects: [Effect] = []
        status = .stopped
        queue.removeAll()
        cancelIdleTimers(into: &effects)
        return effects
    }

    /// Queues a command; it starts at once if nothing else runs on this watcher.
    /// `id` nil marks an internal operation whose completion nobody awaits.
    ///
    /// A `stop` does not wait for an operation that is only sleeping (a start between two
    /// warmup delays, a spawn retry in backoff): that operation ends at once, reporting
    /// the interruption as its failure, so that an operator (or SIGTERM) is never held
    /// up by a slow start.
    public mutating func begin(_ command: WatcherCommand, id: OperationID?, at now: Moment) -> [Effect] {
        var effects: [Effect] = []
        if command == .stop, let op = current, let wait = op.waiting, wait == .warmup || wait == .backoff {
            interrupt(op, waitingOn: wait, into: &effects)
        }
        queue.append((id, command))
        if current == nil { startNext(at: now, into: &effects) }
        return effects
    }

    private mutating func interrupt(_ op: Operation, waitingOn wait: Wait, into effects: inout [Effect]) {
        var op = op
        if wait == .warmup {
            effects.append(.cancelTimer(.warmup))
        } else {
            backoffArmed = false
            effects.append(.cancelTimer(.respawnBackoff))
        }
        op.result.failure = "interrupted by stop"
        finish(op, into: &effects)
        current = nil
    }

    /// A spawn asked for by `.spawn(wid:)` succeeded. `now` is when the spawn began.
    public mutating func processSpawned(wid: Int, pid: Int32, at now: Moment) -> [Effect] {
        var effects: [Effect] = []
        var expiry: Double? = nil
        if config.maxAge > 0 {
            let variance = config.maxAgeVariance > 0 ? Int(random.next() % UInt64(config.maxAgeVariance + 1)) : 0
            expiry = now.monotonic + Double(config.maxAge + variance)
        }
        processes[pid] = ManagedProcess(
            pid: pid, wid: wid, started: now.wall, startedMonotonic: now.monotonic, expiresAt: expiry)
        lastError = nil
        guard var op = current, case .spawn(let awaited)? = op.waiting, awaited == wid else {
            effects.append(.publish(.spawn(pid: pid, time: now.wall)))
            return effects
        }
        current = nil  // put back below; see `advance`
        let inRun = op.run != nil
        if inRun {
            op.run!.removeFirst()
            if op.run!.isEmpty { op.run = nil }
        }
        if inRun ? op.runPlan?.callsAfterSpawn == true : isHooked(.afterSpawn) {
            // Circus publishes `spawn` only once after_spawn accepted the process.
            op.waiting = .hook(.afterSpawn)
            op.hookedSpawn = pid
            current = op
            // A run calls it on its own.
            if !inRun { effects.append(.callHook(HookCall(.afterSpawn, pid: pid, awaited: true))) }
            return effects
        }
        effects.append(.publish(.spawn(pid: pid, time: now.wall)))
        accept(spawned: pid, by: &op, at: now, into: &effects)
        return effects
    }

    /// A spawned process is in: the operation goes on (next spawn, warmup, next step).
    private mutating func accept(spawned pid: Int32, by op: inout Operation, at now: Moment, into effects: inout [Effect]) {
        op.waiting = nil
        op.spawnApproved = false
        op.retries = 0
        op.result.started.append(pid)
        if case .spawn(let remaining, let warmup)? = op.steps.first {
            if let remaining { op.steps[0] = .spawn(count: remaining - 1, warmup: warmup) }
            if warmup, config.warmupDelay > 0 {
                op.waiting = .warmup
                effects.append(.armTimer(.warmup, at: now.monotonic + config.warmupDelay))
            }
        }
        current = op
        if op.waiting == nil { advance(at: now, into: &effects) }
    }

    /// The hooks called at `point` (a `.callHook` effect with `awaited`) have answered:
    /// `allowed` is false when one returned false or failed without its failure being
    /// ignored. Circus's rules: a refused before_start leaves the watcher stopped; a
    /// refused after_start, before_spawn or after_spawn stops it; the others go on.
    public mutating func hookReturned(_ point: HookPoint, allowed: Bool, at now: Moment) -> [Effect] {
        guard var op = current, op.waiting == .hook(point) else { return [] }
        var effects: [Effect] = []
        op.waiting = nil
        let refusal = "the \(point.rawValue) hook of '\(config.name)' refused"
        switch point {
        case .beforeStart where !allowed:
            op.result.failure = refusal + " the start"
            op.steps = [.log(.info, "\(config.name): \(point.rawValue) hook said no: aborting startup")]
        case .afterStart where !allowed:
            op.result.failure = refusal + " the start"
            op.steps = Self.stopSteps(name: config.name)
        case .beforeSpawn:
            if allowed {
                op.spawnApproved = true
            } else {
                op.run = nil  // a run stops at a refusal
                op.result.failure = refusal + " a spawn"
                op.steps = Self.stopSteps(name: config.name)
            }
        case .afterSpawn:
            let pid = op.hookedSpawn ?? 0
            op.hookedSpawn = nil
            if allowed {
                // A process that already died while its hook ran was reaped; no spawn event then.
                if let process = processes[pid] { effects.append(.publish(.spawn(pid: pid, time: process.started))) }
                accept(spawned: pid, by: &op, at: now, into: &effects)
                return effects
            }
            op.run = nil
            op.result.failure = refusal + " process \(pid)"
            op.spawnApproved = false
            op.retries = 0
            beginStop(pid: pid, signal: nil, timeout: nil, at: now, into: &effects)
            op.steps = Self.stopSteps(name: config.name)
        default:
            break
        }
        current = op
        advance(at: now, into: &effects)
        return effects
    }

    /// A spawn failed (exec error, unknown user, bad rlimit): retried up to `max_retry`
    /// times, then the watcher stops with the error visible in `status` and the log.
    public mutating func spawnFailed(wid: Int, message: String, at now: Moment) -> [Effect] {
        var effects: [Effect] = [.log(.warning, "error in '\(config.name)': \(message)")]
        lastError = message
        guard var op = current, case .spawn(let awaited)? = op.waiting, awaited == wid else { return effects }
        op.waiting = nil
        op.run = nil  // a run stops at a failure
        op.retries += 1
        if config.maxRetry == -1 {
            // Retrying forever must not spin: go through the crash backoff.
            quickExits += 1
            op.waiting = .backoff
            current = op
            effects.append(.armTimer(.respawnBackoff, at: now.monotonic + max(0.1, Self.crashBackoff(after: quickExits))))
            backoffArmed = true
            return effects
        }
        if op.retries < config.maxRetry {
            current = op
            advance(at: now, into: &effects)
            return effects
        }
        // Give up: stop the watcher, keep the reason.
        op.result.failure = message
        op.steps = Self.stopSteps(name: config.name)
        current = op
        effects.append(.log(.error, "'\(config.name)' stopped: could not spawn after \(op.retries) attempt(s): \(message)"))
        advance(at: now, into: &effects)
        return effects
    }

    /// Run `id` stopped before all its workers were spawned, without a refusal or failure
    /// (the watcher's hook thread was wanted for another hook): what it did not spawn is
    /// asked for again.
    public mutating func spawnRunEnded(id: Int, at now: Moment) -> [Effect] {
        guard var op = current, op.run != nil, op.runPlan?.id == id else { return [] }
        var effects: [Effect] = []
        op.run = nil
        switch op.waiting {
        case .spawn?, .hook(.beforeSpawn)?:
            op.waiting = nil
            current = op
            advance(at: now, into: &effects)
        default:
            current = op
        }
        return effects
    }

    /// A process exited (seen at once through its pidfd). Publishes `reap`, lets a waiting
    /// operation go on, and respawns crashed processes of an active watcher.
    public mutating func processExited(pid: Int32, exitCode: Int32, at now: Moment) -> [Effect] {
        guard let process = processes.removeValue(forKey: pid) else { return [] }
        var effects: [Effect] = []
        if process.stopping { effects.append(.cancelTimer(.killDeadline(pid: pid))) }
        if isHooked(.beforeReap) {
            effects.append(.callHook(HookCall(.beforeReap, pid: pid, time: now.wall, awaited: false)))
        }
        effects.append(.publish(.reap(pid: pid, time: now.wall, exitCode: exitCode)))
        if isHooked(.afterReap) {
            effects.append(.callHook(HookCall(
                .afterReap, pid: pid, time: now.wall, exitCode: exitCode, processStatus: process.stopping ? nil : 2,
                awaited: false)))
        }
        if !process.stopping {
            if now.monotonic - process.startedMonotonic < Self.minimumUptime {
                quickExits += 1
            } else {
                quickExits = 0
            }
        }
        if var op = current {
            if case .exits(var pids)? = op.waiting {
                pids.remove(pid)
                op.waiting = pids.isEmpty ? nil : .exits(pids)
                current = op
                if op.waiting == nil { advance(at: now, into: &effects) }
            }
            return effects
        }
        if !process.stopping { reconcile(at: now, into: &effects) }
        return effects
    }

    /// A timer armed by an `.armTimer` effect fired.
    public mutating func timerFired(_ key: TimerKey, at now: Moment) -> [Effect] {
        var effects: [Effect] = []
        switch key {
        case .killDeadline(let pid):
            guard processes[pid] != nil else { return [] }
            // Graceful timeout over: SIGKILL the process and all its descendants.
            effects.append(.signal(pid: pid, signal: 9, scope: .tree, publishKill: true))
        case .warmup:
            guard var op = current, op.waiting == .warmup else { return [] }
            op.waiting = nil
            current = op
            advance(at: now, into: &effects)
        case .respawnBackoff:
            backoffArmed = false
            if var op = current, op.waiting == .backoff {
                op.waiting = nil
                current = op
                advance(at: now, into: &effects)
            } else if current == nil, queue.isEmpty, status == .active {
                // The wait is over: respawn now, whatever the count of quick exits.
                startInternal(.manage, at: now, into: &effects)
            }
        case .maxAge:
            maxAgeArmedAt = nil
            guard current == nil, status == .active else { return [] }
            for process in processes.values where !process.stopping {
                if let expiry = process.expiresAt, expiry <= now.monotonic {
                    beginStop(pid: process.pid, signal: nil, timeout: nil, at: now, into: &effects)
                }
            }
            reconcile(at: now, into: &effects)
        }
        return effects
    }

    // MARK: - Operations

    private enum Step: Hashable, Sendable {
        case setStatus(WatcherStatus)
        /// Spawn `count` processes, or (nil) as many as `numprocesses` lacks when the step
        /// begins, settled then as Circus does; `warmup` sleeps `warmup_delay` after each
        /// spawn, the last one included, as Circus does.
        case spawn(count: Int?, warmup: Bool)
        case stopAll
        case stopSurplus
        case stopPids([Int32], signal: Int32?, timeout: Double?)
        case hupAll
        /// Publish the event that ends a phase.
        case publish(PhaseEvent)
        case log(LogLevel, String)
        /// A start that left no process running is a failed start.
        case failIfNoProcess
        /// Replaced by per-process steps once the operation starts.
        case replaceSequentially
        /// Call the hooks of this point, if any, and wait for their answer.
        case hook(HookPoint)
    }

    private enum PhaseEvent: Hashable, Sendable {
        case start, stop, reload
    }

    private enum Wait: Hashable, Sendable {
        case spawn(wid: Int)
        case exits(Set<Int32>)
        case warmup
        case backoff
        case hook(HookPoint)
    }

    private struct Operation: Sendable {
        var id: OperationID?
        var steps: [Step]
        var waiting: Wait?
        var retries = 0
        var result = OperationResult()
        var initialPids: [Int32]
        /// before_spawn said yes for the process being spawned (its retries ask no more).
        var spawnApproved = false
        /// The process whose after_spawn answer is awaited.
        var hookedSpawn: Int32?
        /// The workers of the spawn run under way (`Effect.spawnRun`) not yet reported.
        var run: [Int]?
        /// The last run planned.
        var runPlan: SpawnRunPlan?
    }

    private static func stopSteps(name: String) -> [Step] {
        [.setStatus(.stopping), .hook(.beforeStop), .stopAll, .publish(.stop), .setStatus(.stopped),
         .hook(.afterStop), .log(.info, "\(name) stopped")]
    }

    private func startSteps() -> [Step] {
        status != .stopped ? [.spawn(count: nil, warmup: true)] : startFromStoppedSteps()
    }

    private func startFromStoppedSteps() -> [Step] {
        [.hook(.beforeStart), .setStatus(.starting), .spawn(count: nil, warmup: true), .failIfNoProcess,
         .hook(.afterStart), .setStatus(.active), .log(.info, "\(config.name) started"), .publish(.start)]
    }

    private func steps(for command: WatcherCommand) -> [Step] {
        switch command {
        case .start:
            return startSteps()
        case .stop:
            return status == .stopped ? [] : Self.stopSteps(name: config.name)
        case .restart:
            return (status == .stopped ? [] : Self.stopSteps(name: config.name)) + startFromStoppedSteps()
        case .reload(let graceful, let sequential, let runningOnly):
            if status == .stopped {
                if runningOnly { return [] }
                // A start that fails turns into the stop steps, so no `reload` follows it.
                return graceful
                    ? startSteps() + [.publish(.reload), .log(.info, "\(config.name) reloaded")] : startSteps()
            }
            if !graceful { return steps(for: .restart) }
            if config.sendHup { return [.hupAll, .publish(.reload), .log(.info, "\(config.name) reloaded")] }
            if sequential { return [.replaceSequentially, .publish(.reload), .log(.info, "\(config.name) reloaded")] }
            return [.spawn(count: config.numprocesses, warmup: false), .stopSurplus, .publish(.reload),
                    .log(.info, "\(config.name) reloaded")]
        case .manage:
            return status == .stopped || status == .stopping ? [] : [.spawn(count: nil, warmup: true), .stopSurplus]
        case .kill(let pids, let signal, let timeout):
            return [.stopPids(pids ?? activePids, signal: signal, timeout: timeout)]
        }
    }

    private mutating func startNext(at now: Moment, into effects: inout [Effect]) {
        while current == nil, let (id, command) = queue.popFirst() {
            current = Operation(id: id, steps: steps(for: command), initialPids: activePids)
            advance(at: now, into: &effects)
        }
    }

    /// Runs steps until one has to wait, or the operation is over.
    private mutating func advance(at now: Moment, into effects: inout [Effect]) {
        while var op = current, op.waiting == nil {
            // Taken out while it changes, so that its arrays are not shared with `current`
            // (which would copy them at the first change); put back at the end of the pass.
            current = nil
            guard let step = op.steps.first else {
                finish(op, into: &effects)
                if queue.isEmpty { reconcile(at: now, into: &effects) } else { startNext(at: now, into: &effects) }
                return
            }
            switch step {
            case .setStatus(let s):
                status = s
                if s == .stopped || s == .stopping { cancelIdleTimers(into: &effects) }
                op.steps.removeFirst()
            case .spawn(let asked, let warmup):
                // Circus settles how many to spawn when the spawning begins
                // (`numprocesses - len(processes)`). Counted again after each spawn,
                // processes that end as fast as they are spawned (a run's reports come back
                // in later turns, after their exits) would keep the operation, and every
                // command queued behind it (a stop, `quit`), going for ever.
                let count = asked ?? max(0, config.numprocesses - activeCount)
                if asked == nil { op.steps[0] = .spawn(count: count, warmup: warmup) }
                if let run = op.run {
                    // A run under way: its next report is awaited (as in Circus, the number
                    // of processes to spawn was settled when the spawning began).
                    op.waiting = !op.spawnApproved && op.runPlan?.callsBeforeSpawn == true
                        ? .hook(.beforeSpawn) : .spawn(wid: run[0])
                } else if count <= 0 || status == .stopped || status == .stopping {
                    op.steps.removeFirst()
                } else if config.maxRetry == 0 {
                    // Circus: max_retry 0 never even tries, so the watcher stops.
                    op.result.failure = "max_retry is 0: no spawn attempted"
                    op.steps = Self.stopSteps(name: config.name)
                } else if spawnsInRuns, !(warmup && config.warmupDelay > 0) {
                    let wids = nextWids(min(count, Self.spawnRunLimit))
                    lastRunID += 1
                    let plan = SpawnRunPlan(
                        id: lastRunID, wids: wids, firstApproved: op.spawnApproved,
                        callsBeforeSpawn: config.hooks[.beforeSpawn] != nil,
                        callsAfterSpawn: config.hooks[.afterSpawn] != nil)
                    op.run = wids
                    op.runPlan = plan
                    effects.append(.spawnRun(plan))
                    op.waiting = !op.spawnApproved && plan.callsBeforeSpawn ? .hook(.beforeSpawn) : .spawn(wid: wids[0])
                } else if !op.spawnApproved, isHooked(.beforeSpawn) {
                    op.waiting = .hook(.beforeSpawn)
                    effects.append(.callHook(HookCall(.beforeSpawn, awaited: true)))
                } else {
                    let wid = nextWids(1)[0]
                    op.waiting = .spawn(wid: wid)
                    effects.append(.spawn(wid: wid))
                }
            case .stopAll:
                op.steps.removeFirst()
                let pids = allPids
                op.result.stopped.append(contentsOf: activePids)
                for pid in pids { beginStop(pid: pid, signal: nil, timeout: nil, at: now, into: &effects) }
                if !pids.isEmpty { op.waiting = .exits(Set(pids)) }
            case .stopSurplus:
                op.steps.removeFirst()
                let live = activePids
                if live.count > config.numprocesses {
                    let surplus = Array(live.prefix(live.count - config.numprocesses))
                    op.result.stopped.append(contentsOf: surplus)
                    for pid in surplus { beginStop(pid: pid, signal: nil, timeout: nil, at: now, into: &effects) }
                    op.waiting = .exits(Set(surplus))
                }
            case .stopPids(let pids, let signal, let timeout):
                op.steps.removeFirst()
                let targets = pids.filter { processes[$0] != nil }
                op.result.stopped.append(contentsOf: targets.filter { processes[$0]?.stopping == false })
                for pid in targets { beginStop(pid: pid, signal: signal, timeout: timeout, at: now, into: &effects) }
                if !targets.isEmpty { op.waiting = .exits(Set(targets)) }
            case .hupAll:
                op.steps.removeFirst()
                for pid in activePids {
                    effects.append(.log(.info, "SENDING HUP to \(pid)"))
                    effects.append(.signal(pid: pid, signal: 1, scope: .process, publishKill: false))
                }
            case .publish(let event):
                op.steps.removeFirst()
                switch event {
                case .start: effects.append(.publish(.start(time: now.wall)))
                case .stop: effects.append(.publish(.stop(time: now.wall)))
                case .reload: effects.append(.publish(.reload(time: now.wall)))
                }
            case .log(let level, let message):
                op.steps.removeFirst()
                effects.append(.log(level, message))
            case .failIfNoProcess:
                op.steps.removeFirst()
                // Circus reaps only on its check_delay poll, so the processes this start
                // spawned still count there when they have already ended: "no process" is
                // a start that spawned none (hooks refused, numprocesses = 0). Counting only
                // live ones would fail the start, and stop the watcher, of programs that end
                // at once by design.
                if activeCount == 0, op.result.started.isEmpty {
                    if op.result.failure == nil { op.result.failure = "no process could be started" }
                    op.steps = Self.stopSteps(name: config.name)
                }
            case .hook(let point):
                op.steps.removeFirst()
                if isHooked(point) {
                    op.waiting = .hook(point)
                    effects.append(.callHook(HookCall(point, awaited: true)))
                }
            case .replaceSequentially:
                op.steps.removeFirst()
                var expanded: [Step] = []
                for pid in activePids {
                    expanded.append(.stopPids([pid], signal: nil, timeout: nil))
                    expanded.append(.spawn(count: 1, warmup: true))
                }
                op.steps.insert(contentsOf: expanded, at: 0)
            }
            current = op
        }
    }

    private func finish(_ op: Operation, into effects: inout [Effect]) {
        guard let id = op.id else { return }
        var result = op.result
        let stopped = Set(result.stopped)
        let started = Set(result.started)
        result.kept = op.initialPids.filter { !stopped.contains($0) && !started.contains($0) && processes[$0] != nil }
        if config.sendHup, result.stopped.isEmpty, result.started.isEmpty {
            result.kept = activePids
        }
        effects.append(.finished(id, result))
    }

    /// What an idle, active watcher does on its own: respawn what crashed (with backoff),
    /// stop when `respawn = false` left nothing running, honour `max_age`.
    private mutating func reconcile(at now: Moment, into effects: inout [Effect]) {
        guard current == nil, queue.isEmpty, status == .active else { return }
        let live = activeCount
        if live < config.numprocesses {
            // An on_demand watcher's processes are started by connections: one that ends is
            // not replaced, and once none is left the watcher stops and waits for the next.
            if config.respawn, !config.onDemand {
                // check_flapping = false: the user says the processes are short-lived by
                // design, so nothing throttles their respawn.
                let delay = config.checkFlapping ? Self.crashBackoff(after: quickExits) : 0
                if delay > 0 {
                    if !backoffArmed {
                        backoffArmed = true
                        effects.append(.log(.warning, "\(config.name): process exited within \(Self.minimumUptime)s "
                            + "\(quickExits) times in a row; respawning in \(delay)s"))
                        effects.append(.armTimer(.respawnBackoff, at: now.monotonic + delay))
                    }
                } else {
                    startInternal(.manage, at: now, into: &effects)
                    return
                }
            } else if processes.isEmpty {
                current = Operation(id: nil, steps: Self.stopSteps(name: config.name), initialPids: [])
                advance(at: now, into: &effects)
                return
            }
        } else if live > config.numprocesses {
            startInternal(.manage, at: now, into: &effects)
            return
        }
        armMaxAge(into: &effects)
    }

    private mutating func startInternal(_ command: WatcherCommand, at now: Moment, into effects: inout [Effect]) {
        current = Operation(id: nil, steps: steps(for: command), initialPids: activePids)
        advance(at: now, into: &effects)
    }

    private mutating func armMaxAge(into effects: inout [Effect]) {
        // A loop rather than filter/compactMap/min: this runs after every respawn.
        var earliest: Double? = nil
        for process in processes.values where !process.stopping {
            if let expiry = process.expiresAt, expiry < earliest ?? .infinity { earliest = expiry }
        }
        guard let earliest, earliest != maxAgeArmedAt else { return }
        maxAgeArmedAt = earliest
        effects.append(.armTimer(.maxAge, at: earliest))
    }

    private mutating func cancelIdleTimers(into effects: inout [Effect]) {
        if backoffArmed {
            backoffArmed = false
            effects.append(.cancelTimer(.respawnBackoff))
        }
        if maxAgeArmedAt != nil {
            maxAgeArmedAt = nil
            effects.append(.cancelTimer(.maxAge))
        }
        quickExits = 0
    }

    /// The stop procedure for one process: stop signal to its process group (to the whole
    /// tree with `stop_children`), a `kill` event, and SIGKILL to the tree when the graceful
    /// timeout runs out. The supervisor reports the exit once the whole group is gone.
    private mutating func beginStop(pid: Int32, signal: Int32?, timeout: Double?, at now: Moment,
                                    into effects: inout [Effect]) {
        guard var process = processes[pid], !process.stopping else { return }
        process.stopping = true
        processes[pid] = process
        let sig = signal ?? config.stopSignal
        let grace = timeout ?? config.gracefulTimeout
        effects.append(.signal(pid: pid, signal: sig, scope: config.stopChildren ? .tree : .group, publishKill: true))
        if sig == 9 { return }
        if grace <= 0 {
            effects.append(.signal(pid: pid, signal: 9, scope: .tree, publishKill: true))
        } else {
            effects.append(.armTimer(.killDeadline(pid: pid), at: now.monotonic + grace))
        }
    }

    /// The `count` smallest worker ids in `1...2*numprocesses` not used by a process of
    /// this watcher, as the next `count` spawns take them one after another (beyond that
    /// range, the next integers: Circus raises there, we keep going).
    private func nextWids(_ count: Int) -> [Int] {
        // n processes hold n wids, so `count` of 1...n+count are free: a flag per candidate
        // (this runs for every spawn) rather than a set of all.
        var used = [Bool](repeating: false, count: processes.count + count + 1)
        for process in processes.values where process.wid < used.count { used[process.wid] = true }
        var wids: [Int] = []
        wids.reserveCapacity(count)
        var wid = 1
        while wids.count < count {
            if !used[wid] { wids.append(wid) }
            wid += 1
        }
        return wids
    }
}

/// A tiny deterministic generator for `max_age_variance` draws, so tests are repeatable.
struct SplitMix64: Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
