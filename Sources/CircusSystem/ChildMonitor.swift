// Sees a child's exit the moment it happens: each child's pidfd becomes readable when it
// ends, so the loop wakes once per exit and reaps exactly that child. No periodic reaping
// (Circus polls every check_delay; we do not). The descendants that circusd, a child
// subreaper, inherits when their parent dies have no pidfd of ours: they are reaped on
// SIGCHLD by `reapOrphans`, which never takes a watched child's exit status.

import CCircusSys
import Glibc
import Synchronization

/// Watches spawned children through their pidfds on an `EventLoop` and reports each exit.
///
/// Loop-thread only. The monitor owns the pidfds it watches: it closes each one right after
/// reaping (or in `forget(pid:)`'s caller, or at deinit), so signalling through it can never
/// reach a recycled pid.
public final class ChildMonitor {
    /// Called on the loop thread with the pid and how it ended, after the process has been
    /// reaped and its pidfd closed.
    public typealias ExitHandler = (_ pid: Int32, _ status: ProcessExitStatus) -> Void

    private struct Watched {
        let process: SpawnedProcess
        let registration: EventLoop.Registration
        let onExit: ExitHandler
    }

    private let loop: EventLoop
    private var watched: [Int32: Watched] = [:]
    /// The watched child whose zombie the last `reapOrphans` pass stopped at: orphans
    /// that ended after it are looked for again once it is reaped.
    private var orphanPassStoppedAt: Int32?

    /// Called on the loop thread for each child that ended without being watched (a
    /// descendant re-parented to this process as child subreaper), after it was reaped.
    /// While nil, such children are left alone.
    ///
    /// - Important: once set, every child this process creates must be watched here, or
    ///   reaped before control returns to the loop: any other ended child is taken for an
    ///   orphan and reaped by `reapOrphans()`.
    public var onOrphanExit: ((OrphanExit) -> Void)?

    /// Creates a monitor that registers pidfds with `loop`.
    public init(loop: EventLoop) {
        self.loop = loop
    }

    /// Children some part of this process waits for (any monitor's watched children, and
    /// those marked with `markOwned`): `reapOrphans` of every monitor leaves them alone,
    /// so a monitor on another thread (an isolated plugin's host process) keeps its
    /// child's exit status.
    private static let owned = Mutex<Set<Int32>>([])

    /// Marks `pid`, a child this process waits for by other means, as not an orphan.
    public static func markOwned(_ pid: Int32) { _ = owned.withLock { $0.insert(pid) } }

    /// Held while a child is started by `spawnOwned` and while the orphan reaper picks a
    /// zombie: a child started on another thread never looks like an orphan, even when it
    /// exits before the thread that started it runs again (a busy machine).
    private static let ownedSpawns = Mutex<Void>(())

    /// Starts a child that the calling thread waits for itself (not through this loop's
    /// monitor), owned from the moment it exists; `unmarkOwned` it once it is reaped.
    ///
    /// - Throws: the spawner's `SpawnError`.
    public static func spawnOwned(_ request: SpawnRequest, with spawner: Spawner = Spawner()) throws(SpawnError)
        -> SpawnedProcess
    {
        try ownedSpawns.withLock { _ throws(SpawnError) -> SpawnedProcess in
            let process = try spawner.spawn(request)
            markOwned(process.pid)
            return process
        }
    }

    /// How soon what cannot be done now is tried again: a pick the reaper gave up while a
    /// `spawnOwned` ran, a pidfd the kernel would not arm again.
    private static let retryDelay = 0.01
    private var orphanRetryArmed = false

    /// Ends `markOwned` (once the child was reaped).
    public static func unmarkOwned(_ pid: Int32) { _ = owned.withLock { $0.remove(pid) } }

    deinit {
        for (pid, w) in watched {
            Self.unmarkOwned(pid)
            loop.unregister(w.registration)
            w.process.close()
        }
    }

    /// Starts watching `process`; `onExit` is called once, on the loop thread, when it ends.
    /// The process is reaped right after `onExit` returns, not before: during the call it is
    /// a zombie (its pid cannot be reused, and it still counts in its process group), so
    /// that what the call does first (a respawn) does not wait for the kernel's release of
    /// the dead process, which takes tens of microseconds here (mostly dropping its /proc
    /// entries). Work that needs it gone (is its process group empty?) belongs after the
    /// call, e.g. at the end of the loop's turn.
    ///
    /// - Throws: `SystemError` when the pidfd cannot be registered; the caller still owns the
    ///   process then.
    public func watch(_ process: SpawnedProcess, onExit: @escaping ExitHandler) throws(SystemError) {
        precondition(watched[process.pid] == nil, "ChildMonitor.watch: pid \(process.pid) is already watched")
        let pid = process.pid
        // One-shot: a pidfd becomes readable once, when the process ends (see pidfdReady).
        let registration = try loop.register(fd: process.pidfd, events: [.readable, .oneShot]) { [weak self] _ in
            self?.pidfdReady(pid)
        }
        watched[pid] = Watched(process: process, registration: registration, onExit: onExit)
        Self.markOwned(pid)
    }

    /// Whether `pid` is watched (spawned, not yet reaped).
    public func isWatching(_ pid: Int32) -> Bool { watched[pid] != nil }

    /// The pids being watched.
    public var pids: [Int32] { Array(watched.keys) }

    /// Sends `signo` to a watched child through its pidfd (pidfd_send_signal), so a pid that
    /// was reaped and reused by another process is never hit.
    ///
    /// - Throws: `SystemError` with ESRCH when `pid` is not (or no longer) watched, or the
    ///   kernel's error (EPERM, EINVAL for a bad signal number).
    public func signal(_ pid: Int32, _ signo: Int32) throws(SystemError) {
        guard let w = watched[pid] else {
            throw SystemError("pidfd_send_signal(\(pid), \(signo))", errno: ESRCH)
        }
        try w.process.signal(signo)
    }

    /// Stops watching `pid` without reaping it, and hands its pidfd back to the caller
    /// (who must reap and close it, before the loop runs again when `onOrphanExit` is set).
    public func forget(_ pid: Int32) -> SpawnedProcess? {
        guard let w = watched.removeValue(forKey: pid) else { return nil }
        loop.unregister(w.registration)
        Self.unmarkOwned(pid)
        return w.process
    }

    private func pidfdReady(_ pid: Int32) {
        guard let w = watched[pid] else { return }
        let status: ProcessExitStatus
        do {
            // Read without reaping (see `watch`): the release comes after `onExit`.
            guard let ended = try w.process.peekExit() else {
                // Not ended after all: arm the one-shot registration again (or, should the
                // kernel refuse, look again shortly).
                do { try loop.modify(w.registration, events: [.readable, .oneShot]) } catch {
                    loop.schedule(after: Self.retryDelay) { [weak self] in self?.pidfdReady(pid) }
                }
                return
            }
            status = ended
        } catch {
            status = .unknown  // EINVAL/ECHILD would mean the pidfd no longer names a child of ours
        }
        watched[pid] = nil
        loop.forgetFiredOneShot(w.registration)
        w.onExit(pid, status)
        _ = try? w.process.tryReap()
        w.process.close()
        // Owned until reaped: the orphan reaper must not take the zombie for an orphan.
        Self.unmarkOwned(pid)
        // `reapOrphans` stops at a watched child's zombie; if it stopped at this one, look
        // again for orphans that ended behind it (their SIGCHLD may already have been read).
        if orphanPassStoppedAt == pid {
            orphanPassStoppedAt = nil
            reapOrphans()
        }
    }

    /// Reaps every ended child that is not watched and reports each to `onOrphanExit`;
    /// call it on SIGCHLD. Does nothing while `onOrphanExit` is nil.
    ///
    /// Peeks first (waitid with WNOWAIT) so that a watched child's exit status is left for
    /// its pidfd: when the next ended child is a watched one, it stops there, and the
    /// monitor calls it again once that child is reaped. (A child another monitor watches
    /// is reaped by that one within a loop turn; orphans behind it wait for the next
    /// SIGCHLD or reaped child.)
    public func reapOrphans() {
        guard let handler = onOrphanExit else { return }
        while true {
            // Never waits for a `spawnOwned` on another thread: it is tried again shortly.
            guard let picked = Self.ownedSpawns.withLockIfAvailable({ _ in pickOrphan() }) else {
                retryOrphansSoon()
                return
            }
            guard let exit = picked else { return }
            handler(exit)
        }
    }

    /// Reaps the first zombie child that nobody waits for, if there is one.
    private func pickOrphan() -> OrphanExit? {
        var pid: Int32 = 0
        var code: Int32 = 0
        var status: Int32 = 0
        var peeked: Int32
        repeat { peeked = circus_wait_peek(&pid, &code, &status) } while peeked == -EINTR
        guard peeked == 1 else { return nil }
        if watched[pid] != nil {
            orphanPassStoppedAt = pid
            return nil
        }
        guard !Self.owned.withLock({ $0.contains(pid) }) else { return nil }
        // Still a zombie: its group and session can be read until it is reaped.
        let group = getpgid(pid)
        let session = getsid(pid)
        var reaped: Int32
        repeat { reaped = circus_wait_reap(pid, &code, &status) } while reaped == -EINTR
        guard reaped == 1 else { return nil }
        return OrphanExit(pid: pid, status: ProcessExitStatus(code: code, status: status),
                          processGroup: max(group, 0), session: max(session, 0))
    }

    private func retryOrphansSoon() {
        guard !orphanRetryArmed else { return }
        orphanRetryArmed = true
        loop.schedule(after: Self.retryDelay) { [weak self] in
            self?.orphanRetryArmed = false
            self?.reapOrphans()
        }
    }

    // MARK: Processes we did not spawn

    /// Signals a process we only know by pid (a worker's child found in /proc) through a
    /// fresh pidfd: pidfd_open pins the process, so a reuse between open and send cannot be
    /// hit. (A reuse between listing /proc and the open is still possible, as with kill.)
    ///
    /// - Throws: `SystemError` with ESRCH when the process is gone.
    public static func signal(pid: Int32, _ signo: Int32) throws(SystemError) {
        let fd = circus_pidfd_open(pid)
        if fd < 0 { throw SystemError("pidfd_open(\(pid))", errno: -fd) }
        defer { _ = close(fd) }
        let r = circus_pidfd_send_signal(fd, signo)
        if r < 0 { throw SystemError("pidfd_send_signal(\(pid), \(signo))", errno: -r) }
    }
}
