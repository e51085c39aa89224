// The vocabulary of the watcher state machine: what comes in, what goes out.
//
// CircusCore is pure: a transition takes the current state, one event and the time,
// and returns effects as data. The supervisor performs them (spawn, signal, publish,
// arm a timer) and feeds the results back as new events. Nothing here sleeps, logs,
// touches the clock or imports Glibc, so every transition is testable with plain values.

public import CircusConfig

/// A reading of both clocks, taken once per event by the supervisor.
public struct Moment: Hashable, Sendable {
    /// Seconds on a monotonic clock: deadlines and durations.
    public var monotonic: Double
    /// Seconds since the epoch: the `time` fields of events and replies.
    public var wall: Double

    public init(monotonic: Double, wall: Double) {
        self.monotonic = monotonic
        self.wall = wall
    }

    /// The same moment `seconds` later on both clocks (for tests and computed deadlines).
    public func advanced(by seconds: Double) -> Moment {
        Moment(monotonic: monotonic + seconds, wall: wall + seconds)
    }
}

/// A watcher's status, exactly as `status` reports it.
public enum WatcherStatus: String, Hashable, Sendable {
    case stopped
    case starting
    case active
    case stopping
}

/// Which processes a signal reaches.
public enum SignalScope: Hashable, Sendable {
    /// The process alone.
    case process
    /// The process and its process group: every descendant that did not leave it (the
    /// program a shell forked, a worker's own children). The stop signal's scope.
    case group
    /// The group and every descendant (stop_children, SIGKILL escalation, `recursive`).
    case tree
}

/// A timer the machine asks the supervisor to arm; keys are unique per watcher.
public enum TimerKey: Hashable, Sendable {
    /// The graceful timeout of a process being stopped ran out: escalate to SIGKILL.
    case killDeadline(pid: Int32)
    /// The `warmup_delay` after a spawn is over: go on with the operation.
    case warmup
    /// A crash-loop backoff is over: try respawning again.
    case respawnBackoff
    /// The earliest `max_age` expiry of a running process.
    case maxAge
}

/// An event the machine publishes about its watcher (Circus's `watcher.<name>.<event>`
/// topics). `kill` events
/// come from `.signal` effects; `updated`, `add` and `remove` from the supervisor.
public enum MachineEvent: Hashable, Sendable {
    /// A process was spawned; `time` is when the spawn began.
    case spawn(pid: Int32, time: Double)
    /// A process ended; `exitCode` is negative for a signal.
    case reap(pid: Int32, time: Double, exitCode: Int32)
    case start(time: Double)
    case stop(time: Double)
    case reload(time: Double)
}

/// Log severity of a message the machine wants written.
public enum LogLevel: Hashable, Sendable {
    case debug, info, warning, error
}

/// An opaque token the supervisor uses to match an operation with its completion.
public struct OperationID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "op#\(rawValue)" }
}

/// What an operation produced, for `waiting` replies (`{"info": {...}}`).
public struct OperationResult: Hashable, Sendable {
    public var stopped: [Int32] = []
    public var started: [Int32] = []
    public var kept: [Int32] = []
    /// Set when the operation could not do what it was asked (spawn failures).
    public var failure: String? = nil

    public init(stopped: [Int32] = [], started: [Int32] = [], kept: [Int32] = [], failure: String? = nil) {
        self.stopped = stopped
        self.started = started
        self.kept = kept
        self.failure = failure
    }
}

/// Something the supervisor must do on the machine's behalf.
public enum Effect: Hashable, Sendable {
    /// Spawn one process with this worker id, then report `processSpawned` or `spawnFailed`.
    case spawn(wid: Int)
    /// Spawn these workers one after another, each between its before_spawn and after_spawn
    /// hooks, off the loop (see `WatcherMachine.spawnsInRuns`). Report, in order and for
    /// each: `hookReturned(.beforeSpawn)` (unless `firstApproved`, for the first), then
    /// `processSpawned` or `spawnFailed`, then `hookReturned(.afterSpawn)`; the run stops
    /// after a refusal or a failure. A run that stops early for another reason (the
    /// watcher's hook thread is wanted for another hook) reports `spawnRunEnded(id)`.
    case spawnRun(SpawnRunPlan)
    /// Send a signal. `publishKill` asks for a `kill` event for every pid signalled.
    case signal(pid: Int32, signal: Int32, scope: SignalScope, publishKill: Bool)
    /// Publish `watcher.<name>.<event>`.
    case publish(MachineEvent)
    /// Arm (or re-arm) a timer at a monotonic deadline; report `timerFired(key)`.
    case armTimer(TimerKey, at: Double)
    case cancelTimer(TimerKey)
    case log(LogLevel, String)
    /// An operation begun with `begin(_:id:at:)` has finished.
    case finished(OperationID, OperationResult)
    /// Call the watcher's hooks for this point. Effects that follow wait until they have
    /// answered (so that events keep Circus's order); when `call.awaited`, report the
    /// answer with `hookReturned(_:allowed:at:)`.
    case callHook(HookCall)
}

/// A spawn run as the machine planned it (`Effect.spawnRun`).
public struct SpawnRunPlan: Hashable, Sendable {
    public var id: Int
    /// The workers, in spawn order.
    public var wids: [Int]
    /// before_spawn already said yes for the first worker (a retry of a failed spawn).
    public var firstApproved: Bool
    /// Which hooks the run calls: those configured when it was planned (a `set` while it
    /// runs applies to the next run).
    public var callsBeforeSpawn: Bool
    public var callsAfterSpawn: Bool

    public init(id: Int, wids: [Int], firstApproved: Bool, callsBeforeSpawn: Bool, callsAfterSpawn: Bool) {
        self.id = id
        self.wids = wids
        self.firstApproved = firstApproved
        self.callsBeforeSpawn = callsBeforeSpawn
        self.callsAfterSpawn = callsAfterSpawn
    }
}

/// One call of a watcher's hooks, with the arguments Circus passes at that point.
public struct HookCall: Hashable, Sendable {
    public var point: HookPoint
    public var pid: Int32?
    public var signum: Int32?
    /// Seconds since the epoch (`before_reap`, `after_reap`).
    public var time: Double?
    public var exitCode: Int32?
    /// `after_reap`'s `process_status`: nil for Circus's None (a process being stopped),
    /// 2 for one that died on its own.
    public var processStatus: Int?
    /// True when the machine waits for the answer (`hookReturned`).
    public var awaited: Bool

    public init(_ point: HookPoint, pid: Int32? = nil, signum: Int32? = nil, time: Double? = nil,
                exitCode: Int32? = nil, processStatus: Int? = nil, awaited: Bool) {
        self.point = point
        self.pid = pid
        self.signum = signum
        self.time = time
        self.exitCode = exitCode
        self.processStatus = processStatus
        self.awaited = awaited
    }
}
