// Supervision: respawn, crash loops, spawn failures, the stop procedure, warmup, max_age,
// priorities, autostart and the child's environment (ids, limits, env, cwd, shell).

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Supervision") struct SupervisionTests {
    @Test func killedChildIsReplacedWithinOneSecond() async throws {
        try await withDaemon("""
            [watcher:w]
            cmd = sleep 996
            numprocesses = 2
            """) { h in
            let pids = try await h.waitPids("w", count: 2)
            let mark = h.mark
            let killedAt = ContinuousClock.now
            kill(pids[0], SIGKILL)
            let spawn = try await h.waitEvent(since: mark, timeout: 5, "respawn") { $0.topic == "watcher.w.spawn" }
            let latency = spawn.at - killedAt
            #expect(latency < .seconds(2), "respawn took \(latency) (event-driven reaping)")
            let now = try await h.waitPids("w", count: 2)
            #expect(now.contains(pids[1]) && !now.contains(pids[0]))
        }
    }

    @Test func respawnFalseStopsAfterExitAndStartRunsItAgain() async throws {
        try await withDaemon("""
            [watcher:once]
            cmd = sleep 0.3
            respawn = false
            """) { h in
            try await h.waitStatus("once", "stopped", timeout: 5)
            #expect(try await h.childPids("once") == [])
            let mark = h.mark
            let start = try await h.call("start", ["name": "once", "waiting": true])
            expectOK(start, keys: ["info"])
            #expect(start["info"]?["started"]?.pids.count == 1)
            let events = try await h.waitEvents(since: mark, count: 4, "spawn, start, reap, stop") {
                $0.watcher == "once"
            }
            #expect(events.map(\.name) == ["spawn", "start", "reap", "stop"])
            #expect(events[2].payload["exit_code"] == 0)
            try await h.waitStatus("once", "stopped")
        }
    }

    /// A program that exits at once is respawned at once the first time, then after a
    /// delay that doubles from 0.1 s; the watcher stays active (the flapping plugin, which
    /// would stop it, is told to leave it alone; the supervisor's spacing remains).
    @Test func crashLoopDoesNotSpin() async throws {
        try await withDaemon("""
            [watcher:failing]
            cmd = false
            autostart = false
            flapping.active = false
            """) { h in
            let mark = h.mark
            expectOK(try await h.call("start", ["name": "failing"]))
            let spawns = try await h.waitEvents(since: mark, count: 6, timeout: 10, "six spawns") {
                $0.topic == "watcher.failing.spawn"
            }
            let times = spawns.map { $0.payload["time"]?.doubleValue ?? 0 }
            let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
            // Each gap is the backoff plus the life of `false`; a timer never fires early.
            for (gap, backoff) in zip(gaps, [0, 0.1, 0.2, 0.4, 0.8]) {
                #expect(gap >= backoff - 0.005, "respawn gaps \(gaps), backoffs 0, 0.1, 0.2, 0.4, 0.8")
            }
            let reaps = try await h.waitEvents(since: mark, count: 5, "reaps") { $0.topic == "watcher.failing.reap" }
            #expect(reaps.allSatisfy { $0.payload["exit_code"] == 1 }, "\(reaps)")
            #expect(try await h.status("failing") == "active")
        }
    }

    @Test func execFailureStopsThatWatcherWithLastErrorOthersRun() async throws {
        try await withDaemon("""
            [watcher:missing]
            cmd = /nonexistent/bin/definitely-not-here --flag

            [watcher:badlimit]
            cmd = sleep 977
            rlimit_nofile = 999999999

            [watcher:baduser]
            cmd = sleep 976
            uid = no-such-user-xyz

            [watcher:ok]
            cmd = sleep 995
            """) { h in
            try await h.waitStatus("missing", "stopped", timeout: 5)
            let status = try await h.call("status", ["name": "missing"])
            #expect(status.keys == ["status", "time", "last_error", "id"])
            #expect(status["status"] == "stopped")
            let error = status["last_error"]?.stringValue
            #expect(error == "exec '/nonexistent/bin/definitely-not-here': No such file or directory")
            // A limit the child cannot set, an unknown user: the same, later watchers still start.
            for (name, message) in [
                ("badlimit", "setrlimit(RLIMIT_NOFILE): Operation not permitted"),
                ("baduser", "unknown user 'no-such-user-xyz'"),
            ] {
                try await h.waitStatus(name, "stopped", timeout: 5)
                let reply = try await h.call("status", ["name": .string(name)])
                #expect(reply["last_error"]?.stringValue == message, "\(reply)")
            }
            try await h.waitStatus("ok", "active")
            try await h.waitPids("ok", count: 1)
            // A healthy watcher's status has no last_error.
            #expect(try await h.call("status", ["name": "ok"]).keys == ["status", "time", "id"])
            #expect(try await h.childPids("missing") == [])
        }
    }

    @Test func gracefulTimeoutEscalatesToSigkill() async throws {
        try await withDaemon("""
            [watcher:stubborn]
            cmd = sh -c 'trap "" TERM; sleep 100'
            graceful_timeout = 1
            """) { h in
            let pids = try await h.waitPids("stubborn", count: 1)
            let pid = pids[0]
            let mark = h.mark
            let reply = try await h.call("stop", ["name": "stubborn", "waiting": true])
            expectOK(reply, keys: ["info"])
            try await h.waitEvent("watcher.stubborn.stop", since: mark)
            let events = h.events(since: mark).filter { $0.watcher == "stubborn" }
            let kills = events.filter { $0.name == "kill" && $0.pid == pid }
            #expect(kills.count == 2, "\(events)")
            if kills.count == 2 {
                let first = kills[0].payload["time"]?.doubleValue ?? 0
                let second = kills[1].payload["time"]?.doubleValue ?? 0
                #expect(second - first >= 0.9, "SIGKILL came \(second - first) s after the stop signal")
                #expect(second - first < 5)
            }
            let reap = events.first { $0.name == "reap" && $0.pid == pid }
            #expect(reap?.payload["exit_code"] == -9)
            #expect(events.last?.name == "stop")
            // The escalation is recursive: the shell's `sleep 100` is gone too.
            for other in events where other.name == "kill" && other.pid != pid {
                try await h.waitUntil("descendant \(other.pid!) killed") { !Proc.isAlive(other.pid!) }
            }
        }
    }

    @Test func stopChildrenKillsGrandchildren() async throws {
        try await withDaemon("""
            [watcher:kids]
            cmd = sh -c 'sleep 601 & sleep 602 & wait'
            stop_children = true
            graceful_timeout = 3
            """) { h in
            try await h.waitPids("kids", count: 1)
            var grandchildren: [Int32] = []
            try await h.waitUntil("two grandchildren") {
                grandchildren = try await h.statsChildren("kids")
                return grandchildren.count == 2
            }
            expectOK(try await h.call("stop", ["name": "kids", "waiting": true]), keys: ["info"])
            try await h.waitUntil("grandchildren gone", timeout: 3) { grandchildren.allSatisfy { !Proc.isAlive($0) } }
        }
    }

    @Test func warmupDelaySpacesSpawnsAndDelaysStart() async throws {
        try await withDaemon("""
            [watcher:warm]
            cmd = sleep 994
            numprocesses = 2
            warmup_delay = 1
            autostart = false
            """) { h in
            let mark = h.mark
            let reply = try await h.call("start", ["name": "warm", "waiting": true])
            expectOK(reply, keys: ["info"])
            let events = try await h.waitEvents(since: mark, count: 3, "spawn, spawn, start") { $0.watcher == "warm" }
            #expect(events.map(\.name) == ["spawn", "spawn", "start"])
            let t = events.map { $0.payload["time"]?.doubleValue ?? 0 }
            #expect(t[1] - t[0] >= 0.95, "second spawn \(t[1] - t[0]) s after the first")
            #expect(t[2] - t[1] >= 0.95, "start event \(t[2] - t[1]) s after the last spawn")
        }
    }

    /// Circus counts the processes a start spawned until its check_delay poll reaps them,
    /// so a start of programs that end at once succeeds (and they are respawned); it fails
    /// only when it spawned none. Counting only live processes failed the start of such a
    /// watcher, and stopped it, whenever its processes ended before the start was over.
    @Test func aStartOfProgramsThatEndAtOnceSucceeds() async throws {
        try await withDaemon("""
            [watcher:quick]
            cmd = true
            numprocesses = 2
            warmup_delay = 1
            autostart = false
            check_flapping = false
            """) { h in
            let mark = h.mark
            let reply = try await h.call("start", ["name": "quick", "waiting": true])
            expectOK(reply, keys: ["info"])
            #expect(reply["info"]?["started"]?.pids.count == 2)
            // Each process ended within its warmup, before the start was over.
            let events = try await h.waitEvents(since: mark, count: 6, "the start, then a respawn") {
                $0.watcher == "quick"
            }
            #expect(Array(events.map(\.name).prefix(6)) == ["spawn", "reap", "spawn", "reap", "start", "spawn"])
            #expect(try await h.status("quick") == "active")
        }
    }

    @Test func maxAgeRotatesProcesses() async throws {
        try await withDaemon("""
            [watcher:aging]
            cmd = sleep 993
            autostart = false
            max_age = 3
            max_age_variance = 0
            """) { h in
            // Started by the test, so that the first spawn is seen whatever the machine's
            // load (a process found later could already be the first one's replacement).
            let mark = h.mark
            expectOK(try await h.call("start", ["name": "aging", "waiting": true]), keys: ["info"])
            let firstSpawn = try await h.waitEvent("watcher.aging.spawn", since: mark)
            let first = try #require(firstSpawn.pid)
            let started = try #require(firstSpawn.payload["time"]?.doubleValue)
            let kill = try await h.waitEvent("watcher.aging.kill", pid: first, since: mark, timeout: 10)
            let spawn = try await h.waitEvent(since: mark, timeout: 5, "replacement spawn") {
                $0.topic == "watcher.aging.spawn" && $0.pid != first
            }
            let reap = try await h.waitEvent("watcher.aging.reap", pid: first, since: mark, timeout: 5)
            #expect(reap.payload["exit_code"] == -15)
            let all = h.events(since: mark)
            let killIndex = all.firstIndex { $0.topic == kill.topic && $0.pid == first }!
            let spawnIndex = all.firstIndex { $0.topic == spawn.topic && $0.pid == spawn.pid }!
            #expect(killIndex < spawnIndex, "max_age: kill old, then spawn new")
            let age = (kill.payload["time"]?.doubleValue ?? 0) - started
            #expect(age >= 2.95 && age < 8, "killed after \(age) s with max_age 3")
        }
    }

    @Test func priorityOrdersStartAll() async throws {
        try await withDaemon("""
            [watcher:a]
            cmd = sleep 981
            priority = 1

            [watcher:b]
            cmd = sleep 982
            priority = 3

            [watcher:c]
            cmd = sleep 983
            priority = 2
            """) { h in
            // At daemon start (before our subscriber joined): b, c, a by spawn time.
            var started: [String: Double] = [:]
            for name in ["a", "b", "c"] {
                let pid = try await h.waitPids(name, count: 1)[0]
                let stats = try await h.call("stats", ["name": .string(name), "process": .int(Int64(pid))])
                started[name] = stats["info"]?["started"]?.doubleValue ?? 0
            }
            #expect(started["b"]! < started["c"]! && started["c"]! < started["a"]!, "spawn times \(started)")
            expectOK(try await h.call("stop", ["waiting": true]))
            let mark = try await h.eventBarrier(on: "a") + 1  // past the first start's events
            expectOK(try await h.call("start", ["waiting": true]))
            let spawns = try await h.waitEvents(since: mark, count: 3, "spawns") { $0.name == "spawn" }
            #expect(spawns.map(\.watcher) == ["b", "c", "a"])
            let starts = try await h.waitEvents(since: mark, count: 3, "starts") { $0.name == "start" }
            #expect(starts.map(\.watcher) == ["b", "c", "a"])
        }
    }

    @Test func autostartFalseStaysStoppedUntilNamedStart() async throws {
        try await withDaemon("""
            [watcher:manual]
            cmd = sleep 992
            autostart = false

            [watcher:auto]
            cmd = sleep 991
            """) { h in
            try await h.waitStatus("auto", "active")
            #expect(try await h.status("manual") == "stopped")
            expectOK(try await h.call("start", ["waiting": true]))
            #expect(try await h.status("manual") == "stopped")
            #expect(try await h.childPids("manual") == [])
            let reply = try await h.call("start", ["name": "manual", "waiting": true])
            #expect(reply["info"]?["started"]?.pids.count == 1)
            #expect(try await h.status("manual") == "active")
        }
    }

    @Test(.enabled(if: getuid() == 0, "needs root to switch users"))
    func uidNobody() async throws {
        try await withDaemon("""
            [watcher:nobody]
            cmd = sleep 990
            uid = nobody
            """) { h in
            let pid = try await h.waitPids("nobody", count: 1)[0]
            #expect(Proc.uid(pid) == 65534)
            #expect(try await h.call("get", ["name": "nobody", "keys": ["uid"]])["options"]?["uid"] == "nobody")
        }
    }

    @Test func rlimitNofileApplied() async throws {
        try await withDaemon("""
            [watcher:limited]
            cmd = sh -c 'ulimit -n > %DIR%/ulimit.txt; exec sleep 989'
            rlimit_nofile = 77
            """) { h in
            let text = try await h.waitFile("\(h.dir)/ulimit.txt") { $0.hasSuffix("\n") }
            #expect(text == "77\n")
        }
    }

    @Test func environmentWithoutAndWithCopyEnv() async throws {
        try await withDaemon("""
            [watcher:bare]
            cmd = sh -c 'env > %DIR%/env.bare; exec sleep 988'

            [env:bare]
            FOO = bar

            [watcher:exact]
            cmd = sleep 979

            [env:exact]
            FOO = bar
            EMPTY =

            [watcher:copied]
            cmd = sh -c 'env > %DIR%/env.copied; exec sleep 987'
            copy_env = true

            [env:copied]
            FOO = baz
            """) { h in
            // Exactly the [env] values (sleep is found through the /bin:/usr/bin fallback).
            let exact = try await h.waitPids("exact", count: 1)[0]
            #expect(Proc.environment(exact) == ["FOO": "bar", "EMPTY": ""])
            let written = try await h.waitFile("\(h.dir)/env.bare") { $0.contains("FOO=") }
            let lines = Set(written.split(separator: "\n").map(String.init))
            // The shell may add its own PWD/SHLVL/_; nothing from circusd's environment.
            #expect(lines.contains("FOO=bar"))
            #expect(!lines.contains { $0.hasPrefix("PATH=") || $0.hasPrefix("HOME=") })

            let copied = try await h.waitPids("copied", count: 1)[0]
            try await h.waitUntil("copied exec'd sleep") { Proc.cmdline(copied)?.first == "sleep" }
            let env = Proc.environment(copied) ?? [:]
            #expect(env["PATH"] == ProcessInfo.processInfo.environment["PATH"])
            #expect(env["FOO"] == "baz")
            #expect(env["__name__"] == nil)
        }
    }

    @Test func workingDirWidAndShell() async throws {
        try await withDaemon("""
            [watcher:wd]
            cmd = sleep 986
            working_dir = %DIR%/wd

            [watcher:wid]
            cmd = sleep 90$(circus.wid)
            numprocesses = 2

            [watcher:shell]
            cmd = echo $((1+2)) > %DIR%/shell.txt; exec sleep 985
            shell = true
            """, files: ["wd/": ""]) { h in
            let wd = try await h.waitPids("wd", count: 1)[0]
            let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(wd)/cwd")
            #expect(cwd == "\(h.dir)/wd")
            #expect(try await h.call("get", ["name": "wd", "keys": ["working_dir"]])["options"]?["working_dir"]
                    == .string("\(h.dir)/wd"))

            let wids = try await h.waitPids("wid", count: 2)
            #expect(wids.compactMap { Proc.cmdline($0) } == [["sleep", "901"], ["sleep", "902"]])

            let text = try await h.waitFile("\(h.dir)/shell.txt") { $0.hasSuffix("\n") }
            #expect(text == "3\n", "shell = true goes through /bin/sh")
        }
    }
}
