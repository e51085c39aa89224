// A watcher whose spawn hooks are native spawns in runs on its hook thread (before_spawn,
// spawn, after_spawn, next), reporting each step to the loop. These tests hold the runs
// to what the one-at-a-time path does: Circus's events and order, the abort rules, the
// hook deadline, and another hook of the watcher not waiting for the whole run.

import CircusProtocol
import Foundation
import Glibc
import Testing

extension DaemonHarness {
    /// The hook log's lines as `symbol hook_name pid` (pid `-` where the request has none).
    var hookCalls: [String] {
        hookLog.map { line in
            let words = line.split(separator: " ", maxSplits: 2).map(String.init)
            let request = words.count == 3 ? try? JSONParser.parse(words[2]) : nil
            let pid = (request?["pid"] ?? request?["process_pid"])?.intValue.map(String.init) ?? "-"
            return "\(words[0]) \(words.count > 1 ? words[1] : "?") \(pid)"
        }
    }

    /// The pids of `watcher`'s `spawn` events since `mark`, in order.
    func spawnedPids(_ watcher: String, since mark: Int) -> [Int64] {
        events(since: mark).filter { $0.watcher == watcher && $0.name == "spawn" }
            .compactMap { $0.payload["process_pid"]?.intValue }
    }
}

@Suite("Spawn runs") struct SpawnRunTests {
    @Test func aStartOfManyProcessesCallsEachOnesHooksInCircusOrder() async throws {
        // 40 processes: more than one run (32 at most), so the second run is asked for
        // by the machine once the first is over.
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            numprocesses = 40
            autostart = false
            hooks.before_spawn = %LIB%:allow
            hooks.after_spawn = %LIB%:allow
            """) { h, _ in
            let mark = h.mark
            expectOK(try await h.call("start", ["name": "w", "waiting": true]), keys: ["info"])
            let events = try await h.waitWatcherEvents("w", since: mark, through: "start")
            let perProcess = ["hook_success before_spawn", "hook_success after_spawn", "spawn"]
            #expect(events == Array(repeating: perProcess, count: 40).flatMap { $0 } + ["start"])
            let pids = h.spawnedPids("w", since: mark)
            #expect(Set(pids).count == 40)
            #expect(Set(try await h.childPids("w").map(Int64.init)) == Set(pids))
            // Each process's after_spawn got its pid, in spawn order, each before_spawn before it.
            #expect(h.hookCalls == pids.flatMap { ["allow before_spawn -", "allow after_spawn \($0)"] })
        }
    }

    @Test func aRefusalInARunStopsTheSpawningAsCircusDoes() async throws {
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            numprocesses = 10
            autostart = false
            hooks.before_spawn = %LIB%:allow
            hooks.after_spawn = %LIB%:allow_twice
            """ + markerWatcher) { h, _ in
            let mark = h.mark
            expectError(try await h.call("start", ["name": "w", "waiting": true]), errno: 6,
                        reasonContains: "the after_spawn hook of 'w' refused process")
            _ = try await h.waitWatcherEvents("w", since: mark, through: "stop")
            // Three processes were spawned, the third refused: no hook is called for a fourth.
            let pids = h.spawnedPids("w", since: mark)
            #expect(pids.count == 2)
            let calls = h.hookCalls
            #expect(calls.count == 6)
            #expect(calls.filter { $0.hasPrefix("allow before_spawn") }.count == 3)
            #expect(Array(calls.prefix(4)) == [
                "allow before_spawn -", "allow_twice after_spawn \(pids[0])",
                "allow before_spawn -", "allow_twice after_spawn \(pids[1])",
            ])
            #expect(calls[4] == "allow before_spawn -")
            #expect(calls[5].hasPrefix("allow_twice after_spawn "))
            #expect(try await h.status("w") == "stopped")
            #expect(try await h.childPids("w").isEmpty)
        }
    }

    @Test func aWatcherChurningThroughRunsStopsOnQuit() async throws {
        // Processes that end at once: a run's reports come back after some of its processes
        // have already ended. The start (and each respawn after it) spawns the number it
        // settled on when it began, so the stop that `quit` queues behind it gets its turn;
        // counted again after each run, the start never ended and `quit` waited for ever.
        try await withHookDaemon("""
            [watcher:w]
            cmd = true
            numprocesses = 20
            check_flapping = false
            hooks.after_spawn = %LIB%:allow
            """) { h, _ in
            let mark = h.mark
            try await h.waitUntil("the watcher churns") { h.spawnedPids("w", since: mark).count >= 100 }
            expectOK(try await h.call("quit", ["waiting": true], timeout: .seconds(10)))
            #expect(await h.waitExit(timeout: 10))
            #expect(h.process.terminationStatus == 0)
        }
    }

    @Test func circusdsThreadsCarryTheirNames() async throws {
        // Named so that `top -H`, /proc and a debugger tell them apart: a watcher's hook
        // thread carries the watcher's name.
        try await withHookDaemon("""
            [watcher:web]
            cmd = sleep 100
            hooks.after_spawn = %LIB%:allow
            """) { h, _ in
            _ = try await h.waitPids("web", count: 1)
            let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(h.pid)/task")
            let names = Set(tasks.compactMap { tid in
                (try? String(contentsOfFile: "/proc/\(h.pid)/task/\(tid)/comm", encoding: .utf8))?
                    .trimmingCharacters(in: .newlines)
            })
            #expect(names.isSuperset(of: ["circusd", "log", "deadlines", "hooks:web"]), "\(names.sorted())")
        }
    }

    @Test func aHungHookInARunFailsAtItsDeadline() async throws {
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            numprocesses = 3
            autostart = false
            hook_timeout = 1
            hooks.after_spawn = %LIB%:hang
            """ + markerWatcher) { h, _ in
            let mark = h.mark
            expectOK(try await h.call("start", ["name": "w"]))
            let failure = try await h.waitEvent(since: mark, timeout: 5, "hook_failure of w") {
                $0.watcher == "w" && $0.name == "hook_failure"
            }
            #expect(failure.payload["error"] == "hang did not return within hook_timeout (1.0 s)")
            #expect(failure.payload["name"] == "after_spawn")
            // The refused process is stopped with the watcher; the run stopped at it.
            let events = try await h.waitWatcherEvents("w", since: mark, through: "stop")
            #expect(events == ["hook_failure after_spawn", "kill", "reap", "stop"])
            #expect(h.hookCalls.count == 1)
            #expect(try await h.status("w") == "stopped")
        }
    }

    @Test func anotherHookOfTheWatcherWaitsOnlyForTheRunsCurrentProcess() async throws {
        // The second process's after_spawn is held; meanwhile the first process dies, so
        // before_reap is asked for. The run stops after the held process instead of going
        // on with the third, before_reap runs, and a new run spawns the rest.
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            numprocesses = 3
            autostart = false
            hooks.after_spawn = %LIB%:hold_second
            hooks.before_reap = %LIB%:allow
            """) { h, _ in
            let release = h.dir + "/hook.log.release"
            defer { _ = FileManager.default.createFile(atPath: release, contents: nil) }
            let mark = h.mark
            expectOK(try await h.call("start", ["name": "w"]))
            try await h.waitUntil("the second after_spawn to be held") { h.hookCalls.count == 2 }
            let first = try #require(Int32(h.hookCalls[0].split(separator: " ")[2]))
            try await h.waitUntil("w to list \(first)") { try await h.childPids("w").contains(first) }
            #expect(kill(first, SIGKILL) == 0)
            // Its reap event waits for before_reap, which waits for the held hook: the exit
            // is seen once w no longer lists it.
            try await h.waitUntil("w to see \(first) exit") { try await !h.childPids("w").contains(first) }
            _ = FileManager.default.createFile(atPath: release, contents: nil)
            _ = try await h.waitWatcherEvents("w", since: mark, through: "start")
            let calls = h.hookCalls
            #expect(calls.count == 5)
            #expect(calls[2] == "allow before_reap \(first)")
            #expect(calls[3].hasPrefix("hold_second after_spawn "))
            #expect(calls[4].hasPrefix("hold_second after_spawn "))
            #expect(try await h.childPids("w").count == 3)
        }
    }
}
