// No orphans: what becomes of a worker's descendants when the worker itself is gone.
//
// Each worker leads its own session and process group, and circusd is a child subreaper:
// a descendant whose parent dies stays in the worker's group and becomes circusd's child.
// So when a worker exits and its group still has members, they are its leftovers:
// - a worker that was being stopped: its exit is reported to the watcher only once the
//   group is empty, so a stop waits for the whole tree (the SIGKILL escalation of the stop
//   procedure reaches the group);
// - a worker that ended on its own (crashed, killed from outside): it is respawned at once,
//   and its group gets the watcher's stop signal, then SIGKILL after graceful_timeout, as
//   systemd does with the processes a service leaves behind.
// The members are reaped as they end (SIGCHLD); the group is known to be empty when
// kill(-pgid, 0) fails, so no /proc scan is needed on either path. A program that left the
// group on purpose (setsid: it daemonized) is not touched; circusd reaps it when it exits.

import CircusConfig
import CircusCore
import CircusSystem
import Glibc
import Logging
import OrderedCollections

/// The group of a worker that exited while other members of it were still running.
struct LeftoverGroup {
    /// The group id: the worker's pid.
    let pgid: Int32
    let watcher: String
    /// The exit of a worker that was being stopped, reported to its watcher once the group
    /// is gone.
    var heldExit: (entry: WatcherEntry, exitCode: Int32)?
    /// The SIGKILL deadline of a crashed worker's group.
    var killTimer: EventLoop.TimerID?
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

    /// A worker's pid was reaped. Returns true when its exit must wait for its group.
    ///
    /// - Parameters:
    ///   - pid: the worker (and group) id.
    ///   - exitCode: its Circus exit code.
    ///   - stopping: whether the stop procedure was under way for it.
    func holdExitForGroup(pid: Int32, exitCode: Int32, stopping: Bool, entry: WatcherEntry) -> Bool {
        guard stopping, ProcessGroup.exists(pid) else { return false }
        logger.debug("\(entry.name): pid \(pid) exited; waiting for the rest of its process group")
        leftovers[pid] = LeftoverGroup(pgid: pid, watcher: entry.name, heldExit: (entry, exitCode), killTimer: nil)
        armLeftoverRecheck()
        return true
    }

    /// A worker ended on its own: ends what it left running in its group (stop signal,
    /// then SIGKILL after graceful_timeout).
    func endLeftovers(of pid: Int32, entry: WatcherEntry) {
        // `rm --nostop` let go of the watcher's processes: what they leave is not ours to end.
        guard entry.attached, leftovers[pid] == nil, ProcessGroup.exists(pid) else { return }
        let config = entry.config
        let signo = config.stopSignal
        logger.info(
            "\(entry.name): pid \(pid) exited and left processes running in its process group; sending them \(Signals.name(signo))")
        do {
            try ProcessGroup.signal(pid, signo)
        } catch {
            logger.debug("\(entry.name): signal to the group of \(pid): \(error)")
        }
        var leftover = LeftoverGroup(pgid: pid, watcher: entry.name, heldExit: nil, killTimer: nil)
        if signo != SIGKILL {
            leftover.killTimer = loop.schedule(after: max(config.gracefulTimeout, 0)) { [unowned self] in
                self.killLeftovers(pid)
            }
        }
        leftovers[pid] = leftover
        armLeftoverRecheck()
    }

    private func killLeftovers(_ pgid: Int32) {
        guard var leftover = leftovers[pgid] else { return }
        leftover.killTimer = nil
        leftovers[pgid] = leftover
        guard ProcessGroup.exists(pgid) else { return recheckLeftovers() }
        logger.warning("\(leftover.watcher): processes left by pid \(pgid) outlived graceful_timeout; sending SIGKILL")
        do {
            try ProcessGroup.signal(pgid, SIGKILL)
        } catch {
            logger.debug("\(leftover.watcher): SIGKILL to the group of \(pgid): \(error)")
        }
    }

    /// A re-parented descendant ended and was reaped.
    private func orphanExited(_ exit: OrphanExit) {
        if let leftover = leftovers[exit.processGroup] {
            logger.debug("\(leftover.watcher): reaped pid \(exit.pid), left by pid \(exit.processGroup) (\(exit.status))")
        } else if let owner = watchers.first(where: { $0.machine.processes[exit.processGroup] != nil }) {
            logger.debug("\(owner.name): reaped pid \(exit.pid), a descendant of pid \(exit.processGroup) (\(exit.status))")
        } else {
            logger.info(
                "reaped pid \(exit.pid) (\(exit.status)): a process that had left its watcher's process group, as a program that daemonizes does")
        }
        recheckLeftovers()
    }

    /// Forgets the groups that are now empty, reporting held exits to their watchers.
    func recheckLeftovers() {
        for pgid in Array(leftovers.keys) where !ProcessGroup.exists(pgid) {
            guard let leftover = leftovers.removeValue(forKey: pgid) else { continue }
            if let timer = leftover.killTimer { loop.cancel(timer) }
            if let (entry, exitCode) = leftover.heldExit {
                perform(entry.machine.processExited(pid: pgid, exitCode: exitCode, at: moment()), on: entry)
            }
        }
        if leftovers.isEmpty {
            if let timer = leftoverRecheck { loop.cancel(timer) }
            leftoverRecheck = nil
            let waiting = leftoversGone
            leftoversGone = []
            for done in waiting { done() }
        }
        drainDeferred()
    }

    /// Calls `done` once no leftover group remains (quit waits for them).
    func whenLeftoversGone(_ done: @escaping () -> Void) {
        if leftovers.isEmpty { return done() }
        leftoversGone.append(done)
    }

    /// The last member of a group normally ends as circusd's child (SIGCHLD). One whose
    /// parent lives on in another group of the worker's session (a job-control shell) ends
    /// unseen: while groups are pending, look again every second.
    private func armLeftoverRecheck() {
        guard leftoverRecheck == nil else { return }
        leftoverRecheck = loop.schedule(after: 1) { [unowned self] in
            self.leftoverRecheck = nil
            self.recheckLeftovers()
            if !self.leftovers.isEmpty { self.armLeftoverRecheck() }
        }
    }
}
