// The subreaper, process groups and the reaping of re-parented descendants.
//
// These tests make the test process a child subreaper for their duration (and give the
// attribute up at the end): the system tests run one at a time, so no other test's
// grandchildren are re-parented here meanwhile.

import CircusSystem
import Glibc
import Testing

extension CircusSystemTests {
    @Suite struct OrphanReapingTests {
        /// A shell whose first line of output is a pid it forked.
        private static func spawnShell(_ script: String) throws -> (SpawnedProcess, reportedPid: Int32) {
            let p = Support.pipe()
            var request = SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", script])
            request.stdout = .fd(p.write)
            let child = try Spawner().spawn(request)
            close(p.write)
            let text = Support.readAll(p.read)
            guard let pid = text.split(separator: "\n").first.flatMap({ Int32($0) }) else {
                Support.killAndReap(child)
                throw SystemError("no pid printed by \(script): '\(text)'", errno: EINVAL)
            }
            return (child, pid)
        }

        /// A FIFO a test's orphan blocks on (`read x < PATH`) until the test releases it, so
        /// the orphan ends after its parent whatever the machine's load (the parent shell
        /// would otherwise reap an orphan that ended first).
        private struct Hold {
            let directory = Support.tempDirectory()
            var path: String { directory + "/hold" }

            init() throws {
                guard mkfifo(directory + "/hold", 0o600) == 0 else {
                    throw SystemError("mkfifo", errno: errno)
                }
            }

            /// Lets the orphan go on: its `read` sees end of file.
            func release() {
                let fd = open(path, O_WRONLY)
                if fd >= 0 { close(fd) }
            }

            func remove() { Support.removeTree(directory) }
        }

        /// Polls /proc (10 ms steps, 5 s at most) until `pid` is in `state`, or gone when nil.
        private static func waitState(_ pid: Int32, _ state: Character?) -> Bool {
            for _ in 0..<500 {
                let current = Support.ProcFS_stat(pid)?.state
                if current == state { return true }
                Support.sleep(milliseconds: 10)
            }
            return false
        }

        @Test func subreaperAttributeIsSetAndGivenBack() throws {
            #expect(!Subreaper.isActive)
            try Subreaper.become()
            #expect(Subreaper.isActive)
            Subreaper.resign()
            #expect(!Subreaper.isActive)
        }

        @Test func orphanIsReparentedHereAndReapedWithoutStealingAWatchedExit() throws {
            try Subreaper.become()
            defer { Subreaper.resign() }
            let loop = try EventLoop()
            let monitor = ChildMonitor(loop: loop)
            var orphans: [OrphanExit] = []
            var watchedExit: ProcessExitStatus?
            monitor.onOrphanExit = { exit in
                orphans.append(exit)
                if watchedExit != nil { loop.stop() }
            }
            // The worker forks a subshell that outlives it and exits 7 a little later; the
            // worker itself exits 3 at once. stdout is closed by the subshell so that
            // reading the pid does not wait for it.
            let hold = try Hold()
            defer { hold.remove() }
            let (worker, orphanPid) = try Self.spawnShell("(exec >/dev/null; read x < \(hold.path); exit 7) & echo $!; exit 3")
            try monitor.watch(worker) { _, status in
                watchedExit = status
                if !orphans.isEmpty { loop.stop() }
            }
            // Both end before the loop looks: two zombie children at once, one watched.
            #expect(Self.waitState(worker.pid, "Z"))
            hold.release()
            #expect(Self.waitState(orphanPid, "Z"), "the subshell did not end as our zombie")
            #expect(Support.ProcFS_stat(orphanPid)?.ppid == getpid(), "the orphan was not re-parented to the subreaper")
            monitor.reapOrphans()
            loop.run()
            #expect(watchedExit == .exited(3), "the watched child's status must reach its pidfd, not the orphan reaper")
            #expect(orphans == [OrphanExit(pid: orphanPid, status: .exited(7), processGroup: worker.pid, session: worker.pid)])
            Support.expectNoZombie(orphanPid)
            Support.expectNoZombie(worker.pid)
        }

        @Test func processGroupOutlivesItsLeaderUntilItsLastMemberIsReaped() throws {
            try Subreaper.become()
            defer { Subreaper.resign() }
            let loop = try EventLoop()
            let monitor = ChildMonitor(loop: loop)
            var orphans: [OrphanExit] = []
            monitor.onOrphanExit = { exit in
                orphans.append(exit)
                loop.stop()
            }
            let (worker, memberPid) = try Self.spawnShell("sleep 30 >/dev/null & echo $!; exec sleep 30 >/dev/null")
            #expect(ProcessGroup.exists(worker.pid))
            try worker.signal(SIGKILL)
            #expect(try worker.waitForExit() == .signaled(SIGKILL, coreDumped: false))
            worker.close()
            // The leader is reaped; its background sleep keeps the group alive, now as our child.
            #expect(ProcessGroup.exists(worker.pid))
            #expect(Self.waitState(memberPid, "S"))
            #expect(Support.ProcFS_stat(memberPid)?.ppid == getpid())
            try ProcessGroup.signal(worker.pid, SIGTERM)
            #expect(Self.waitState(memberPid, "Z"))
            // A zombie member still counts until it is reaped.
            #expect(ProcessGroup.exists(worker.pid))
            monitor.reapOrphans()
            #expect(orphans == [OrphanExit(pid: memberPid, status: .signaled(SIGTERM, coreDumped: false),
                                           processGroup: worker.pid, session: worker.pid)])
            #expect(!ProcessGroup.exists(worker.pid))
            let error = #expect(throws: SystemError.self) { try ProcessGroup.signal(worker.pid, SIGTERM) }
            #expect(error?.errno == ESRCH)
            Support.expectNoZombie(memberPid)
        }

        @Test func sessionScanFindsTheGroupsThatLeftTheWorkersOwn() throws {
            // `timeout` makes a process group of its own, inside the worker's session.
            let (worker, timeoutPid) = try Self.spawnShell("timeout 30 sleep 30 >/dev/null & echo $!; exec sleep 30 >/dev/null")
            defer {
                try? ProcessGroup.signal(timeoutPid, SIGKILL)
                Support.killAndReap(worker)
            }
            var found: [Int32: Set<Int32>] = [:]
            for _ in 0..<500 {
                found = Session.otherGroups(in: [worker.pid])
                if found[worker.pid]?.contains(timeoutPid) == true { break }
                Support.sleep(milliseconds: 10)
            }
            #expect(found == [worker.pid: [timeoutPid]])
            // Another session (ours) is not mixed in.
            #expect(Session.otherGroups(in: [getsid(0)])[worker.pid] == nil)
            #expect(Session.otherGroups(in: []).isEmpty)
        }

        @Test func reapOrphansDoesNothingWithoutAHandler() throws {
            try Subreaper.become()
            defer { Subreaper.resign() }
            let loop = try EventLoop()
            let monitor = ChildMonitor(loop: loop)
            let hold = try Hold()
            defer { hold.remove() }
            let (worker, orphanPid) = try Self.spawnShell("(exec >/dev/null; read x < \(hold.path); exit 4) & echo $!; exit 0")
            _ = try worker.waitForExit()
            worker.close()
            hold.release()
            #expect(Self.waitState(orphanPid, "Z"))
            monitor.reapOrphans()
            #expect(Support.ProcFS_stat(orphanPid)?.state == "Z", "reaped without a handler to report it")
            var orphans: [OrphanExit] = []
            monitor.onOrphanExit = { orphans.append($0) }
            monitor.reapOrphans()
            #expect(orphans.map(\.pid) == [orphanPid])
            #expect(orphans.first?.status == .exited(4))
            Support.expectNoZombie(orphanPid)
        }
   
        @Test func aChildAnotherMonitorWatchesIsNoOrphan() throws {
            // Two monitors in one process (the daemon's, and one of an isolated plugin's
            // host): the first reaps orphans, the second keeps its child's status.
            let daemonLoop = try EventLoop()
            let daemon = ChildMonitor(loop: daemonLoop)
            var orphans: [OrphanExit] = []
            daemon.onOrphanExit = { orphans.append($0) }
            let pluginLoop = try EventLoop()
            let plugin = ChildMonitor(loop: pluginLoop)
            let child = try Spawner().spawn(SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", "exit 5"]))
            var reported: ProcessExitStatus?
            try plugin.watch(child) { _, status in
                reported = status
                pluginLoop.stop()
            }
            #expect(Self.waitState(child.pid, "Z"))
            daemon.reapOrphans()
            #expect(orphans.isEmpty)
            pluginLoop.run()
            #expect(reported == .exited(5))
            Support.expectNoZombie(child.pid)
        }
    }
}
