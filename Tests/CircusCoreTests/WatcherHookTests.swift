// Where the watcher machine waits for hooks, and Circus's abort rules for their answers.

import CircusConfig
import CircusCore
import OrderedCollections
import Testing

extension Driver {
    /// Hooks at these points, as if the configuration named them.
    init(hooks points: [HookPoint], _ configure: (inout WatcherConfig) -> Void = { _ in }) {
        self.init { config in
            for point in points {
                config.hooks[point] = HookSpec(
                    point: point, target: try! HookTarget(parsing: "./h.so:f"), signature: nil, ignoreFailure: false)
            }
            configure(&config)
        }
    }

    /// The hook calls asked for so far, as `point` or `point pid`.
    var hookCalls: [String] {
        log.compactMap {
            guard case .callHook(let call) = $0 else { return nil }
            return call.pid.map { "\(call.point.rawValue) \($0)" } ?? call.point.rawValue
        }
    }

    /// Two processes, short-lived by design (`check_flapping = false`), spawned in runs
    /// for their after_spawn hook.
    static func shortLivedPairWithAfterSpawn() -> Driver {
        Driver(hooks: [.afterSpawn]) { config in
            config.numprocesses = 2
            config.checkFlapping = false
        }
    }

    mutating func answer(_ point: HookPoint, _ allowed: Bool) {
        runHookAnswered(point, allowed)
        apply(machine.hookReturned(point, allowed: allowed, at: now))
    }
}

@Suite("Watcher hooks")
struct WatcherHookTests {
    @Test func startWaitsForEachHookInCircusOrder() {
        var d = Driver(hooks: [.beforeStart, .beforeSpawn, .afterSpawn, .afterStart])
        let op = d.command(.start)
        #expect(d.hookCalls == ["before_start"] && d.spawnedWids.isEmpty)
        d.answer(.beforeStart, true)
        #expect(d.hookCalls == ["before_start", "before_spawn"] && d.spawnedWids.isEmpty)
        d.answer(.beforeSpawn, true)
        // The process runs, but `spawn` is published only once after_spawn accepted it.
        #expect(d.hookCalls.last == "after_spawn 101" && d.events.isEmpty)
        d.answer(.afterSpawn, true)
        #expect(d.events == ["spawn 101"] && d.hookCalls.last == "after_start")
        #expect(d.machine.status == .starting)
        d.answer(.afterStart, true)
        #expect(d.events == ["spawn 101", "start"] && d.machine.status == .active)
        #expect(d.finished[op] == OperationResult(started: [101]))
    }

    @Test func nativeSpawnHooksSpawnInRunsThatARunCutShortAsksForAgain() {
        var d = Driver(hooks: [.afterSpawn]) { $0.numprocesses = 3 }
        d.command(.start)
        var runs: [[Int]] { d.log.compactMap { if case .spawnRun(let plan) = $0 { plan.wids } else { nil } } }
        #expect(runs == [[1, 2, 3]] && d.hookCalls == ["after_spawn 101"])
        // The thread stops after 101 (another hook of the watcher wants it).
        d.run = nil
        d.answer(.afterSpawn, true)
        #expect(runs == [[1, 2, 3]] && d.events == ["spawn 101"])
        d.apply(d.machine.spawnRunEnded(id: 1, at: d.now))
        #expect(runs == [[1, 2, 3], [2, 3]])
        // A report of the first run that comes late changes nothing.
        d.apply(d.machine.spawnRunEnded(id: 1, at: d.now))
        #expect(runs == [[1, 2, 3], [2, 3]])
        d.answer(.afterSpawn, true)
        d.answer(.afterSpawn, true)
        #expect(d.events == ["spawn 101", "spawn 102", "spawn 103", "start"])
        #expect(d.hookCalls == ["after_spawn 101", "after_spawn 102", "after_spawn 103"])
    }

    @Test func aStartWhoseProcessesEndAsTheyAreSpawnedEndsAfterTheNumberItSettledOn() {
        // Circus settles how many to spawn when the spawning begins. Counted again after
        // each report of a run, processes that end before the run's next report kept the
        // start going for ever, and the stop queued behind it (a `quit`) never ran.
        var d = Driver.shortLivedPairWithAfterSpawn()
        let start = d.command(.start)
        d.answer(.afterSpawn, true)
        d.exit(101)
        let stop = d.command(.stop)
        d.answer(.afterSpawn, true)
        #expect(d.finished[start] == OperationResult(started: [101, 102]))
        #expect(d.spawnedWids == [1, 2] && d.machine.status == .stopping)
        d.exit(102)
        #expect(d.finished[stop] != nil && d.machine.status == .stopped)
        #expect(d.events == ["spawn 101", "reap 101 0", "spawn 102", "start", "reap 102 0", "stop"])
    }

    @Test func aStartWhoseProcessesHaveAlreadyEndedSucceedsAsInCircus() {
        // Circus counts the processes a start spawned until its check_delay poll reaps
        // them: a start of programs that end at once goes on, and they are respawned.
        var d = Driver.shortLivedPairWithAfterSpawn()
        let start = d.command(.start)
        d.answer(.afterSpawn, true)
        d.exit(101)
        d.exit(102)
        d.answer(.afterSpawn, true)
        #expect(d.finished[start] == OperationResult(started: [101, 102]))
        #expect(d.machine.status == .active)
        #expect(d.events == ["spawn 101", "reap 101 0", "reap 102 0", "start"])
        // The respawn of both, in a run, waits for its first after_spawn.
        #expect(d.spawnedWids == [1, 2, 1])
    }

    @Test func aRunCallsTheHooksItWasPlannedWithWhateverASetChangesMeanwhile() {
        // after_spawn added while a run without it goes on: the run's processes are not
        // waited for; the next run calls it.
        var d = Driver(hooks: [.beforeSpawn]) { $0.numprocesses = 2 }
        d.command(.start)
        var config = d.machine.config
        config.hooks[.afterSpawn] = HookSpec(
            point: .afterSpawn, target: try! HookTarget(parsing: "./h.so:f"), signature: nil, ignoreFailure: false)
        d.machine.replaceConfig(config)
        d.answer(.beforeSpawn, true)
        d.answer(.beforeSpawn, true)
        #expect(d.events == ["spawn 101", "spawn 102", "start"])
        #expect(d.hookCalls == ["before_spawn", "before_spawn"])
        // Removed while a run with it goes on: the run still answers for it.
        var e = Driver(hooks: [.afterSpawn]) { $0.numprocesses = 2 }
        e.command(.start)
        var removed = e.machine.config
        removed.hooks[.afterSpawn] = nil
        e.machine.replaceConfig(removed)
        e.answer(.afterSpawn, true)
        e.answer(.afterSpawn, true)
        #expect(e.events == ["spawn 101", "spawn 102", "start"])
    }

    @Test func pythonOrPluginSpawnHooksAreAskedOneSpawnAtATime() {
        var d = Driver(hooks: []) { config in
            config.hooks[.afterSpawn] = HookSpec(
                point: .afterSpawn, target: try! HookTarget(parsing: "myapp.hooks.check"), signature: nil,
                ignoreFailure: false)
        }
        #expect(!d.machine.spawnsInRuns)
        var plugin = Driver(hooks: [.afterSpawn])
        #expect(plugin.machine.spawnsInRuns)
        plugin.machine.pluginHooks = [.beforeSpawn]
        #expect(!plugin.machine.spawnsInRuns)
        d.command(.start)
        #expect(d.spawnedWids == [1] && d.hookCalls == ["after_spawn 101"])
        #expect(!d.log.contains { if case .spawnRun = $0 { true } else { false } })
    }

    @Test func beforeStartSayingNoLeavesTheWatcherStopped() {
        var d = Driver(hooks: [.beforeStart])
        let op = d.command(.start)
        d.answer(.beforeStart, false)
        #expect(d.spawnedWids.isEmpty && d.events.isEmpty && d.machine.status == .stopped)
        #expect(d.finished[op]?.failure == "the before_start hook of 'web' refused the start")
    }

    @Test func beforeSpawnSayingNoStopsTheWatcher() {
        var d = Driver(hooks: [.beforeSpawn]) { $0.numprocesses = 2 }
        let op = d.command(.start)
        d.answer(.beforeSpawn, true)
        d.answer(.beforeSpawn, false)
        #expect(d.spawnedWids == [1])
        #expect(d.signals == ["101:15"] && d.machine.status == .stopping)
        d.exit(101, code: -15)
        #expect(d.events == ["spawn 101", "reap 101 -15", "stop"] && d.machine.status == .stopped)
        #expect(d.finished[op]?.failure == "the before_spawn hook of 'web' refused a spawn")
    }

    @Test func afterSpawnSayingNoKillsThatProcessAndStopsTheWatcher() {
        var d = Driver(hooks: [.afterSpawn])
        let op = d.command(.start)
        d.answer(.afterSpawn, false)
        #expect(d.signals == ["101:15"] && !d.events.contains("spawn 101"))
        d.exit(101, code: -15)
        #expect(d.machine.status == .stopped)
        #expect(d.finished[op]?.failure == "the after_spawn hook of 'web' refused process 101")
    }

    @Test func afterStartSayingNoStopsTheWatcher() {
        var d = Driver(hooks: [.afterStart])
        let op = d.command(.start)
        d.answer(.afterStart, false)
        d.exit(101, code: -15)
        #expect(d.events == ["spawn 101", "reap 101 -15", "stop"] && d.machine.status == .stopped)
        #expect(d.finished[op]?.failure == "the after_start hook of 'web' refused the start")
    }

    @Test func stopHooksAreAnsweredWhateverTheySay() {
        var d = Driver(hooks: [.beforeStop, .afterStop, .beforeReap, .afterReap])
        d.command(.start)
        d.clearLog()
        let op = d.command(.stop)
        #expect(d.hookCalls == ["before_stop"] && d.signals.isEmpty)
        d.answer(.beforeStop, false)
        #expect(d.signals == ["101:15"])
        d.exit(101, code: -15)
        #expect(d.hookCalls == ["before_stop", "before_reap 101", "after_reap 101", "after_stop"])
        #expect(d.machine.status == .stopped && d.finished[op] == nil)
        d.answer(.afterStop, false)
        #expect(d.finished[op] == OperationResult(stopped: [101]))
        // A process being stopped is reaped with Circus's process_status None.
        let afterReap = d.log.compactMap { effect -> HookCall? in
            guard case .callHook(let call) = effect, call.point == .afterReap else { return nil }
            return call
        }.first
        #expect(afterReap?.processStatus == nil && afterReap?.exitCode == -15 && afterReap?.awaited == false)
    }

    @Test func spawnRetriesAskBeforeSpawnOnlyOnce() {
        var d = Driver(hooks: [.beforeSpawn])
        d.failSpawns = 2
        d.command(.start)
        d.answer(.beforeSpawn, true)
        #expect(d.spawnedWids == [1, 1, 1] && d.hookCalls == ["before_spawn"])
        #expect(d.events == ["spawn 101", "start"])
    }
}
