// Exits seen through pidfds in the loop, signals through pidfds, and the signalfd source.

import CircusSystem
import Glibc
import Testing

extension CircusSystemTests {
    @Suite struct ChildMonitorTests {
        @Test func exitIsDeliveredOnTheFirstWakeup() throws {
            let loop = try EventLoop()
            let monitor = ChildMonitor(loop: loop)
            let child = try Spawner().spawn(SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", "sleep 0.2; exit 3"]))
            var reported: (Int32, ProcessExitStatus)?
            try monitor.watch(child) { pid, status in
                reported = (pid, status)
                loop.stop()
            }
            #expect(monitor.isWatching(child.pid))
            loop.run()
            #expect(reported?.0 == child.pid)
            #expect(reported?.1 == .exited(3))
            // The only wakeup in 200 ms was the exit itself: nothing polls.
            #expect(loop.wakeupCount == 1)
            #expect(!monitor.isWatching(child.pid))
            #expect(loop.registrationCount == 0)
            // Reaped and pidfd closed by the monitor.
            #expect(!Support.openFDs().contains { Support.fdTarget($0).contains("pidfd") })
            Support.expectNoZombie(child.pid)
        }

        @Test func theExitIsReportedBeforeTheReapAndTheReapFollowsAtOnce() throws {
            // What the handler does first (a respawn) does not wait for the kernel's release
            // of the dead process: during the call it is a zombie, still in its group.
            let loop = try EventLoop()
            let monitor = ChildMonitor(loop: loop)
            var request = SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", "exit 4"])
            request.newSession = true  // a group of its own, as a worker has
            let child = try Spawner().spawn(request)
            var duringCall: (state: Character?, groupSignalled: Int32)?
            try monitor.watch(child) { pid, _ in
                duringCall = (Support.ProcFS_stat(pid)?.state, kill(-pid, 0))
                loop.stop()
            }
            loop.run()
            #expect(duringCall?.state == "Z")
            #expect(duringCall?.groupSignalled == 0)
            // Reaped when the handler returned.
            Support.expectNoZombie(child.pid)
            #expect(kill(child.pid, 0) == -1 && errno == ESRCH)
        }

        @Test func signalsGoThroughThePidfd() throws {
            let loop = try EventLoop()
            let monitor = ChildMonitor(loop: loop)
            let spawner = Spawner()
            var statuses: [Int32: Int32] = [:]
            var children: [SpawnedProcess] = []
            for _ in 0..<3 {
                let child = try spawner.spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"]))
                children.append(child)
                try monitor.watch(child) { pid, status in
                    statuses[pid] = status.exitCode
                    if statuses.count == 3 { loop.stop() }
                }
            }
            try monitor.signal(children[0].pid, SIGTERM)
            try monitor.signal(children[1].pid, SIGKILL)
            try monitor.signal(children[2].pid, SIGINT)
            loop.run()
            #expect(statuses == [children[0].pid: -15, children[1].pid: -9, children[2].pid: -2])
            // After the reap the pid is unknown: never signalled again, whoever reuses it.
            let error = #expect(throws: SystemError.self) { try monitor.signal(children[0].pid, SIGTERM) }
            #expect(error?.errno == ESRCH)
            for child in children { Support.expectNoZombie(child.pid) }
        }

        @Test func forgetHandsThePidfdBack() throws {
            let loop = try EventLoop()
            let monitor = ChildMonitor(loop: loop)
            let child = try Spawner().spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"]))
            try monitor.watch(child) { _, _ in Issue.record("forgotten child reported") }
            let back = monitor.forget(child.pid)
            #expect(back == child)
            #expect(loop.registrationCount == 0)
            Support.killAndReap(child)
        }

        @Test func signalSourceDeliversSignalsFromTheLoop() throws {
            // Block SIGUSR1 on this thread only and send it to this thread only, so no other
            // thread of the test process is affected; restore everything afterwards.
            let saved = SignalSource.blockDaemonSignals([SIGUSR1])
            defer { saved.restore() }
            let loop = try EventLoop()
            var received: [Int32] = []
            let source = try SignalSource(loop: loop, signals: [SIGUSR1]) { signo in
                received.append(signo)
                loop.stop()
            }
            pthread_kill(pthread_self(), SIGUSR1)
            loop.run()
            source.close()
            #expect(received == [SIGUSR1])
            var pending = sigset_t()
            sigpending(&pending)
            #expect(sigismember(&pending, SIGUSR1) == 0)
            #expect(loop.registrationCount == 0)
        }

        /// A launcher may leave daemon signals ignored (a shell's background job ignores INT
        /// and QUIT); the daemon takes them over with their default disposition so that
        /// its children do not inherit the ignore.
        @Test func ignoredDaemonSignalsAreNotPassedOnToChildren() throws {
            func ignoresUSR2(_ pid: Int32) -> Bool {
                let status = Support.readFile("/proc/\(pid)/status") ?? ""
                let line = status.split(separator: "\n").first { $0.hasPrefix("SigIgn:") } ?? ""
                let mask = UInt64(String(line.dropFirst("SigIgn:".count).filter { !$0.isWhitespace }), radix: 16) ?? 0
                return mask & (1 << UInt64(SIGUSR2 - 1)) != 0
            }
            Glibc.signal(SIGUSR2, SIG_IGN)
            let before = try Spawner().spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"]))
            #expect(ignoresUSR2(before.pid), "control: an ignored signal is inherited across exec")
            Support.killAndReap(before)

            let saved = SignalSource.blockDaemonSignals([SIGUSR2])
            defer {
                saved.restore()
                Glibc.signal(SIGUSR2, SIG_DFL)
            }
            let after = try Spawner().spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"]))
            #expect(!ignoresUSR2(after.pid))
            Support.killAndReap(after)
        }

        @Test func signalToAProcessWeDidNotSpawn() throws {
            let child = try Spawner().spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"]))
            try ChildMonitor.signal(pid: child.pid, SIGTERM)
            #expect(try child.waitAndClose() == .signaled(SIGTERM, coreDumped: false))
            let error = #expect(throws: SystemError.self) { try ChildMonitor.signal(pid: child.pid, SIGTERM) }
            #expect(error?.errno == ESRCH)
        }
    }
}
