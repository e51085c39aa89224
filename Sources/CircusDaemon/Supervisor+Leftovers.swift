// No orphans: what becomes of a worker's descendants when the worker itself is gone.
//
// Each worker leads its own session and process group, and circusd is a child subreaper:
// a descendant whose parent dies stays in the worker's session (and, unless it moved, in
// its group) and becomes circusd's child. So the processes of a worker are its session:
// - a stop signals the worker's group at once (one kill(-pgid)), and the other groups of
//   its session (a `timeout` or a job-control shell makes its own) as their leaders become
//   circusd's children (when the worker dies); the worker's exit is reported to its
//   watcher only when all those groups are empty, so a stop waits for the whole tree, and
//   the SIGKILL escalation reaches all of them;
// - a worker that ended on its own (crashed, killed from outside) is respawned at once;
//   then its session gets the watcher's stop signal, and SIGKILL after graceful_timeout,
//   as systemd does with the processes a service leaves behind.
// The members are reaped as they end (SIGCHLD). A group is known to be empty when
// kill(-pgid, 0) fails; the other groups are found among circusd's own children (their
// session says whose they are): a few small reads of /proc, on a worker thread, after the
// respawn (a kernel without /proc/<pid>/task/<tid>/children needs a scan of /proc
// instead). A program that left the session on purpose (setsid: it daemonized) is not
// touched; circusd reaps it when it exits.

import CircusConfig
import CircusCore
import CircusSystem
import Glibc
import Logging
import OrderedCollections

/// The session of a worker being stopped, or of one that exited while other processes of
/// its session were still running.
struct TrackedSession {
    let entry: WatcherEntry
    /// The session's process groups not yet seen empty: the worker's own (its pid) and
    /// the others found since.
    var groups: Set<Int32>
    /// The last signal the session was sent; a group found later gets it too.
    var signal: Int32
    /// The worker's exit code once it was reaped; nil while it runs.
    var exitCode: Int32?
    /// Whether the watcher waits for this session before it hears of the worker's exit
    /// (the worker was being stopped).
    var holdsExit: Bool
    /// When a crashed worker's session gets SIGKILL (graceful_timeout after its stop
    /// signal), and the timer armed for it once the session is known not to be empty.
    var killAt: Double?
    var killTimer: EventLoop.TimerID?
    /// A search for this session's other groups is queued or running (a read of circusd's
    /// `children` file, or a scan of /proc on kernels without them).
    var scanPending = false
}

extension Supervisor {
    /// Makes circusd the parent of the descendants its workers orphan, and reaps them.
    func adoptOrphans() {
        do {
            try Subreaper.become()
        } catch {
            logger.warning(
                "cannot become a child subreaper (\(error)): the processes a worker forks go to init when it dies")
        }
        monitor.onOrphanExit = { [unowned self] exit in self.orphanExited(exit) }
    }

    // MARK: The stop procedure

    /// The stop procedure sent `signo` to worker `pid` and its group: the session's other
    /// groups get it too, those known now and those the next scan finds.
    func stopSignalSent(_ signo: Int32, to pid: Int32, entry: WatcherEntry) {
        guard signo != 0 else { return }
        var session = sessions[pid] ?? TrackedSession(entry: entry, groups: [pid], signal: signo, holdsExit: false)
        session.signal = signo
        for group in session.groups where group != pid { signalGroup(group, signo, watcher: entry.name) }
        sessions[pid] = session
        // Groups already re-parented here (their parent died before the stop).
        findOtherGroups(of: pid)
    }

    /// A worker that was being stopped has been reaped: its watcher hears of it once the
    /// rest of its session is gone.
    func stoppedWorkerReaped(_ pid: Int32, exitCode: Int32, entry: WatcherEntry) {
        var session = sessions[pid] ?? TrackedSession(entry: entry, groups: [pid], signal: 0, holdsExit: true)
        session.exitCode = exitCode
        session.holdsExit = true
        sessions[pid] = session
        // The worker's children are circusd's now: those leading groups of their own get
        // the stop signal too.
        findOtherGroups(of: pid)
    }

    /// A worker ended on its own: ends what it left running in its session (stop signal,
    /// then SIGKILL after graceful_timeout). Called after the respawn, once the worker is
    /// reaped (a zombie leader still counts in its group).
    func endLeftovers(of pid: Int32, exitCode: Int32, entry: WatcherEntry) {
        // `rm --nostop` let go of the watcher's processes: what they leave is not ours to end.
        guard entry.attached, sessions[pid] == nil else { return }
        let config = entry.config
        let signo = config.stopSignal
        // An empty group stays empty (a process can join only a group that has members),
        // so the usual crash leaves no group to look at again.
        let groupLives = ProcessGroup.exists(pid)
        if groupLives {
            logger.info(
                "\(entry.name): pid \(pid) exited and left processes running in its process group; sending them \(Signals.name(signo))")
            signalGroup(pid, signo, watcher: entry.name)
        }
        var session = TrackedSession(
            entry: entry, groups: groupLives ? [pid] : [], signal: signo, exitCode: exitCode, holdsExit: false)
        if signo != SIGKILL { session.killAt = EventLoop.monotonicNow() + max(config.gracefulTimeout, 0) }
        sessions[pid] = session
        // Nothing left is the usual crash: the search finds nothing and forgets the session,
        // and no SIGKILL deadline is ever armed.
        findOtherGroups(of: pid)
    }

    private func killLeftovers(of pid: Int32) {
        guard var session = sessions[pid] else { return }
        session.killTimer = nil
        session.killAt = nil
        session.signal = SIGKILL
        sessions[pid] = session
        if finishIfDone(pid) { return }
        logger.warning("\(session.entry.name): processes left by pid \(pid) outlived graceful_timeout; sending SIGKILL")
        for group in session.groups { signalGroup(group, SIGKILL, watcher: session.entry.name) }
        findOtherGroups(of: pid)
    }

    private func signalGroup(_ group: Int32, _ signo: Int32, watcher: String) {
        do {
            try ProcessGroup.signal(group, signo)
        } catch {
            logger.debug("\(watcher): signal \(signo) to process group \(group): \(error)")
        }
    }

    // MARK: Finding the session's other groups

    /// Queues a search for the groups of `pid`'s session that left the worker's own and
    /// are led by a child of circusd (orphaned: their parent died); they get the session's
    /// signal when found. A group whose leader's parent still lives is found when that
    /// parent dies.
    ///
    /// One read of circusd's `children` file, on `procWorker`, serves every session queued
    /// since the last one, at most one read per `leftoverSearchSpacing`: the file lists all
    /// of circusd's children, so a watcher of N short-lived processes would otherwise read
    /// N pids per exit (and a stop of N processes N² in all). The session is not finished
    /// while its search is pending.
    private func findOtherGroups(of pid: Int32) {
        guard sessions[pid] != nil else { return }
        sessions[pid]?.scanPending = true
        leftoverSearch.queue.insert(pid)
        scheduleLeftoverSearch()
    }

    /// The shortest time between two reads of circusd's `children` file for leftovers.
    static let leftoverSearchSpacing = 0.01

    /// Arms the next search, `leftoverSearchSpacing` after the last began, unless one is
    /// armed or running (its end arms the next) or nothing is queued.
    private func scheduleLeftoverSearch() {
        guard leftoverSearch.timer == nil, !leftoverSearch.running, !leftoverSearch.queue.isEmpty else { return }
        let due = max(EventLoop.monotonicNow(), leftoverSearch.last + Self.leftoverSearchSpacing)
        leftoverSearch.timer = loop.schedule(at: due) { [unowned self] in
            self.leftoverSearch.timer = nil
            self.searchLeftovers()
            self.drainDeferred()
        }
    }

    private func searchLeftovers() {
        let scanned = leftoverSearch.queue
        leftoverSearch.queue = []
        leftoverSearch.last = EventLoop.monotonicNow()
        leftoverSearch.running = true
        do {
            // The workers themselves lead their own sessions' groups: skipped, as the
            // children of circusd it is watching.
            let watched = Set(monitor.pids)
            let gate = leftoverGate
            try loop.offload(to: procWorker, {
                gate?.wait()
                return Session.groupsLedByChildren(in: scanned, skipping: watched)
            }) { [unowned self] found in
                self.leftoverSearch.running = false
                self.applyScan(scanned: scanned, found: found)
                self.scheduleLeftoverSearch()
                self.drainDeferred()
            }
        } catch {
            leftoverSearch.running = false
            logger.warning("cannot scan /proc for the processes of a stopped worker: \(error)")
            applyScan(scanned: scanned, found: [:])
            scheduleLeftoverSearch()
        }
    }

    /// Signals the groups of `found` that `pid`'s session did not know yet, and keeps them.
    private func addGroups(_ found: Set<Int32>, to pid: Int32) {
        guard var session = sessions[pid] else { return }
        let new = found.subtracting(session.groups)
        guard !new.isEmpty else { return }
        let list = new.sorted().map(String.init).joined(separator: ", ")
        let name = Signals.name(session.signal)
        logger.info(
            "\(session.entry.name): pid \(pid)'s session has processes in other process groups (\(list)); sending them \(name)")
        for group in new where session.signal != 0 { signalGroup(group, session.signal, watcher: session.entry.name) }
        session.groups.formUnion(new)
        sessions[pid] = session
    }

    private func applyScan(scanned: Set<Int32>, found: [Int32: Set<Int32>]) {
        for pid in scanned {
            guard sessions[pid] != nil else { continue }
            sessions[pid]?.scanPending = leftoverSearch.queue.contains(pid)
            addGroups(found[pid] ?? [], to: pid)
            guard !finishIfDone(pid), let session = sessions[pid] else { continue }
            if let deadline = session.killAt, session.killTimer == nil {
                sessions[pid]?.killTimer = loop.schedule(at: deadline) { [unowned self] in
                    self.killLeftovers(of: pid)
                    self.drainDeferred()
                }
            }
            if session.exitCode != nil {
                logger.debug("\(session.entry.name): pid \(pid) exited; waiting for the rest of its session")
                armSessionRecheck()
            }
        }
    }

    // MARK: Seeing the end

    /// A re-parented descendant ended and was reaped.
    private func orphanExited(_ exit: OrphanExit) {
        if let session = sessions[exit.session] {
            logger.debug("\(session.entry.name): reaped pid \(exit.pid), left by pid \(exit.session) (\(exit.status))")
            // Its children, if any, are circusd's now.
            findOtherGroups(of: exit.session)
        } else if let owner = watchers.first(where: { $0.machine.processes[exit.session] != nil }) {
            logger.debug("\(owner.name): reaped pid \(exit.pid), a descendant of pid \(exit.session) (\(exit.status))")
        } else {
            logger.info(
                "reaped pid \(exit.pid) (\(exit.status)): a process that had left its watcher's session, as a program that daemonizes does")
        }
        recheckSessions()
    }

    /// Finishes every tracked session that is now empty.
    func recheckSessions() {
        for pid in Array(sessions.keys) { _ = finishIfDone(pid) }
        drainDeferred()
    }

    /// Forgets `pid`'s session when the worker was reaped, no scan is pending and every
    /// group is empty, reporting a held exit to its watcher. True when it is gone.
    private func finishIfDone(_ pid: Int32) -> Bool {
        guard var session = sessions[pid] else { return true }
        if !session.groups.isEmpty {
            session.groups = session.groups.filter(ProcessGroup.exists)
            sessions[pid] = session
        }
        guard let exitCode = session.exitCode, !session.scanPending, session.groups.isEmpty else { return false }
        sessions[pid] = nil
        if let timer = session.killTimer { loop.cancel(timer) }
        if session.holdsExit {
            perform(session.entry.machine.processExited(pid: pid, exitCode: exitCode, at: moment()), on: session.entry)
        }
        if !sessionWaiters.isEmpty {
            let (ready, waiting) = sessionWaiters.reduce(into: ([() -> Void](), [SessionWaiter]())) { acc, waiter in
                if hasLeftovers(of: waiter.entry) { acc.1.append(waiter) } else { acc.0.append(waiter.done) }
            }
            sessionWaiters = waiting
            for done in ready { deferLoopWork(done) }
        }
        return true
    }

    private func hasLeftovers(of entry: WatcherEntry?) -> Bool {
        guard let entry else { return !sessions.isEmpty }
        return sessions.values.contains { $0.entry === entry }
    }

    /// Calls `done` once no session of `entry` (of any watcher when nil) is tracked any
    /// more: a stop of a watcher, and quit, wait for what crashed workers left.
    func whenLeftoversGone(of entry: WatcherEntry?, _ done: @escaping () -> Void) {
        if !hasLeftovers(of: entry) { return done() }
        sessionWaiters.append(SessionWaiter(entry: entry, done: done))
    }

    /// The last member of a group normally ends as circusd's child (SIGCHLD). One whose
    /// parent lives on in another group of the session ends unseen: while a reaped worker's
    /// session is pending, look again every second.
    private func armSessionRecheck() {
        guard sessionRecheck == nil else { return }
        sessionRecheck = loop.schedule(after: 1) { [unowned self] in
            self.sessionRecheck = nil
            self.recheckSessions()
            if self.sessions.values.contains(where: { $0.exitCode != nil }) { self.armSessionRecheck() }
        }
    }
}

/// The search for the process groups that workers left (`findOtherGroups`).
struct LeftoverSearch {
    /// The sessions the next read of the `children` file is for.
    var queue: Set<Int32> = []
    /// The read armed for them.
    var timer: EventLoop.TimerID?
    /// A read is under way on `procWorker`.
    var running = false
    /// When the last read began (monotonic clock).
    var last = -Double.infinity
}

/// Someone waiting for the leftovers of a watcher (or of all, when `entry` is nil) to end.
struct SessionWaiter {
    let entry: WatcherEntry?
    let done: () -> Void
}
