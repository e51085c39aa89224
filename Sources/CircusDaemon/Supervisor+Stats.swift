// `stats` and `dstats`: samples of the watchers' processes and of the daemon itself.
//
// Reading /proc for a thousand processes takes longer than a reap or a `status` may wait,
// so the loop only copies what it owns (pids, wids, spawn times) into a `StatsQuery`; the
// stats worker reads /proc and formats the answer; the reply leaves from the loop when
// the result comes back. Commands, reaps and respawns go on meanwhile.

import CircusBus
import CircusConfig
import CircusCore
import CircusMessageBus
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections

/// What one `stats` or `dstats` asks for, copied from the loop's state.
struct StatsQuery: Sendable {
    /// A managed process as the loop knows it.
    struct Process: Sendable {
        let pid: Int32
        let wid: Int
        let started: Double
    }

    /// A watcher's processes, in the order `stats` lists them.
    struct Watcher: Sendable {
        let name: String
        let processes: [Process]
    }

    enum Target: Sendable {
        /// `stats` without a name: every watcher, in arbiter order.
        case all([Watcher])
        /// `stats <name>`; `name` is echoed as sent.
        case watcher(name: JSON, Watcher)
        /// `stats <name> <pid>`; `process` is echoed as sent.
        case process(process: JSON, Process)
        /// `dstats`: the daemon itself.
        case daemon(pid: Int32)
    }

    let target: Target
    /// The time `age` is counted to, taken when the request arrived.
    let now: Double
}

/// Samples processes for `stats`/`dstats` on a worker thread of its own.
final class StatsService: Sendable {
    /// The worker's thread starts with the first `stats`.
    let worker = SerialWorker(name: "stats")
    /// The CPU history lives here and is only touched by the worker's jobs.
    let sampler: ProcessSampler
    /// A FIFO every sampling job reads one byte from before it starts: only for the test
    /// proving that the loop serves commands while a `stats` is being sampled (it holds
    /// the sampling for as long as it wants, without timing). Set by the environment
    /// variable `CIRCUSD_TEST_STATS_GATE`, read once when the daemon starts; never set it
    /// in production.
    let testGate: TestGate?

    init(users: UserDirectory) {
        sampler = ProcessSampler { uid in users.snapshot.userName(uid: uid) }
        testGate = TestGate(environment: "CIRCUSD_TEST_STATS_GATE")
    }

    /// Answers `query` on the worker: `respond` gets the answer there, so that the control
    /// socket's reply is encoded there too (a stats of a thousand processes is a big
    /// document).
    func answer(_ query: StatsQuery, respond: CommandReply) throws(SystemError) {
        let sampler = self.sampler
        let gate = testGate
        try worker.submit {
            gate?.wait()
            respond.send(Self.answer(query, sampler: sampler))
        }
    }

    /// The reply payload for `query` (blocking: reads /proc).
    static func answer(_ query: StatsQuery, sampler: ProcessSampler) -> Result<JSONObject, CommandError> {
        var sampled: Set<Int32> = []
        defer { sampler.forgetExited(keeping: sampled) }
        // One read of the process tree for every process's children.
        let tree = ProcessTree.Snapshot()

        func sample(_ pid: Int32, tree: ProcessTree.Snapshot?) -> CircusProtocol.ProcessSample? {
            sampled.insert(pid)
            guard let raw = sampler.sample(pid) else { return nil }
            let children = tree?.children(of: pid).compactMap { sample($0, tree: nil) } ?? []
            return CircusProtocol.ProcessSample(
                pid: Int64(pid), rssBytes: Int64(raw.rss), vmsBytes: Int64(raw.vms), cpuPercent: raw.cpuPercent,
                memPercent: raw.memoryPercent, cpuTimeSeconds: raw.cpuTime, username: raw.username,
                nice: raw.isZombie ? .zombie : .value(Int64(raw.nice)), createTime: raw.createTime, argv: [raw.name],
                children: children)
        }
        func processInfo(_ process: StatsQuery.Process) -> JSON {
            guard let sample = sample(process.pid, tree: tree) else { return ProcessStats.noSuchProcess }
            return .object(ProcessStats.watcherProcessInfo(
                sample, now: query.now, started: process.started, wid: Int64(process.wid)))
        }
        func watcherInfo(_ watcher: StatsQuery.Watcher) -> JSONObject {
            ProcessStats.byPid(watcher.processes.map { (pid: Int64($0.pid), info: processInfo($0)) })
        }

        switch query.target {
        case .all(let watchers):
            var infos = JSONObject()
            for watcher in watchers { infos[watcher.name] = .object(watcherInfo(watcher)) }
            return .success(["infos": .object(infos)])
        case .watcher(let name, let watcher):
            return .success(["name": name, "info": .object(watcherInfo(watcher))])
        case .process(let process, let managed):
            return .success(["process": process, "info": processInfo(managed)])
        case .daemon(let pid):
            guard let sample = sample(pid, tree: nil) else { return .failure(.osError("cannot read /proc/self")) }
            return .success(["info": .object(ProcessStats.info(sample, now: query.now))])
        }
    }
}

extension Supervisor {
    // MARK: - stats / dstats

    func statsQueryProcess(_ process: ManagedProcess) -> StatsQuery.Process {
        StatsQuery.Process(pid: process.pid, wid: process.wid, started: process.started)
    }

    func statsQueryWatcher(_ entry: WatcherEntry) -> StatsQuery.Watcher {
        StatsQuery.Watcher(name: entry.name, processes: entry.machine.processes.values.map(statsQueryProcess))
    }

    func stats(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let now = EventLoop.wallNow()
        let target: StatsQuery.Target
        if props["name"] == nil || props["name"] == .null {
            target = .all(watchers.map(statsQueryWatcher))
        } else {
            let entry = try requireWatcher(props)
            if let process = props["process"], process != .null {
                guard let pid = process.pythonInt, let managed = entry.machine.processes[Int32(truncatingIfNeeded: pid)]
                else { throw .processNotFound(process: process, name: props["name"] ?? .null) }
                target = .process(process: process, statsQueryProcess(managed))
            } else {
                target = .watcher(name: props["name"] ?? .null, statsQueryWatcher(entry))
            }
            if props.flag("extended"), entry.machine.isHooked(.extendedStats) {
                return extendedStats(StatsQuery(target: target, now: now), entry: entry, respond)
            }
        }
        sampleAndReply(StatsQuery(target: target, now: now), respond)
    }

    func dstats(_ respond: Responder) {
        sampleAndReply(StatsQuery(target: .daemon(pid: getpid()), now: EventLoop.wallNow()), respond)
    }

    private func sampleAndReply(_ query: StatsQuery, _ respond: Responder) {
        do {
            try statsService.answer(query, respond: respond)
        } catch {
            respond.fail(.osError("cannot sample processes: \(error)"))
        }
    }
}
