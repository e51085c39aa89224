// `stats` and `dstats`: samples of the watchers' processes and of the daemon itself.

import CircusBus
import CircusConfig
import CircusCore
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections

extension Supervisor {
    // MARK: - stats / dstats

    /// Measures `pid`, and its direct children when a tree snapshot is given.
    func sample(_ pid: Int32, tree: ProcessTree.Snapshot?) -> CircusProtocol.ProcessSample? {
        guard let raw = sampler.sample(pid) else { return nil }
        let children = tree?.children(of: pid).compactMap { sample($0, tree: nil) } ?? []
        return CircusProtocol.ProcessSample(
            pid: Int64(pid), rssBytes: Int64(raw.rss), vmsBytes: Int64(raw.vms), cpuPercent: raw.cpuPercent,
            memPercent: raw.memoryPercent, cpuTimeSeconds: raw.cpuTime, username: raw.username,
            nice: raw.isZombie ? .zombie : .value(Int64(raw.nice)), createTime: raw.createTime, argv: [raw.name],
            children: children)
    }

    func processInfo(_ process: ManagedProcess, now: Double, tree: ProcessTree.Snapshot) -> JSON {
        guard let sample = sample(process.pid, tree: tree) else { return ProcessStats.noSuchProcess }
        return .object(ProcessStats.watcherProcessInfo(sample, now: now, started: process.started, wid: Int64(process.wid)))
    }

    func watcherInfo(_ entry: WatcherEntry, now: Double, tree: ProcessTree.Snapshot) -> JSONObject {
        ProcessStats.byPid(entry.machine.processes.values.map {
            (pid: Int64($0.pid), info: processInfo($0, now: now, tree: tree))
        })
    }

    func stats(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let now = EventLoop.wallNow()
        // One read of the process tree for every process's children.
        let tree = ProcessTree.Snapshot()
        guard props["name"] != nil, props["name"] != .null else {
            var infos = JSONObject()
            for entry in watchers { infos[entry.name] = .object(watcherInfo(entry, now: now, tree: tree)) }
            return respond.ok(["infos": .object(infos)])
        }
        let entry = try requireWatcher(props)
        if let process = props["process"], process != .null {
            guard let pid = process.pythonInt, let managed = entry.machine.processes[Int32(truncatingIfNeeded: pid)]
            else { throw .processNotFound(process: process, name: props["name"] ?? .null) }
            return respond.ok(["process": process, "info": processInfo(managed, now: now, tree: tree)])
        }
        respond.ok(["name": props["name"] ?? .null, "info": .object(watcherInfo(entry, now: now, tree: tree))])
    }

    func dstats(_ respond: Responder) {
        let now = EventLoop.wallNow()
        guard let sample = sample(getpid(), tree: nil) else {
            return respond.fail(.osError("cannot read /proc/self"))
        }
        respond.ok(["info": .object(ProcessStats.info(sample, now: now))])
    }
}
