import CircusConfig
import CircusCore
import OrderedCollections
import Testing

/// Drives a `WatcherMachine` the way the supervisor does, with a fake clock and fake pids:
/// `.spawn` effects are answered at once (success, or failure while `failSpawns` > 0),
/// everything else is recorded for assertions.
struct Driver {
    var machine: WatcherMachine
    var now = Moment(monotonic: 1000, wall: 1_700_000_000)
    var nextPid: Int32 = 100
    var failSpawns = 0
    var spawnedWids: [Int] = []
    var log: [Effect] = []
    var timers: [TimerKey: Double] = [:]
    var finished: [OperationID: OperationResult] = [:]
    var nextOp: UInt64 = 1
    /// The spawn run under way, played as the supervisor's hook thread plays it.
    var run: Run?

    /// Where a spawn run is: the worker at `index` and what comes next for it.
    struct Run {
        enum Stage { case beforeSpawn, spawn, afterSpawn }
        var wids: [Int]
        var callsBeforeSpawn: Bool
        var callsAfterSpawn: Bool
        var index = 0
        var stage: Stage
    }

    init(_ configure: (inout WatcherConfig) -> Void = { _ in }) {
        var config = WatcherConfig(name: "web", cmd: "sleep 100")
        configure(&config)
        machine = WatcherMachine(config: config)
    }

    mutating func advance(_ seconds: Double) { now = now.advanced(by: seconds) }

    @discardableResult
    mutating func command(_ command: WatcherCommand) -> OperationID {
        let id = OperationID(nextOp)
        nextOp += 1
        apply(machine.begin(command, id: id, at: now))
        return id
    }

    mutating func exit(_ pid: Int32, code: Int32 = 0) { apply(machine.processExited(pid: pid, exitCode: code, at: now)) }

    mutating func fire(_ key: TimerKey) {
        #expect(timers[key] != nil, "timer \(key) is not armed")
        timers[key] = nil
        apply(machine.timerFired(key, at: now))
    }

    mutating func apply(_ effects: [Effect]) {
        var queue = effects[...]
        repeat {
            while let effect = queue.popFirst() {
                log.append(effect)
                switch effect {
                case .spawn(let wid):
                    queue.append(contentsOf: spawn(wid))
                case .spawnRun(let plan):
                    run = Run(wids: plan.wids, callsBeforeSpawn: plan.callsBeforeSpawn,
                              callsAfterSpawn: plan.callsAfterSpawn,
                              stage: plan.callsBeforeSpawn && !plan.firstApproved ? .beforeSpawn : .spawn)
                    askRunHook()
                case .armTimer(let key, let at): timers[key] = at
                case .cancelTimer(let key): timers[key] = nil
                case .finished(let id, let result): finished[id] = result
                default: break
                }
            }
            // The run's thread spawns once the loop acted on its previous report.
            if let r = run, r.stage == .spawn { queue.append(contentsOf: spawnInRun()) }
        } while !queue.isEmpty
    }

    private mutating func spawn(_ wid: Int) -> [Effect] {
        spawnedWids.append(wid)
        if failSpawns > 0 {
            failSpawns -= 1
            return machine.spawnFailed(wid: wid, message: "exec 'x': No such file or directory", at: now)
        }
        nextPid += 1
        return machine.processSpawned(wid: wid, pid: nextPid, at: now)
    }

    /// The run's spawn of its current worker; a failure ends the run.
    private mutating func spawnInRun() -> [Effect] {
        guard var r = run else { return [] }
        let failing = failSpawns > 0
        let effects = spawn(r.wids[r.index])
        if failing {
            run = nil
            return effects
        }
        if r.callsAfterSpawn {
            r.stage = .afterSpawn
            run = r
        } else {
            run = r
            nextInRun()
        }
        askRunHook()
        return effects
    }

    private mutating func nextInRun() {
        guard var r = run else { return }
        r.index += 1
        r.stage = r.callsBeforeSpawn ? .beforeSpawn : .spawn
        run = r.index < r.wids.count ? r : nil
    }

    /// Logs the hook call the run's thread makes now, as the effect the one-at-a-time
    /// path would have asked for, so that tests read both alike.
    private mutating func askRunHook() {
        guard let r = run else { return }
        switch r.stage {
        case .beforeSpawn: log.append(.callHook(HookCall(.beforeSpawn, awaited: true)))
        case .afterSpawn: log.append(.callHook(HookCall(.afterSpawn, pid: nextPid, awaited: true)))
        case .spawn: break
        }
    }

    /// The run's thread reports a hook's answer: it goes on, or stops at a refusal.
    mutating func runHookAnswered(_ point: HookPoint, _ allowed: Bool) {
        guard var r = run, (point == .beforeSpawn && r.stage == .beforeSpawn)
            || (point == .afterSpawn && r.stage == .afterSpawn) else { return }
        if !allowed {
            run = nil
        } else if point == .beforeSpawn {
            r.stage = .spawn
            run = r
        } else {
            run = r
            nextInRun()
            askRunHook()
        }
    }

    /// Published events as "event pid" strings, in order.
    var events: [String] {
        log.compactMap {
            guard case .publish(let event) = $0 else { return nil }
            switch event {
            case .spawn(let pid, _): return "spawn \(pid)"
            case .reap(let pid, _, let code): return "reap \(pid) \(code)"
            case .start: return "start"
            case .stop: return "stop"
            case .reload: return "reload"
            }
        }
    }

    var signals: [String] {
        log.compactMap {
            guard case .signal(let pid, let sig, let scope, _) = $0 else { return nil }
            return "\(pid):\(sig)\(scope == .tree ? "+tree" : "")"
        }
    }

    mutating func clearLog() { log.removeAll() }
}

@Suite("Watcher state machine")
struct WatcherMachineTests {
    @Test func startSpawnsEveryProcessThenPublishesStart() {
        var d = Driver { $0.numprocesses = 3 }
        let op = d.command(.start)
        #expect(d.events == ["spawn 101", "spawn 102", "spawn 103", "start"])
        #expect(d.machine.status == .active)
        #expect(d.spawnedWids == [1, 2, 3])
        #expect(d.finished[op] == OperationResult(started: [101, 102, 103]))
    }

    @Test func startOnActiveWatcherOnlyTopsUpAndReportsKept() {
        var d = Driver { $0.numprocesses = 2 }
        d.command(.start)
        d.clearLog()
        let op = d.command(.start)
        #expect(d.events.isEmpty)
        #expect(d.finished[op] == OperationResult(kept: [101, 102]))
    }

    @Test func warmupDelayWaitsAfterEverySpawnIncludingTheLast() {
        var d = Driver {
            $0.numprocesses = 2
            $0.warmupDelay = 1.5
        }
        let op = d.command(.start)
        #expect(d.events == ["spawn 101"])
        #expect(d.timers[.warmup] == d.now.monotonic + 1.5)
        d.advance(1.5)
        d.fire(.warmup)
        #expect(d.events == ["spawn 101", "spawn 102"])
        #expect(d.machine.status == .starting)
        d.advance(1.5)
        d.fire(.warmup)
        #expect(d.events == ["spawn 101", "spawn 102", "start"])
        #expect(d.finished[op] != nil)
    }

    @Test func stopSignalsWaitsForEveryExitThenPublishesStop() {
        var d = Driver { $0.numprocesses = 2 }
        d.command(.start)
        d.clearLog()
        let op = d.command(.stop)
        #expect(d.machine.status == .stopping)
        #expect(d.signals == ["101:15", "102:15"])
        #expect(d.timers[.killDeadline(pid: 101)] == d.now.monotonic + 30)
        d.exit(101, code: -15)
        #expect(d.finished[op] == nil)
        d.exit(102, code: -15)
        #expect(d.events == ["reap 101 -15", "reap 102 -15", "stop"])
        #expect(d.machine.status == .stopped)
        #expect(d.timers.isEmpty)
        #expect(d.finished[op] == OperationResult(stopped: [101, 102]))
    }

    @Test func stubbornProcessIsKilledWithItsTreeAfterGracefulTimeout() {
        var d = Driver { $0.gracefulTimeout = 3 }
        d.command(.start)
        d.clearLog()
        d.command(.stop)
        d.advance(3)
        d.fire(.killDeadline(pid: 101))
        #expect(d.signals == ["101:15", "101:9+tree"])
        d.exit(101, code: -9)
        #expect(d.events == ["reap 101 -9", "stop"])
    }

    @Test func zeroGracefulTimeoutEscalatesAtOnce() {
        var d = Driver { $0.gracefulTimeout = 0 }
        d.command(.start)
        d.clearLog()
        d.command(.stop)
        #expect(d.signals == ["101:15", "101:9+tree"])
    }

    @Test func stopChildrenSignalsTheWholeTree() {
        var d = Driver {
            $0.stopChildren = true
            $0.stopSignal = 2
        }
        d.command(.start)
        d.clearLog()
        d.command(.stop)
        #expect(d.signals == ["101:2+tree"])
    }

    @Test func crashedProcessIsRespawnedAtOnce() {
        var d = Driver { $0.numprocesses = 2 }
        d.command(.start)
        d.advance(5)
        d.clearLog()
        d.exit(101, code: 3)
        #expect(d.events == ["reap 101 3", "spawn 103"])
        #expect(d.spawnedWids.last == 1, "the freed worker id is reused")
        #expect(d.machine.activePids == [102, 103])
    }

    @Test func crashLoopBacksOffInsteadOfSpinning() {
        var d = Driver()
        d.command(.start)
        d.advance(0.01)
        d.exit(101, code: 1)  // first quick exit: respawned at once
        #expect(d.machine.activePids == [102])
        d.advance(0.01)
        d.clearLog()
        d.exit(102, code: 1)  // second quick exit: wait 0.1 s
        #expect(d.events == ["reap 102 1"])
        #expect(d.timers[.respawnBackoff] == d.now.monotonic + 0.1)
        d.advance(0.1)
        d.fire(.respawnBackoff)
        #expect(d.events == ["reap 102 1", "spawn 103"])
        d.advance(0.01)
        d.exit(103, code: 1)
        #expect(d.timers[.respawnBackoff] == d.now.monotonic + 0.2, "the delay doubles")
    }

    @Test(arguments: [(3, 0), (70, 9.9)])
    func backoffGrowsToItsCap(quick: Int, minimum: Double) {
        #expect(WatcherMachine.crashBackoff(after: quick) >= minimum)
        #expect(WatcherMachine.crashBackoff(after: quick) <= WatcherMachine.maximumBackoff)
    }

    @Test func longLivedProcessResetsTheBackoff() {
        var d = Driver()
        d.command(.start)
        for _ in 0..<3 {
            d.advance(0.01)
            d.exit(d.machine.activePids[0], code: 1)
            if d.timers[.respawnBackoff] != nil {
                d.advance(10)
                d.fire(.respawnBackoff)
            }
        }
        d.advance(2)
        d.clearLog()
        d.exit(d.machine.activePids[0], code: 1)
        #expect(d.timers[.respawnBackoff] == nil)
        #expect(d.machine.activePids.count == 1)
    }

    @Test func spawnFailureIsRetriedMaxRetryTimesThenStopsTheWatcher() {
        var d = Driver { $0.maxRetry = 3 }
        d.failSpawns = 100
        let op = d.command(.start)
        #expect(d.spawnedWids.count == 3)
        #expect(d.machine.status == .stopped)
        #expect(d.machine.lastError == "exec 'x': No such file or directory")
        #expect(d.finished[op]?.failure == "exec 'x': No such file or directory")
        #expect(d.events == ["stop"])
    }

    @Test func maxRetryZeroNeverTries() {
        var d = Driver { $0.maxRetry = 0 }
        let op = d.command(.start)
        #expect(d.spawnedWids.isEmpty)
        #expect(d.machine.status == .stopped)
        #expect(d.finished[op]?.failure != nil)
    }

    @Test func infiniteRetryGoesThroughTheBackoffTimer() {
        var d = Driver { $0.maxRetry = -1 }
        d.failSpawns = 2
        d.command(.start)
        #expect(d.spawnedWids.count == 1)
        #expect(d.timers[.respawnBackoff] != nil)
        d.advance(1)
        d.fire(.respawnBackoff)
        #expect(d.spawnedWids.count == 2)
        d.advance(1)
        d.fire(.respawnBackoff)
        #expect(d.spawnedWids.count == 3)
        #expect(d.machine.status == .active)
        #expect(d.machine.lastError == nil)
    }

    @Test func respawnFalseStopsTheWatcherWhenTheLastProcessEnds() {
        var d = Driver {
            $0.respawn = false
            $0.numprocesses = 2
        }
        d.command(.start)
        d.advance(5)
        d.clearLog()
        d.exit(101)
        #expect(d.events == ["reap 101 0"])
        #expect(d.machine.status == .active)
        d.exit(102)
        #expect(d.events == ["reap 101 0", "reap 102 0", "stop"])
        #expect(d.machine.status == .stopped)
        d.clearLog()
        d.command(.start)
        #expect(d.events == ["spawn 103", "spawn 104", "start"], "start fires a one-shot watcher again")
    }

    @Test func gracefulReloadSpawnsNewOnesFirstThenStopsTheOldest() {
        var d = Driver { $0.numprocesses = 2 }
        d.command(.start)
        d.clearLog()
        let op = d.command(.reload(graceful: true, sequential: false))
        #expect(d.events == ["spawn 103", "spawn 104"])
        #expect(d.signals == ["101:15", "102:15"])
        #expect(d.spawnedWids.suffix(2) == [3, 4])
        d.exit(101, code: -15)
        d.exit(102, code: -15)
        #expect(d.events.suffix(3) == ["reap 101 -15", "reap 102 -15", "reload"])
        #expect(d.finished[op] == OperationResult(stopped: [101, 102], started: [103, 104]))
    }

    @Test func sequentialReloadReplacesOneProcessAtATime() {
        var d = Driver { $0.numprocesses = 2 }
        d.command(.start)
        d.clearLog()
        d.command(.reload(graceful: true, sequential: true))
        #expect(d.signals == ["101:15"])
        d.exit(101, code: -15)
        #expect(d.events == ["reap 101 -15", "spawn 103"])
        #expect(d.signals == ["101:15", "102:15"])
        d.exit(102, code: -15)
        #expect(d.events == ["reap 101 -15", "spawn 103", "reap 102 -15", "spawn 104", "reload"])
    }

    @Test func sendHupReloadOnlySignals() {
        var d = Driver { $0.sendHup = true }
        d.command(.start)
        d.clearLog()
        let op = d.command(.reload(graceful: true, sequential: false))
        #expect(d.signals == ["101:1"])
        #expect(d.events == ["reload"])
        #expect(d.finished[op] == OperationResult(kept: [101]))
    }

    @Test func nonGracefulReloadIsARestart() {
        var d = Driver()
        d.command(.start)
        d.clearLog()
        let op = d.command(.reload(graceful: false, sequential: false))
        d.exit(101, code: -15)
        #expect(d.events == ["reap 101 -15", "stop", "spawn 102", "start"])
        #expect(d.finished[op] == OperationResult(stopped: [101], started: [102]))
    }

    @Test func decreasingNumprocessesStopsTheOldest() {
        var d = Driver { $0.numprocesses = 3 }
        d.command(.start)
        d.clearLog()
        var config = d.machine.config
        config.numprocesses = 1
        d.machine.replaceConfig(config)
        let op = d.command(.manage)
        #expect(d.signals == ["101:15", "102:15"])
        d.exit(101, code: -15)
        d.exit(102, code: -15)
        #expect(d.finished[op] == OperationResult(stopped: [101, 102], kept: [103]))
        #expect(d.machine.activePids == [103])
    }

    @Test func killCommandStopsThenTheProcessIsReplaced() {
        var d = Driver { $0.numprocesses = 2 }
        d.command(.start)
        d.advance(5)
        d.clearLog()
        let op = d.command(.kill(pids: [102], signal: 2, gracefulTimeout: 1))
        #expect(d.signals == ["102:2"])
        #expect(d.timers[.killDeadline(pid: 102)] == d.now.monotonic + 1)
        d.exit(102, code: -2)
        #expect(d.finished[op] != nil)
        #expect(d.events == ["reap 102 -2", "spawn 103"])
    }

    @Test func maxAgeRotatesExpiredProcesses() {
        var d = Driver {
            $0.maxAge = 10
            $0.maxAgeVariance = 0
        }
        d.command(.start)
        #expect(d.timers[.maxAge] == d.now.monotonic + 10)
        d.advance(10)
        d.clearLog()
        d.fire(.maxAge)
        #expect(d.signals == ["101:15"])
        #expect(d.events == ["spawn 102"])
        d.exit(101, code: -15)
        #expect(d.events == ["spawn 102", "reap 101 -15"])
        #expect(d.machine.activePids == [102])
    }

    @Test func commandsQueueInsteadOfFailing() {
        var d = Driver()
        d.command(.start)
        let stop = d.command(.stop)
        let start = d.command(.start)
        #expect(d.finished[stop] == nil)
        #expect(d.finished[start] == nil, "start waits for the stop")
        d.exit(101, code: -15)
        #expect(d.finished[stop] != nil)
        #expect(d.finished[start] == OperationResult(started: [102]))
        #expect(d.machine.status == .active)
    }

    @Test func crashDuringAnOperationIsRepairedAfterIt() {
        var d = Driver {
            $0.numprocesses = 2
            $0.warmupDelay = 1
        }
        d.command(.start)
        d.advance(1)
        d.fire(.warmup)
        // 101 crashes while the start waits for 102's warmup: nothing happens yet.
        d.exit(101, code: 1)
        #expect(d.machine.activePids == [102])
        d.advance(1)
        d.fire(.warmup)
        #expect(d.machine.activePids == [102, 103], "the start itself tops up what crashed")
        d.advance(1)
        d.fire(.warmup)
        #expect(d.machine.status == .active)
    }

    @Test func abandonedProcessesAreReapedButNotReplaced() {
        var d = Driver { $0.numprocesses = 2 }
        d.command(.start)
        d.advance(5)
        d.apply(d.machine.abandon())
        d.clearLog()
        #expect(d.signals.isEmpty)
        d.exit(101, code: -9)
        #expect(d.events == ["reap 101 -9"])
        #expect(d.machine.activePids == [102])
        #expect(d.machine.status == .stopped)
    }

    @Test func stopInterruptsAStartSleepingInItsWarmup() {
        var d = Driver {
            $0.numprocesses = 3
            $0.warmupDelay = 30
        }
        let start = d.command(.start)
        #expect(d.timers[.warmup] != nil)
        let stop = d.command(.stop)
        #expect(d.timers[.warmup] == nil)
        #expect(d.finished[start]?.failure == "interrupted by stop")
        #expect(d.finished[start]?.started == [101])
        #expect(d.signals == ["101:15"])
        d.exit(101, code: -15)
        #expect(d.finished[stop] != nil)
        #expect(d.machine.status == .stopped)
        #expect(d.events == ["spawn 101", "reap 101 -15", "stop"])
    }

    @Test func stopOfAStoppedWatcherFinishesAtOnce() {
        var d = Driver()
        let op = d.command(.stop)
        #expect(d.finished[op] == OperationResult())
        #expect(d.events.isEmpty)
    }
}
