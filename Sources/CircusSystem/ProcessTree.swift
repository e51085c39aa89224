// Who descends from whom, from /proc: for stop_children (signal a worker's children) and
// for the recursive SIGKILL at the end of a graceful timeout.

import Glibc

/// Parent/child relations read from /proc.
public enum ProcessTree {
    /// The direct children of `pid`, ascending; empty when it has none or is gone.
    ///
    /// Reads `/proc/<pid>/task/*/children` where the kernel has it (CONFIG_PROC_CHILDREN),
    /// else scans every `/proc/*/stat` for the parent pid.
    public static func children(of pid: Int32) -> [Int32] {
        if let fromTasks = childrenFromTasks(of: pid) { return fromTasks }
        return childrenByScanning(of: pid)
    }

    /// Every descendant of `pid` (children, grandchildren, ...), nearest generation first.
    ///
    /// With the /proc scan this reads /proc once for the whole tree.
    public static func descendants(of pid: Int32) -> [Int32] {
        var result: [Int32] = []
        if childrenFromTasks(of: pid) != nil {
            var frontier = [pid]
            while !frontier.isEmpty {
                var next: [Int32] = []
                for p in frontier { next.append(contentsOf: childrenFromTasks(of: p) ?? []) }
                result.append(contentsOf: next)
                frontier = next
            }
            return result
        }
        let byParent = parentMap()
        var frontier = [pid]
        var seen: Set<Int32> = [pid]
        while !frontier.isEmpty {
            var next: [Int32] = []
            for p in frontier {
                for c in byParent[p] ?? [] where seen.insert(c).inserted { next.append(c) }
            }
            result.append(contentsOf: next)
            frontier = next
        }
        return result
    }

    /// The direct children of each of `pids` (ascending), reading /proc once for all of
    /// them where the kernel has no `children` files.
    ///
    /// Blocking (/proc reads): run it on a `SerialWorker`, not on the loop thread.
    public static func children(ofEach pids: [Int32]) -> [Int32: [Int32]] {
        let tree = Snapshot()
        return Dictionary(pids.map { ($0, tree.children(of: $0)) }, uniquingKeysWith: { first, _ in first })
    }

    /// Every descendant of each of `pids` (nearest generation first), reading /proc once
    /// for all of them where the kernel has no `children` files.
    ///
    /// Blocking (/proc reads): run it on a `SerialWorker`, not on the loop thread.
    public static func descendants(ofEach pids: [Int32]) -> [Int32: [Int32]] {
        let tree = Snapshot()
        return Dictionary(pids.map { ($0, tree.descendants(of: $0)) }, uniquingKeysWith: { first, _ in first })
    }

    /// A view of the process tree for many lookups in a row (a `stats` of every process,
    /// a stop of a whole watcher with `stop_children`): where the kernel has no
    /// `children` files, /proc is scanned once for the snapshot instead of once per
    /// lookup.
    public struct Snapshot {
        /// ppid -> children, or nil when the kernel's `children` files answer directly.
        private let byParent: [Int32: [Int32]]?

        /// Reads what the lookups will need.
        public init() {
            byParent = ProcFS.read("/proc/thread-self/children") != nil ? nil : ProcessTree.parentMap()
        }

        /// The direct children of `pid`, ascending.
        public func children(of pid: Int32) -> [Int32] {
            guard let byParent else { return ProcessTree.children(of: pid) }
            return (byParent[pid] ?? []).sorted()
        }

        /// Every descendant of `pid`, nearest generation first.
        public func descendants(of pid: Int32) -> [Int32] {
            var result: [Int32] = []
            var frontier = [pid]
            var seen: Set<Int32> = [pid]
            while !frontier.isEmpty {
                var next: [Int32] = []
                for p in frontier {
                    for c in children(of: p) where seen.insert(c).inserted { next.append(c) }
                }
                result.append(contentsOf: next)
                frontier = next
            }
            return result
        }
    }

    /// The children of this process's main thread, from its `children` file: one small
    /// read, whatever the number of processes on the system. They include every process
    /// re-parented to this one as a child subreaper: the kernel gives an orphan to the
    /// reaper's first live thread, which is the main thread while the process runs. (The
    /// children other threads spawned are in their own files.)
    ///
    /// nil when the kernel has no `children` files (CONFIG_PROC_CHILDREN): the caller then
    /// needs a scan of /proc, which belongs on a worker thread.
    public static func mainThreadChildren() -> [Int32]? {
        let pid = getpid()
        return ProcFS.readNumbers("/proc/\(pid)/task/\(pid)/children")
    }

    /// The parent pid of `pid`, or nil when it is gone.
    public static func parent(of pid: Int32) -> Int32? {
        guard let stat = ProcFS.statFields(pid), stat.fields.count > 1 else { return nil }
        return Int32(stat.fields[1])
    }

    /// nil when the kernel has no `children` files (then the caller scans).
    static func childrenFromTasks(of pid: Int32) -> [Int32]? {
        guard let tasks = ProcFS.list("/proc/\(pid)/task") else { return [] }  // pid gone
        var result: [Int32] = []
        for tid in tasks {
            guard let children = ProcFS.readNumbers("/proc/\(pid)/task/\(tid)/children") else { return nil }
            result.append(contentsOf: children)
        }
        return result.sorted()
    }

    static func childrenByScanning(of pid: Int32) -> [Int32] {
        (parentMap()[pid] ?? []).sorted()
    }

    /// ppid -> pids, from one pass over /proc.
    static func parentMap() -> [Int32: [Int32]] {
        var map: [Int32: [Int32]] = [:]
        for p in ProcFS.pids() {
            if let ppid = parent(of: p) { map[ppid, default: []].append(p) }
        }
        return map
    }
}

