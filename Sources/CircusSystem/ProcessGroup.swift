// What keeps a worker's descendants within circusd's reach: every worker leads its own
// session and process group (the spawn does setsid, as Circus does), so the processes it
// forks stay in its group after their parent dies, and circusd, a child subreaper, becomes
// their parent then. A whole tree is signalled with one kill(-pgid), and its end is seen as
// the group becoming empty, without reading /proc.

import CCircusSys
import Glibc

/// A process group, named by its leader's pid (a worker's pid: the spawn makes each worker
/// the leader of its own session and group).
///
/// The kernel keeps a pid number reserved while a group of that id has members, so
/// signalling a non-empty group can never reach a recycled pid; once a group is empty its
/// number may be reused, which is why callers stop signalling a group once `exists` says no.
public enum ProcessGroup {
    /// Whether group `pgid` still has a member (zombies count until they are reaped).
    public static func exists(_ pgid: Int32) -> Bool {
        guard pgid > 1 else { return false }
        if kill(-pgid, 0) == 0 { return true }
        return errno == EPERM  // members we may not signal are members all the same
    }

    /// Sends `signo` to every member of group `pgid` (kill(-pgid)).
    ///
    /// - Throws: `SystemError` with ESRCH when the group is empty, EPERM, or EINVAL for a bad
    ///   signal number.
    public static func signal(_ pgid: Int32, _ signo: Int32) throws(SystemError) {
        precondition(pgid > 1, "ProcessGroup.signal: \(pgid) does not name a worker's group")
        if kill(-pgid, signo) != 0 { throw SystemError("kill(-\(pgid), \(signo))", errno: errno) }
    }
}

/// A session, named by its leader's pid (a worker's pid).
///
/// A worker's descendants stay in its session unless they call setsid (a program that
/// daemonizes), but they may leave its process group: a job-control shell, or a program
/// such as `timeout` that puts itself and its child in a group of their own. Those groups
/// are found here.
public enum Session {
    /// The process groups of each of `sessions`, other than the session's own group, led
    /// by a child of this process that is not in `skipping` (orphans whose parent died:
    /// this process, a child subreaper, adopted them). One read of the main thread's
    /// `children` file, then the group and session of each child not skipped; on a kernel
    /// without `children` files, `otherGroups(in:)`'s pass over /proc.
    ///
    /// Blocking (reads /proc): run it on a `SerialWorker`.
    public static func groupsLedByChildren(in sessions: Set<Int32>, skipping: Set<Int32>) -> [Int32: Set<Int32>] {
        guard !sessions.isEmpty else { return [:] }
        guard let children = ProcessTree.mainThreadChildren() else { return otherGroups(in: sessions) }
        var result: [Int32: Set<Int32>] = [:]
        for child in children where !skipping.contains(child) {
            let session = getsid(child)
            guard sessions.contains(session) else { continue }
            let group = getpgid(child)
            if group > 1, group != session { result[session, default: []].insert(group) }
        }
        return result
    }

    /// The process groups of each of `sessions`, other than the session's own group, from
    /// one pass over /proc.
    ///
    /// Blocking (one read per process on the system): run it on a `SerialWorker`.
    /// - Returns: session id -> the ids of its other groups (absent when it has none).
    public static func otherGroups(in sessions: Set<Int32>) -> [Int32: Set<Int32>] {
        guard !sessions.isEmpty else { return [:] }
        var result: [Int32: Set<Int32>] = [:]
        for pid in ProcFS.pids() {
            // After the command: state, ppid, pgrp, session.
            guard let stat = ProcFS.statFields(pid), stat.fields.count > 3,
                  let group = Int32(stat.fields[2]), let session = Int32(stat.fields[3]),
                  sessions.contains(session), group != session
            else { continue }
            result[session, default: []].insert(group)
        }
        return result
    }
}

/// The child-subreaper attribute (prctl PR_SET_CHILD_SUBREAPER).
public enum Subreaper {
    /// Makes this process the parent of every descendant orphaned by its parent's death,
    /// in place of init, so that circusd sees them end (SIGCHLD) and reaps them.
    ///
    /// - Throws: `SystemError` when the kernel refuses (kernels before 3.4).
    public static func become() throws(SystemError) {
        let r = circus_set_child_subreaper(1)
        if r < 0 { throw SystemError("prctl(PR_SET_CHILD_SUBREAPER)", errno: -r) }
    }

    /// Gives the attribute up (for tests, which share one process): orphans go to init
    /// again.
    public static func resign() {
        _ = circus_set_child_subreaper(0)
    }

    /// Whether this process is a child subreaper.
    public static var isActive: Bool { circus_is_child_subreaper() == 1 }
}

/// A child that ended without being watched by a `ChildMonitor`: a worker's descendant,
/// re-parented to this process (a child subreaper) when its own parent died.
public struct OrphanExit: Hashable, Sendable {
    /// Its pid (already reaped: the number may be reused).
    public let pid: Int32
    /// How it ended.
    public let status: ProcessExitStatus
    /// Its process group and session as it ended: the worker it descends from, unless it
    /// left them (setsid, setpgid), as a program that daemonizes does. 0 when unknown.
    public let processGroup: Int32
    public let session: Int32

    /// Describes an ended child (tests compare with it).
    public init(pid: Int32, status: ProcessExitStatus, processGroup: Int32, session: Int32) {
        self.pid = pid
        self.status = status
        self.processGroup = processGroup
        self.session = session
    }
}
