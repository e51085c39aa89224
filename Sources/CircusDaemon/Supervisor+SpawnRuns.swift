// Spawn runs: how a watcher whose spawn hooks are native (C or libffi) spawns.
//
// Circus spawns a watcher's processes one after another, each between its before_spawn
// and after_spawn hooks. Asked one hook at a time, each hook is a round trip between the
// loop and the watcher's hook thread: two thread wake-ups, which on a machine busy with
// the children just started (each one exec'ing) wait for a core, and a start of 200
// processes pays them 200 or 400 times. A run instead hands the hook thread a list of
// spawns prepared on the loop (requests, sockets, output pipes); the thread calls
// before_spawn, spawns, calls after_spawn, and goes on with the next, reporting each step
// to the loop as it happens. The loop acts on the reports in order, exactly as on the
// answers of hooks asked one at a time (same events, same order, same abort rules): the
// thread stops at the first refusal or failure, as Circus's loop does, so no hook is
// called for a process Circus would not spawn.
//
// The reports gather in the run's mailbox, which the loop takes at most a millisecond
// after the first one came (a deferred wake: `EventLoop.Remote.post(_:within:)`) and at
// once at the run's end: a loop woken twice per spawn spends more on waking than on the
// spawns. A hook's deadline still holds: a run silent for `hook_timeout` is stuck in the
// hook it was calling, which then counts as failed.

import CircusConfig
import CircusCore
import CircusHooks
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections
import Synchronization

/// One step of a spawn run, as the hook thread reports it to the loop.
enum SpawnRunReport: Sendable {
    /// A hook answered (`micros`: how long it ran).
    case hook(HookPoint, HookOutcome, micros: Int)
    /// Worker `index` of the run was spawned; `at` is when its spawn began.
    case spawned(index: Int, SpawnedProcess, at: Moment)
    case failed(index: Int, message: String, at: Moment)
    /// The thread is done with the run; workers from `next` on were not spawned.
    case ended(next: Int)
}

/// A spawn run under way. Loop-owned, but for `cancel()`, which the hook thread reads.
final class SpawnRun {
    /// What the run's next report will be, for the hook deadline.
    enum Stage { case beforeSpawn(Int), spawn(Int), afterSpawn(Int), done }

    let id: Int
    let wids: [Int]
    /// What was prepared for each worker; nil once handed on or released.
    var prepared: [PreparedSpawn?]
    let before: NativeSpawnHook?
    let after: NativeSpawnHook?
    let timeout: Double
    var stage: Stage
    var deadline: EventLoop.TimerID?
    let mailbox = Mailbox()
    /// The loop no longer follows the run (a hook outlived its deadline, or a spawned child
    /// could not be watched): what it still reports is undone.
    var abandoned = false
    /// Set by `cancel()`; the hook thread reads it before each worker.
    let cancelled = Flag()

    init(id: Int, wids: [Int], prepared: [PreparedSpawn?], before: NativeSpawnHook?, after: NativeSpawnHook?,
         timeout: Double, firstApproved: Bool) {
        self.id = id
        self.wids = wids
        self.prepared = prepared
        self.before = before
        self.after = after
        self.timeout = timeout
        stage = before != nil && !firstApproved ? .beforeSpawn(0) : .spawn(0)
    }

    /// Asks the hook thread to stop before its next worker.
    func cancel() { cancelled.set() }

    /// The stage that follows worker `index`'s last step.
    func nextStage(after index: Int) -> Stage {
        let next = index + 1
        guard next < wids.count else { return .done }
        return before != nil ? .beforeSpawn(next) : .spawn(next)
    }

    /// The reports the hook thread made and the loop has not taken yet.
    final class Mailbox: Sendable {
        private struct State {
            var reports: [SpawnRunReport] = []
            /// When the last report was made (monotonic): the run's last sign of life.
            var lastReport: Double
            var takeSoon = false
            var takeNow = false
        }

        /// How the loop must be told of a report just added.
        enum Wake { case none, soon, now }

        private let state = Mutex(State(lastReport: EventLoop.monotonicNow()))
        /// How long reports may wait for the loop while the run goes on.
        static let gathering = 0.001

        /// Adds a report; says whether the caller must ask the loop to take the reports:
        /// at once for the run's last report, within `gathering` for the first of a batch
        /// when `more` reports (of later workers) may follow.
        func add(_ report: SpawnRunReport, more: Bool) -> Wake {
            let now = EventLoop.monotonicNow()
            return state.withLock { s in
                s.reports.append(report)
                s.lastReport = now
                if case .ended = report {
                    guard !s.takeNow else { return .none }
                    s.takeNow = true
                    return .now
                }
                guard more, !s.takeSoon, !s.takeNow else { return .none }
                s.takeSoon = true
                return .soon
            }
        }

        /// Takes what is there, with the time of the newest report.
        func take() -> (reports: [SpawnRunReport], lastReport: Double) {
            state.withLock { s in
                let taken = (s.reports, s.lastReport)
                s.reports = []
                s.takeSoon = false
                s.takeNow = false
                return taken
            }
        }
    }

    /// A flag set once, read from any thread.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }
}

/// A native spawn hook as a run calls it.
struct NativeSpawnHook: Sendable {
    /// Nil when the configuration no longer names a native hook there (a `set` since the
    /// run was planned): the call fails.
    let function: HookFunction?
    /// The name in `hook_failure`'s timeout message.
    let name: String
    let ignored: Bool
    /// Where what it logs goes.
    let log: @Sendable (HookLogLevel, String) -> Void
}

/// What the hook thread needs for a run: values only.
private struct SpawnRunJob: Sendable {
    let watcher: String
    let requests: [Result<SpawnRequest, SpawnFailure>]
    let before: NativeSpawnHook?
    let after: NativeSpawnHook?
    let firstApproved: Bool
    let spawner: Spawner
    let cancelled: SpawnRun.Flag

    /// Runs on the watcher's hook thread: before_spawn, spawn, after_spawn, for each worker.
    /// `report`'s second argument says whether reports of later workers may follow: those
    /// of the run's last worker need no early look from the loop, as the run's end, which
    /// the loop takes at once, comes right after them.
    func run(report send: (SpawnRunReport, _ more: Bool) -> Void) {
        for index in requests.indices {
            let more = index < requests.count - 1
            func report(_ step: SpawnRunReport) { send(step, more) }
            if cancelled.isSet { return report(.ended(next: index)) }
            if let before, !(index == 0 && firstApproved) {
                let outcome = call(before, .beforeSpawn, pid: nil, report: report)
                guard allows(outcome, ignored: before.ignored) else { return report(.ended(next: index)) }
                if cancelled.isSet { return report(.ended(next: index)) }
            }
            let at = Moment(monotonic: EventLoop.monotonicNow(), wall: EventLoop.wallNow())
            let child: SpawnedProcess
            do throws(SpawnFailure) {
                let request = try requests[index].get()
                do {
                    // Owned from the moment it exists: the orphan reaper leaves it to the loop.
                    child = try ChildMonitor.spawnOwned(request, with: spawner)
                } catch {
                    throw SpawnFailure(message: error.description)
                }
            } catch {
                report(.failed(index: index, message: error.message, at: at))
                return report(.ended(next: index + 1))
            }
            report(.spawned(index: index, child, at: at))
            if let after {
                let outcome = call(after, .afterSpawn, pid: child.pid, report: report)
                guard allows(outcome, ignored: after.ignored) else { return report(.ended(next: index + 1)) }
            }
        }
        send(.ended(next: requests.count), false)
    }

    private func call(_ hook: NativeSpawnHook, _ point: HookPoint, pid: Int32?, report: (SpawnRunReport) -> Void)
        -> HookOutcome
    {
        let call = HookCall(point, pid: pid, awaited: true)
        let watcher = self.watcher
        let invocation = HookInvocation(point: point, watcher: watcher, pid: pid) {
            JSONWriter.string(.object(Supervisor.hookRequest(call, watcher: watcher)))
        }
        let asked = EventLoop.monotonicNow()
        let outcome = hook.function?.call(invocation, log: hook.log)
            ?? .failed("\(hook.name) was changed while the processes of '\(watcher)' were spawned")
        report(.hook(point, outcome, micros: Int((EventLoop.monotonicNow() - asked) * 1e6)))
        return outcome
    }

    /// The thread's half of the abort rule the loop applies (`recordHookOutcome`).
    private func allows(_ outcome: HookOutcome, ignored: Bool) -> Bool {
        switch outcome {
        case .returned(let value): value
        case .failed: ignored
        }
    }
}

extension Supervisor {
    /// Performs `.spawnRun`: prepares each worker's spawn on the loop, then hands the run
    /// to the watcher's hook thread.
    func startSpawnRun(_ plan: SpawnRunPlan, entry: WatcherEntry) {
        let (id, wids, firstApproved) = (plan.id, plan.wids, plan.firstApproved)
        var prepared: [PreparedSpawn?] = []
        var requests: [Result<SpawnRequest, SpawnFailure>] = []
        for wid in wids {
            switch prepareSpawn(for: entry, wid: wid) {
            case .success(let spawn):
                prepared.append(spawn)
                requests.append(.success(spawn.request))
            case .failure(let failure):
                // The run stops at this worker: its failure is reported in turn.
                prepared.append(nil)
                requests.append(.failure(failure))
            }
            if case .failure? = requests.last { break }
        }
        // The hooks the machine planned the run with (it waits for their answers).
        func native(_ point: HookPoint, planned: Bool) -> NativeSpawnHook? {
            guard planned else { return nil }
            let spec = entry.config.hooks[point]
            let function = spec.flatMap { $0.target.python == nil ? hookCatalog.function(for: $0) : nil }
            return NativeSpawnHook(function: function, name: spec?.target.symbol ?? "hooks.\(point.rawValue)",
                                   ignored: spec?.failureIgnored ?? point.failureIgnoredByDefault,
                                   log: hookLog("\(entry.name) \(point.rawValue) hook"))
        }
        let before = native(.beforeSpawn, planned: plan.callsBeforeSpawn)
        let after = native(.afterSpawn, planned: plan.callsAfterSpawn)
        let run = SpawnRun(id: id, wids: Array(wids.prefix(prepared.count)), prepared: prepared, before: before,
                           after: after, timeout: entry.config.hookTimeout, firstApproved: firstApproved)
        let job = SpawnRunJob(
            watcher: entry.name, requests: requests, before: before, after: after, firstApproved: firstApproved,
            spawner: spawner, cancelled: run.cancelled)
        let worker = entry.hookThread()
        entry.spawnRun = run
        let bound = LoopBound((self, run, entry))
        let remote = loop.remote
        let mailbox = run.mailbox
        do {
            try worker.submit {
                job.run { report, more in
                    let take: @Sendable () -> Void = {
                        let (supervisor, run, entry) = bound.value
                        supervisor.takeReports(of: run, entry: entry)
                    }
                    switch mailbox.add(report, more: more) {
                    case .none: break
                    case .soon: remote.post(take, within: SpawnRun.Mailbox.gathering)
                    case .now: remote.post(take)
                    }
                }
            }
        } catch {
            // No thread for it: what the machine waits for first fails, as in the
            // one-at-a-time path (its before_spawn hook, else the spawn), and the rest is
            // let go.
            entry.spawnRun = nil
            run.abandoned = true
            for case let spawn? in prepared { spawn.discard(self) }
            let message = "cannot start the thread that calls hooks: \(error)"
            let now = moment()
            defer { drainDeferred() }
            if case .beforeSpawn = run.stage, let before {
                let allowed = recordHookOutcome(
                    .failed(message), point: .beforeSpawn, ignored: before.ignored, entry: entry, events: true)
                perform(entry.machine.hookReturned(.beforeSpawn, allowed: allowed, at: now), on: entry)
                if !allowed { return }
            }
            perform(entry.machine.spawnFailed(wid: wids[0], message: message, at: now), on: entry)
            return
        }
        armRunDeadline(run, entry: entry, lastReport: EventLoop.monotonicNow())
    }

    /// Acts on what the run reported since the last time, and arms its deadline again.
    private func takeReports(of run: SpawnRun, entry: WatcherEntry) {
        armRunDeadline(run, entry: entry, lastReport: applyReports(of: run, entry: entry))
        drainDeferred()
    }

    /// Acts on the reports in the run's mailbox, in order; returns when the newest was made.
    private func applyReports(of run: SpawnRun, entry: WatcherEntry) -> Double {
        let (reports, lastReport) = run.mailbox.take()
        for report in reports { spawnRunReported(report, run: run, entry: entry) }
        return lastReport
    }

    /// Acts on one report of `run`, in the order the hook thread made them.
    private func spawnRunReported(_ report: SpawnRunReport, run: SpawnRun, entry: WatcherEntry) {
        if run.abandoned { return undo(report, of: run, entry: entry) }
        switch report {
        case .hook(let point, let outcome, let micros):
            // What the hook cost the watcher (Benchmarks/hooks.py reads it).
            logger.debug("\(entry.name) \(point.rawValue) hook answered in \(micros) µs")
            let hook = point == .beforeSpawn ? run.before : run.after
            let allowed = recordHookOutcome(outcome, point: point, ignored: hook?.ignored ?? true, entry: entry,
                                            events: true)
            if case .beforeSpawn(let index) = run.stage {
                run.stage = allowed ? .spawn(index) : .done
            } else if case .afterSpawn(let index) = run.stage {
                run.stage = allowed ? run.nextStage(after: index) : .done
            }
            perform(entry.machine.hookReturned(point, allowed: allowed, at: moment()), on: entry)
        case .spawned(let index, let child, let at):
            let prepared = run.prepared[index]!
            run.prepared[index] = nil
            let adopted = adopt(child, prepared: prepared, entry: entry)
            ChildMonitor.unmarkOwned(child.pid)
            switch adopted {
            case .success(let pid):
                run.stage = run.after != nil ? .afterSpawn(index) : run.nextStage(after: index)
                perform(entry.machine.processSpawned(wid: run.wids[index], pid: pid, at: at), on: entry)
            case .failure(let failure):
                // The thread goes on with a process the loop could not take: stop following it.
                run.cancel()
                run.abandoned = true
                perform(entry.machine.spawnFailed(wid: run.wids[index], message: failure.message, at: at), on: entry)
                perform(entry.machine.spawnRunEnded(id: run.id, at: moment()), on: entry)
            }
        case .failed(let index, let message, let at):
            run.prepared[index]?.discard(self)
            run.prepared[index] = nil
            run.stage = .done
            perform(entry.machine.spawnFailed(wid: run.wids[index], message: message, at: at), on: entry)
        case .ended(let next):
            release(run, from: next)
            if entry.spawnRun === run { entry.spawnRun = nil }
            // Stopped early because another hook wanted the thread: the rest is asked again.
            run.stage = .done
            perform(entry.machine.spawnRunEnded(id: run.id, at: moment()), on: entry)
        }
    }

    /// What an abandoned run still reports: a child it spawned is killed and reaped, and
    /// what was prepared for the rest is released once the thread is done with it.
    private func undo(_ report: SpawnRunReport, of run: SpawnRun, entry: WatcherEntry) {
        switch report {
        case .spawned(let index, let child, _):
            run.prepared[index]?.discard(self)
            run.prepared[index] = nil
            try? child.signal(SIGKILL)
            do {
                try monitor.watch(child) { _, _ in }
            } catch {
                _ = try? child.waitForExit()
                child.close()
            }
            ChildMonitor.unmarkOwned(child.pid)
        case .failed(let index, _, _):
            run.prepared[index]?.discard(self)
            run.prepared[index] = nil
        case .ended(let next):
            release(run, from: next)
            if entry.spawnRun === run { entry.spawnRun = nil }
        case .hook:
            break
        }
    }

    private func release(_ run: SpawnRun, from index: Int) {
        for i in index..<run.prepared.count {
            run.prepared[i]?.discard(self)
            run.prepared[i] = nil
        }
    }

    /// A run that made no report for `hook_timeout` is stuck in the hook it calls: past
    /// that, the call counts as failed, the thread is left to it, and the run is given up.
    /// (The thread does nothing else that can take long: a spawn returns once the child
    /// has exec'd.)
    private func armRunDeadline(_ run: SpawnRun, entry: WatcherEntry, lastReport: Double) {
        if let deadline = run.deadline {
            loop.cancel(deadline)
            run.deadline = nil
        }
        guard !run.abandoned else { return }
        if case .done = run.stage { return }
        run.deadline = loop.schedule(at: lastReport + run.timeout) { [unowned self] in
            run.deadline = nil
            defer { self.drainDeferred() }
            // What came since counts first: the run may have moved on.
            let newest = self.applyReports(of: run, entry: entry)
            let point: HookPoint
            switch run.stage {
            case .beforeSpawn: point = .beforeSpawn
            case .afterSpawn: point = .afterSpawn
            case .spawn, .done: return self.armRunDeadline(run, entry: entry, lastReport: newest)
            }
            guard newest + run.timeout <= EventLoop.monotonicNow(),
                  let hook = point == .beforeSpawn ? run.before : run.after
            else { return self.armRunDeadline(run, entry: entry, lastReport: newest) }
            run.cancel()
            run.abandoned = true
            if entry.spawnRun === run { entry.spawnRun = nil }
            if let worker = entry.hookWorker {
                entry.hookWorker = nil
                self.abandonHookWorker(worker)
            }
            let outcome = HookOutcome.failed(
                "\(hook.name) did not return within hook_timeout (\(PythonFloat.repr(run.timeout)) s)")
            let allowed = self.recordHookOutcome(outcome, point: point, ignored: hook.ignored, entry: entry, events: true)
            let now = self.moment()
            self.perform(entry.machine.hookReturned(point, allowed: allowed, at: now), on: entry)
            self.perform(entry.machine.spawnRunEnded(id: run.id, at: now), on: entry)
        }
    }
}
