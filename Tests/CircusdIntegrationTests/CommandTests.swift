// The 24 commands of the control protocol, against a real daemon, with Circus's reply
// shapes (as captured from Circus 0.19).

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two `sleep` processes that die at once on SIGTERM.
let sleeperINI = """
    [watcher:sleeper]
    cmd = sleep 1000
    numprocesses = 2
    graceful_timeout = 2
    """

@Suite("Commands") struct CommandTests {
    // MARK: add / rm

    @Test func addWithoutStartThenAddAndStartWaiting() async throws {
        try await withDaemon(sleeperINI) { h in
            var mark = h.mark
            let added = try await h.call("add", ["name": "DYN", "cmd": "sleep 500"])
            expectOK(added)
            let event = try await h.waitEvent("watcher.dyn.add", since: mark)
            #expect(event.keys == ["time"])
            #expect(try await h.status("dyn") == "stopped")
            #expect(try await h.call("list")["watchers"] == ["dyn", "sleeper"])
            #expect(try await h.childPids("DYN").isEmpty)

            mark = h.mark
            let started = try await h.call("add", [
                "name": "dyn2", "cmd": "sleep 500", "options": ["numprocesses": 2], "start": true, "waiting": true,
            ])
            expectOK(started, keys: ["started", "kept"])
            #expect(started["started"]?.pids.count == 2)
            #expect(started["kept"] == [])
            #expect(try await h.status("dyn2") == "active")
            #expect(Set(try await h.childPids("dyn2")) == Set(started["started"]?.pids ?? []))
            let events = try await h.waitEvents(since: mark, count: 4, "dyn2 add/spawn/start") {
                $0.watcher == "dyn2"
            }
            #expect(events.map(\.name) == ["add", "spawn", "spawn", "start"])

            // add --start without waiting: bare ok at once, processes follow.
            let quick = try await h.call("add", ["name": "dyn3", "cmd": "sleep 500", "start": true])
            expectOK(quick)
            try await h.waitPids("dyn3", count: 1)
        }
    }

    @Test func addRejectsBadInput() async throws {
        try await withDaemon(sleeperINI) { h in
            expectError(try await h.call("add", ["name": "dyn3"]), errno: 3, reason: "message invalid 'cmd' is missing")
            expectError(try await h.call("add", ["cmd": "sleep 1"]), errno: 3, reason: "message invalid 'name' is missing")
            expectError(try await h.call("add", ["name": "o3", "cmd": "sleep 1", "options": ["priority": 3]]),
                        errno: 3, reason: "unknown key 'priority'")
            expectError(try await h.call("add", ["name": "o", "cmd": "sleep 1", "options": ["env": ["A": 1]]]),
                        errno: 3, reason: "'A' isn't a string")
            expectError(try await h.call("add", ["name": "o", "cmd": "sleep 1", "options": ["rlimit_bogus": nil]]),
                        errno: 3, reason: "'rlimit_bogus' isn't a valid rlimit setting")
            expectError(try await h.call("add", ["name": "o", "cmd": "sleep 1",
                                                 "options": ["stdout_stream": ["filename": "x"]]]),
                        errno: 3, reason: "'stdout_stream' must have a 'class' key")
            // A case-insensitive duplicate: errno 5, reason ending with `'SLEEPER' already exist`.
            let dup = try await h.call("add", ["name": "SLEEPER", "cmd": "sleep 1"])
            expectError(dup, errno: 5)
            #expect(dup["reason"]?.stringValue?.hasSuffix("'SLEEPER' already exist") == true, "\(dup)")
            #expect(try await h.call("numwatchers")["numwatchers"] == 1)
        }
    }

    /// `add --start` queued behind a reloadconfig that drops the new watcher (it is not in
    /// the file) must not leave processes nobody supervises.
    @Test func addedWatcherRemovedByAQueuedReloadconfigNeverSpawns() async throws {
        try await withDaemon("""
            [watcher:slow]
            cmd = sh -c 'trap "" TERM; sleep 1005'
            graceful_timeout = 60
            """) { h in
            // A stop that lasts until the test ends it (TERM is ignored, the escalation is
            // a minute away): the reloadconfig and the add's start queue behind it, in
            // that order, whatever the machine's load.
            let slow = try await h.waitPids("slow", count: 1)[0]
            let mark = h.mark
            expectOK(try await h.call("stop", ["name": "slow"]))
            try await h.waitEvent("watcher.slow.kill", pid: slow, since: mark)
            expectOK(try await h.call("reloadconfig"))
            expectOK(try await h.call("add", ["name": "dyn", "cmd": "sleep 1006", "start": true]))
            #expect(h.trackedStat(slow) != nil)
            kill(-slow, SIGKILL)
            try await h.waitUntil("dyn gone", timeout: 10) {
                try await h.call("list")["watchers"] == ["slow"]
            }
            // A reloadconfig waits for every job queued before it, a wrongly started dyn
            // included; the barrier's event comes after anything such a start published.
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            let end = try await h.eventBarrier(on: "slow")
            #expect(!h.events(since: 0, before: end).contains { $0.watcher == "dyn" && $0.name == "spawn" })
        }
    }

    @Test func rmStopsAndRemoves() async throws {
        try await withDaemon(sleeperINI) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            let mark = h.mark
            let reply = try await h.call("rm", ["name": "sleeper", "waiting": true])
            expectOK(reply)
            let events = try await h.waitEvents(since: mark, count: 6, "remove + stop sequence") {
                $0.watcher == "sleeper"
            }
            #expect(events.map(\.name) == ["remove", "kill", "kill", "reap", "reap", "stop"])
            #expect(events.first?.keys == ["time"])
            #expect(try await h.call("list")["watchers"] == [])
            try await h.waitUntil("old pids gone") { pids.allSatisfy { !Proc.isAlive($0) } }
            expectError(try await h.call("rm", ["name": "ghost"]), errno: 3, reason: "program ghost not found")
        }
    }

    @Test func rmNostopLeavesProcessesRunningAndStillReapsThem() async throws {
        try await withDaemon(sleeperINI) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            expectOK(try await h.call("rm", ["name": "sleeper", "nostop": true, "waiting": true]))
            #expect(try await h.call("list")["watchers"] == [])
            #expect(pids.allSatisfy { Proc.isAlive($0) })
            // The orphans are ours to end; the daemon must still reap them (no zombies).
            for pid in pids where h.trackedStat(pid) != nil { kill(pid, SIGKILL) }
            try await h.waitUntil("orphans reaped (not zombies)") { pids.allSatisfy { h.trackedStat($0) == nil } }
            // ... and keep running: it answers after having reaped them.
            expectOK(try await h.call("list"), keys: ["watchers"])
            #expect(h.process.isRunning, "circusd died when the orphans of rm --nostop exited")
        }
    }

    // MARK: start / stop / restart

    @Test func startStopRestartSingleWatcherPayloads() async throws {
        try await withDaemon(sleeperINI) { h in
            let first = try await h.waitPids("sleeper", count: 2)

            var mark = h.mark
            let stop = try await h.call("stop", ["name": "sleeper", "waiting": true], id: "s1")
            expectOK(stop, keys: ["info"])
            #expect(stop["info"] == .null)
            #expect(stop["id"] == "s1")
            let stopEvents = try await h.waitEvents(since: mark, count: 5, "stop sequence") { $0.watcher == "sleeper" }
            #expect(stopEvents.map(\.name) == ["kill", "kill", "reap", "reap", "stop"])
            #expect(Set(stopEvents.prefix(2).compactMap(\.pid)) == Set(first))
            let status = try await h.call("status", ["name": "sleeper"], id: "s2")
            #expect(status.keys == ["status", "time", "id"])
            #expect(status["status"] == "stopped")

            mark = h.mark
            let start = try await h.call("start", ["name": "sleeper", "waiting": true])
            expectOK(start, keys: ["info"])
            #expect(start["info"]?.keys == ["started", "kept"])
            let started = start["info"]?["started"]?.pids ?? []
            #expect(started.count == 2)
            #expect(start["info"]?["kept"] == [])
            let startEvents = try await h.waitEvents(since: mark, count: 3, "start sequence") { $0.watcher == "sleeper" }
            #expect(startEvents.map(\.name) == ["spawn", "spawn", "start"])
            #expect(startEvents.prefix(2).compactMap(\.pid) == started)

            let again = try await h.call("start", ["name": "sleeper", "waiting": true])
            #expect(again["info"] == ["started": [], "kept": .array(started.map { .int(Int64($0)) })])

            let restart = try await h.call("restart", ["name": "sleeper", "waiting": true])
            expectOK(restart, keys: ["info"])
            #expect(restart["info"]?.keys == ["stopped", "started", "kept"])
            #expect(Set(restart["info"]?["stopped"]?.pids ?? []) == Set(started))
            let restarted = restart["info"]?["started"]?.pids ?? []
            #expect(restarted.count == 2 && Set(restarted).isDisjoint(with: started))
            #expect(restart["info"]?["kept"] == [])
            #expect(Set(try await h.childPids("sleeper")) == Set(restarted))

            // Without waiting: a bare ok at once.
            expectOK(try await h.call("stop", ["name": "sleeper"]))
            try await h.waitStatus("sleeper", "stopped")
            expectOK(try await h.call("start", ["name": "sleeper"]))
            try await h.waitPids("sleeper", count: 2)
        }
    }

    static let threeWatchers = """
        [watcher:web1]
        cmd = sleep 1001

        [watcher:web2]
        cmd = sleep 1002

        [watcher:other]
        cmd = sleep 1003

        [watcher:manual]
        cmd = sleep 1004
        autostart = false
        """

    @Test func startStopByGlobAndRegex() async throws {
        try await withDaemon(Self.threeWatchers) { h in
            try await h.waitStatus("web2", "active")
            // Several matches: the arbiter path, empty payload.
            let stop = try await h.call("stop", ["name": "web*", "waiting": true])
            expectOK(stop)
            #expect(try await h.status("web1") == "stopped")
            #expect(try await h.status("web2") == "stopped")
            #expect(try await h.status("other") == "active")

            // A multi-match start skips autostart=false watchers.
            let start = try await h.call("start", ["name": "*", "waiting": true])
            expectOK(start)
            #expect(try await h.status("web1") == "active")
            #expect(try await h.status("manual") == "stopped")

            let regexStop = try await h.call("stop", ["name": "WEB[0-9]", "match": "regex", "waiting": true])
            expectOK(regexStop)
            #expect(try await h.status("web1") == "stopped")
            #expect(try await h.status("web2") == "stopped")
            // A regex is anchored at the start only.
            expectError(try await h.call("stop", ["name": "eb1", "match": "regex"]), errno: 3,
                        reason: "program eb1 not found")

            // One glob match: the watcher's own start, with its info.
            let one = try await h.call("start", ["name": "web1*", "waiting": true])
            expectOK(one, keys: ["info"])
            #expect(one["info"]?["started"]?.pids.count == 1)

            let simple = try await h.call("start", ["name": "WEB2", "match": "simple", "waiting": true])
            expectOK(simple, keys: ["info"])
            expectError(try await h.call("start", ["name": "web*", "match": "simple"]), errno: 3,
                        reason: "program web* not found")

            expectError(try await h.call("start", ["name": "x", "match": "fuzzy"]), errno: 3,
                        reason: "unknown match method fuzzy")
            expectError(try await h.call("start", ["name": "zzz*"]), errno: 3, reason: "program zzz* not found")
            expectError(try await h.call("stop", ["name": "ghost"]), errno: 3, reason: "program ghost not found")
            expectError(try await h.call("restart", ["name": "ghost"]), errno: 3, reason: "program ghost not found")

            // A single-watcher start ignores autostart.
            let manual = try await h.call("start", ["name": "manual", "waiting": true])
            #expect(manual["info"]?["started"]?.pids.count == 1)
        }
    }

    @Test func startAndStopAll() async throws {
        try await withDaemon(Self.threeWatchers) { h in
            try await h.waitStatus("other", "active")
            #expect(try await h.status("manual") == "stopped")
            let stop = try await h.call("stop", ["waiting": true])
            expectOK(stop)
            for name in ["web1", "web2", "other", "manual"] { #expect(try await h.status(name) == "stopped") }
            #expect(try await h.call("numprocesses")["numprocesses"] == 0)
            // The daemon keeps running.
            expectOK(try await h.call("list"), keys: ["watchers"])

            let start = try await h.call("start", ["waiting": true])
            expectOK(start)
            for name in ["web1", "web2", "other"] { #expect(try await h.status(name) == "active") }
            // start without a name skips autostart=false.
            #expect(try await h.status("manual") == "stopped")
        }
    }

    // MARK: reload

    @Test func reloadGracefulSpawnsNewThenKillsOld() async throws {
        try await withDaemon(sleeperINI) { h in
            let old = try await h.waitPids("sleeper", count: 2)
            let mark = h.mark
            let reply = try await h.call("reload", ["name": "sleeper", "waiting": true])
            expectOK(reply, keys: ["info"])
            #expect(reply["info"]?.keys == ["stopped", "started", "kept"])
            #expect(Set(reply["info"]?["stopped"]?.pids ?? []) == Set(old))
            let new = reply["info"]?["started"]?.pids ?? []
            #expect(new.count == 2 && Set(new).isDisjoint(with: old))
            #expect(reply["info"]?["kept"] == [])
            try await h.waitEvent("watcher.sleeper.reload", since: mark)
            let names = h.events(since: mark).filter { $0.watcher == "sleeper" && $0.name != "reap" }.map(\.name)
            #expect(names == ["spawn", "spawn", "kill", "kill", "reload"])
            let kills = h.events(since: mark).filter { $0.name == "kill" }.compactMap(\.pid)
            #expect(Set(kills) == Set(old))
            // Policy: a reap for every process that ends, reload surplus included.
            let reaps = try await h.waitEvents(since: mark, count: 2, "reaps of the old processes") {
                $0.name == "reap"
            }
            #expect(Set(reaps.compactMap(\.pid)) == Set(old))
            #expect(Set(try await h.childPids("sleeper")) == Set(new))
            try await h.waitUntil("old processes gone") { old.allSatisfy { !Proc.isAlive($0) } }
        }
    }

    @Test func reloadSequentialReplacesOneByOne() async throws {
        try await withDaemon(sleeperINI) { h in
            let old = try await h.waitPids("sleeper", count: 2)
            let mark = h.mark
            let reply = try await h.call("reload", ["name": "sleeper", "sequential": true, "waiting": true])
            expectOK(reply, keys: ["info"])
            try await h.waitEvent("watcher.sleeper.reload", since: mark)
            let events = h.events(since: mark).filter { $0.watcher == "sleeper" }
            #expect(events.map(\.name) == ["kill", "reap", "spawn", "kill", "reap", "spawn", "reload"])
            #expect(events.first?.pid == old.first)
            #expect(Set(reply["info"]?["stopped"]?.pids ?? []) == Set(old))
            #expect(reply["info"]?["started"]?.pids.count == 2)
        }
    }

    @Test func reloadNotGracefulIsARestart() async throws {
        try await withDaemon(sleeperINI) { h in
            let old = try await h.waitPids("sleeper", count: 2)
            let mark = h.mark
            let reply = try await h.call("reload", ["name": "sleeper", "graceful": false, "waiting": true])
            expectOK(reply, keys: ["info"])
            try await h.waitEvent("watcher.sleeper.start", since: mark)
            let end = try await h.eventBarrier(on: "sleeper")
            let names = h.events(since: mark, before: end).filter { $0.watcher == "sleeper" }.map(\.name)
            #expect(names == ["kill", "kill", "reap", "reap", "stop", "spawn", "spawn", "start"])
            #expect(!names.contains("reload"))
            let new = try await h.childPids("sleeper")
            #expect(new.count == 2 && Set(new).isDisjoint(with: old))
        }
    }

    @Test func reloadAllWatchers() async throws {
        try await withDaemon(sleeperINI + "\n\n[watcher:other]\ncmd = sleep 1001\n") { h in
            let old = try await h.waitPids("sleeper", count: 2)
            let mark = h.mark
            expectOK(try await h.call("reload", ["waiting": true]))
            try await h.waitEvent("watcher.sleeper.reload", since: mark)
            try await h.waitEvent("watcher.other.reload", since: mark)
            #expect(Set(try await h.childPids("sleeper")).isDisjoint(with: old))
        }
    }

    static let hupScript = """
        #!/bin/sh
        trap 'echo hup >> %DIR%/hup.$$' HUP
        while :; do sleep 0.1; done
        """

    @Test func reloadSendHupSignalsInPlace() async throws {
        try await withDaemon("""
            [watcher:hup]
            cmd = %DIR%/hup.sh
            send_hup = true
            stop_children = true
            """, files: ["hup.sh": Self.hupScript]) { h in
            let pids = try await h.waitPids("hup", count: 1)
            let mark = h.mark
            let reply = try await h.call("reload", ["name": "hup", "waiting": true])
            expectOK(reply, keys: ["info"])
            #expect(reply["info"] == ["stopped": [], "started": [], "kept": .array(pids.map { .int(Int64($0)) })])
            try await h.waitFile("\(h.dir)/hup.\(pids[0])") { $0.contains("hup") }
            try await h.waitEvent("watcher.hup.reload", since: mark)
            #expect(!h.events(since: mark).contains { $0.name == "kill" || $0.name == "spawn" })
            #expect(try await h.childPids("hup") == pids)
        }
    }

    // MARK: reloadconfig

    @Test func reloadconfigResizesRestartsAndAdds() async throws {
        let before = """
            [watcher:np]
            cmd = sleep 1001

            [watcher:change]
            cmd = sleep 1002

            [watcher:same]
            cmd = sleep 1004
            """
        let after = """
            [watcher:np]
            cmd = sleep 1001
            numprocesses = 2

            [watcher:change]
            cmd = sleep 1005

            [watcher:same]
            cmd = sleep 1004

            [watcher:fresh]
            cmd = sleep 1006
            """
        try await withDaemon(before) { h in
            let np = try await h.waitPids("np", count: 1)
            let change = try await h.waitPids("change", count: 1)
            let same = try await h.waitPids("same", count: 1)
            try h.rewriteConfig(after)
            let mark = h.mark
            let reply = try await h.call("reloadconfig", ["waiting": true])
            expectOK(reply)
            #expect(try await h.call("list")["watchers"] == ["change", "fresh", "np", "same"])
            let npNow = try await h.waitPids("np", count: 2)
            #expect(npNow.contains(np[0]), "a numprocesses change keeps the old process")
            let changeNow = try await h.waitPids("change", count: 1)
            #expect(changeNow != change)
            #expect(Proc.cmdline(changeNow[0]) == ["sleep", "1005"])
            #expect(try await h.childPids("same") == same)
            try await h.waitStatus("fresh", "active")
            let fresh = try await h.waitPids("fresh", count: 1)
            #expect(Proc.cmdline(fresh[0]) == ["sleep", "1006"])
            // No add/remove events for reloadconfig, nothing at all for the unchanged watcher.
            let end = try await h.eventBarrier(on: "np")
            #expect(!h.events(since: mark, before: end).contains { $0.name == "add" || $0.name == "remove" })
            #expect(!h.events(since: mark, before: end).contains { $0.watcher == "same" })
        }
    }

    @Test func reloadconfigRemovesAWatcher() async throws {
        let before = """
            [watcher:keep]
            cmd = sleep 1007

            [watcher:gone]
            cmd = sleep 1003
            """
        try await withDaemon(before) { h in
            let keep = try await h.waitPids("keep", count: 1)
            let gone = try await h.waitPids("gone", count: 1)
            try h.rewriteConfig("[watcher:keep]\ncmd = sleep 1007\n")
            let mark = h.mark
            expectOK(try await h.call("reloadconfig", ["waiting": true], timeout: .seconds(5)))
            #expect(try await h.call("list")["watchers"] == ["keep"])
            try await h.waitUntil("removed watcher's process gone") { !Proc.isAlive(gone[0]) }
            expectError(try await h.call("status", ["name": "gone"]), errno: 3, reason: "program gone not found")
            try await h.waitEvent("watcher.gone.stop", since: mark)
            let end = try await h.eventBarrier(on: "keep")
            #expect(!h.events(since: mark, before: end).contains { $0.name == "remove" })
            #expect(try await h.childPids("keep") == keep)
        }
    }

    /// `restart` without a name restarts the arbiter in-process and re-reads the file.
    @Test func restartWithoutNameRereadsTheConfig() async throws {
        try await withDaemon(sleeperINI) { h in
            let old = try await h.waitPids("sleeper", count: 2)
            try h.rewriteConfig(sleeperINI.replacingOccurrences(of: "numprocesses = 2", with: "numprocesses = 3"))
            expectOK(try await h.call("restart", ["waiting": true], id: "y1"))
            let new = try await h.waitPids("sleeper", count: 3)
            #expect(Set(new).isDisjoint(with: old))
            #expect(h.process.isRunning, "same daemon process")
        }
    }

    // MARK: quit

    @Test func quitStopsEverythingAndExitsZero() async throws {
        try await withDaemon(sleeperINI) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            let reply = try await h.call("quit", id: "o5")
            expectOK(reply)
            #expect(reply["id"] == "o5")
            #expect(await h.waitExit(timeout: 10))
            #expect(h.process.terminationStatus == 0)
            #expect(h.process.terminationReason == .exit)
            #expect(pids.allSatisfy { !Proc.isAlive($0) })
        }
    }

    @Test func quitWaitingRepliesAfterEverythingStopped() async throws {
        try await withDaemon(sleeperINI) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            let reply = try await h.call("quit", ["waiting": true])
            expectOK(reply)
            // Stopped means reaped: not running, and not a zombie either.
            for pid in pids { #expect(h.trackedStat(pid) == nil, "pid \(pid) after quit --waiting: \(String(describing: h.trackedStat(pid)))") }
            #expect(await h.waitExit(timeout: 10))
            #expect(h.process.terminationStatus == 0)
        }
    }

    // MARK: list / status / numwatchers / numprocesses

    @Test func listStatusAndCounts() async throws {
        try await withDaemon(sleeperINI + "\n\n[watcher:Web App]\ncmd = sleep 999\n") { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            try await h.waitPids("web app", count: 1)

            let list = try await h.call("list", id: "a1")
            expectOK(list, keys: ["watchers"])
            #expect(list["watchers"] == ["sleeper", "web app"])
            #expect(list["id"] == "a1")
            // Case-insensitive command and name; pids in spawn order.
            let byName = try await h.call("LIST", ["name": "SLEEPER"], id: "a2")
            expectOK(byName, keys: ["pids"])
            #expect(byName["pids"]?.pids == pids)
            // No id: echoed as null.
            let noID = try await h.raw(Array(#"{"command":"list"}"#.utf8))
            let parsed = try JSONParser.parse(noID ?? [])
            #expect(parsed["id"] == .null)
            #expect(parsed.keys == okKeys(["watchers"]))

            let status = try await h.call("status", ["name": "sleeper"])
            #expect(status.keys == ["status", "time", "id"])
            #expect(status["status"] == "active")
            let all = try await h.call("status")
            expectOK(all, keys: ["statuses"])
            #expect(all["statuses"]?.keys == ["Web App", "sleeper"])
            #expect(all["statuses"] == ["Web App": "active", "sleeper": "active"])
            expectError(try await h.call("status", ["name": "ghost"], id: "a7"), errno: 3, reason: "program ghost not found")

            let numwatchers = try await h.call("numwatchers")
            expectOK(numwatchers, keys: ["numwatchers"])
            #expect(numwatchers["numwatchers"] == 2)

            let one = try await h.call("numprocesses", ["name": "SLEEPER"])
            expectOK(one, keys: ["numprocesses", "watcher_name"])
            #expect(one["numprocesses"] == 2)
            #expect(one["watcher_name"] == "SLEEPER")
            let total = try await h.call("numprocesses")
            expectOK(total, keys: ["numprocesses"])
            #expect(total["numprocesses"] == 3)
            expectError(try await h.call("numprocesses", ["name": "ghost"]), errno: 3, reason: "program ghost not found")
        }
    }

    // MARK: incr / decr

    @Test func incrDecrWithAndWithoutWaiting() async throws {
        try await withDaemon(sleeperINI + "\n\n[watcher:single]\ncmd = sleep 998\nsingleton = true\n") { h in
            try await h.waitPids("sleeper", count: 2)
            var mark = h.mark
            let c1 = try await h.call("incr", ["name": "sleeper"], id: "c1")
            expectOK(c1)
            try await h.waitPids("sleeper", count: 3)
            try await h.waitEvent("watcher.sleeper.spawn", since: mark)

            let c2 = try await h.call("incr", ["name": "sleeper", "nb": 2, "waiting": true], id: "c2")
            expectOK(c2, keys: ["numprocesses"])
            #expect(c2["numprocesses"] == 5)
            let five = try await h.waitPids("sleeper", count: 5)

            mark = h.mark
            let c3 = try await h.call("decr", ["name": "sleeper", "nb": 3, "waiting": true], id: "c3")
            expectOK(c3, keys: ["numprocesses"])
            #expect(c3["numprocesses"] == 2)
            // The oldest go first.
            let two = try await h.waitPids("sleeper", count: 2)
            #expect(two == Array(five.suffix(2)))
            let kills = try await h.waitEvents(since: mark, count: 3, "kills") { $0.name == "kill" }
            #expect(Set(kills.compactMap(\.pid)) == Set(five.prefix(3)))
            // Our daemon publishes reap for every ending process (policy).
            try await h.waitEvents(since: mark, count: 3, "reaps") { $0.name == "reap" }

            let c4 = try await h.call("numprocesses", ["name": "sleeper"], id: "c4")
            #expect(c4["numprocesses"] == 2)

            expectOK(try await h.call("decr", ["name": "sleeper"]))
            try await h.waitPids("sleeper", count: 1)
            // Clamped at zero.
            let zero = try await h.call("decr", ["name": "sleeper", "nb": 5, "waiting": true])
            #expect(zero["numprocesses"] == 0)

            for command in ["incr", "decr"] {
                let single = try await h.call(command, ["name": "single"], id: "f2")
                expectOK(single, keys: ["numprocesses", "singleton"])
                #expect(single["numprocesses"] == 1)
                #expect(single["singleton"] == true)
            }
            // Works on a stopped watcher: the count changes, nothing is spawned.
            expectOK(try await h.call("stop", ["name": "sleeper", "waiting": true]), keys: ["info"])
            let stopped = try await h.call("incr", ["name": "sleeper", "nb": 2, "waiting": true])
            #expect(stopped["numprocesses"] == 2)
            #expect(try await h.childPids("sleeper") == [])
            #expect(try await h.status("sleeper") == "stopped")
            expectError(try await h.call("incr", ["name": "ghost"]), errno: 3, reason: "program ghost not found")
            expectError(try await h.call("incr", [:]), errno: 3, reason: "message invalid 'name' is missing")
        }
    }

    // MARK: get / options

    @Test func getAndOptions() async throws {
        try await withDaemon("""
            [watcher:sleeper]
            cmd = sleep 1000
            numprocesses = 2
            graceful_timeout = 2

            [env:sleeper]
            FOO = bar
            """) { h in
            let reply = try await h.call("get", [
                "name": "sleeper",
                "keys": ["cmd", "numprocesses", "env", "stop_signal", "graceful_timeout", "stdout_stream_conf"],
            ], id: "a6")
            expectOK(reply, keys: ["options"])
            let options = reply["options"]
            #expect(options?.keys == ["cmd", "numprocesses", "env", "stop_signal", "graceful_timeout",
                                      "stdout_stream_conf"])
            #expect(options?["cmd"] == "sleep 1000")
            #expect(options?["numprocesses"] == 2)
            #expect(options?["env"]?["FOO"] == "bar")
            #expect(options?["stop_signal"] == 15)
            #expect(options?["graceful_timeout"] == .double(2.0))
            #expect(options?["stdout_stream_conf"] == [:])

            expectError(try await h.call("get", ["name": "sleeper", "keys": ["x"]]), errno: 3,
                        reason: "'x' option not found")
            expectError(try await h.call("get", ["name": "sleeper"], id: "a4"), errno: 3,
                        reason: "message invalid 'keys' is missing")
            expectError(try await h.call("get", ["name": "ghost", "keys": ["cmd"]]), errno: 3,
                        reason: "program ghost not found")

            let all = try await h.call("options", ["name": "sleeper"])
            expectOK(all, keys: ["options"])
            let expected = [
                "args", "close_child_stderr", "close_child_stdin", "close_child_stdout", "cmd", "copy_env", "env",
                "executable", "gid", "graceful_timeout", "max_age", "max_age_variance", "max_retry", "numprocesses",
                "on_demand", "priority", "respawn", "send_hup", "shell", "shell_args", "singleton",
                "stderr_stream_conf", "stdout_stream_conf", "stop_children", "stop_signal", "uid", "use_sockets",
                "warmup_delay", "working_dir",
            ]
            #expect(all["options"]?.keys == expected)
            #expect(all["options"]?["graceful_timeout"] == .double(2.0))
            #expect(all["options"]?["max_age_variance"] == 30)
            #expect(all["options"]?["close_child_stdin"] == true)
            #expect(all["options"]?["working_dir"] == .string(h.dir))
            expectError(try await h.call("options", [:]), errno: 3, reason: "message invalid 'name' is missing")
        }
    }

    // MARK: set

    @Test func setNumprocessesAndEnv() async throws {
        try await withDaemon(sleeperINI) { h in
            let old = try await h.waitPids("sleeper", count: 2)
            var mark = h.mark
            let t1 = try await h.call("set", ["name": "sleeper", "options": ["numprocesses": 3], "waiting": true], id: "t1")
            expectOK(t1)
            try await h.waitPids("sleeper", count: 3)
            let firstTwo = try await h.waitEvents(since: mark, count: 2, "updated, spawn") { $0.watcher == "sleeper" }
            #expect(firstTwo.map(\.name) == ["updated", "spawn"])
            #expect(firstTwo.first?.keys == ["time"])

            mark = h.mark
            let env = try await h.call("set", ["name": "sleeper", "options": ["env": ["FOO": "bar", "N": "1"]],
                                               "waiting": true])
            expectOK(env)
            let now = try await h.waitPids("sleeper", count: 3)
            #expect(Set(now).isDisjoint(with: old), "processes restarted with the new env")
            for pid in now { #expect(Proc.environment(pid) == ["FOO": "bar", "N": "1"]) }
            let updated = h.events(since: mark).filter { $0.name == "updated" }
            #expect(updated.count == 1, "one updated event per key")
            try await h.waitEvent("watcher.sleeper.reload", since: mark)
            #expect(try await h.call("get", ["name": "sleeper", "keys": ["env"]])["options"]?["env"]
                    == ["FOO": "bar", "N": "1"])
        }
    }

    @Test func setRejectsBadValues() async throws {
        try await withDaemon(sleeperINI + "\n\n[watcher:single]\ncmd = sleep 998\nsingleton = true\n") { h in
            func set(_ options: JSON) async throws -> JSON {
                try await h.call("set", ["name": "sleeper", "options": options])
            }
            expectError(try await set(["numprocesses": "3"]), errno: 3, reason: "'numprocesses' isn't an integer")
            expectError(try await set(["bogus": 1]), errno: 3, reason: "unknown key 'bogus'")
            expectError(try await set("x"), errno: 3, reason: "'options' property should be an object")
            expectError(try await set(["graceful_timeout": "x"]), errno: 3, reason: "'graceful_timeout' isn't a number")
            expectError(try await set(["send_hup": "x"]), errno: 3, reason: "'send_hup' isn't a valid boolean")
            expectError(try await set(["stop_signal": "TERM"]), errno: 3, reason: "'stop_signal' isn't an integer")
            expectError(try await set(["env": "x"]), errno: 3, reason: "'env' isn't a valid object")
            expectError(try await set(["env": ["A": 1]]), errno: 3, reason: "'A' isn't a string")
            expectError(try await h.call("set", ["name": "sleeper"]), errno: 3, reason: "message invalid 'options' is missing")
            expectError(try await h.call("set", ["name": "ghost", "options": ["numprocesses": 1]]), errno: 3,
                        reason: "program ghost not found")
            let single = try await h.call("set", ["name": "single", "options": ["numprocesses": 2]])
            expectError(single, errno: 5, reasonContains: "Singleton watcher has a single process")
            // Nothing changed.
            #expect(try await h.call("get", ["name": "sleeper", "keys": ["numprocesses"]])["options"]?["numprocesses"] == 2)
        }
    }

    // MARK: signal

    static let treeScripts: [String: String] = [
        "tree.sh": """
            #!/bin/sh
            %DIR%/leaf.sh &
            trap 'echo parent >> %DIR%/sig.$$' USR1
            while :; do sleep 0.1; done
            """,
        "leaf.sh": """
            #!/bin/sh
            trap 'echo leaf >> %DIR%/sig.$$' USR1
            while :; do sleep 0.1; done
            """,
    ]

    static let treeINI = """
        [watcher:tree]
        cmd = %DIR%/tree.sh
        numprocesses = 2
        stop_children = true
        graceful_timeout = 2
        """

    /// Waits until each tree process has its leaf child; returns (parents, leaf of each parent).
    func treePids(_ h: DaemonHarness) async throws -> ([Int32], [Int32: Int32]) {
        let parents = try await h.waitPids("tree", count: 2)
        var leaves: [Int32: Int32] = [:]
        try await h.waitUntil("leaf children") {
            let reply = try await h.call("stats", ["name": "tree"])
            leaves = [:]
            for parent in parents {
                for child in reply["info"]?[String(parent)]?["children"]?.arrayValue ?? [] {
                    guard let pid = child["pid"]?.intValue.map({ Int32($0) }) else { continue }
                    h.track(pid)
                    if Proc.cmdline(pid)?.contains(where: { $0.hasSuffix("leaf.sh") }) == true { leaves[parent] = pid }
                }
            }
            return leaves.count == 2
        }
        return (parents, leaves)
    }

    @Test func signalPidChildrenRecursive() async throws {
        try await withDaemon(Self.treeINI, files: Self.treeScripts) { h in
            let (parents, leaves) = try await treePids(h)
            let p1 = parents[0], p2 = parents[1]
            let mark = h.mark

            let one = try await h.call("signal", ["name": "tree", "signum": "USR1", "pid": .int(Int64(p1))])
            expectOK(one)
            try await h.waitFile("\(h.dir)/sig.\(p1)") { $0 == "parent\n" }

            let children = try await h.call("signal", ["name": "tree", "signum": "SIGUSR1", "pid": .int(Int64(p2)),
                                                       "children": true])
            expectOK(children)
            try await h.waitFile("\(h.dir)/sig.\(leaves[p2]!)") { $0 == "leaf\n" }

            let all = try await h.call("signal", ["name": "tree", "signum": 10, "recursive": true])
            expectOK(all)
            try await h.waitFile("\(h.dir)/sig.\(p2)") { $0 == "parent\n" }
            try await h.waitFile("\(h.dir)/sig.\(leaves[p1]!)") { $0 == "leaf\n" }
            try await h.waitFile("\(h.dir)/sig.\(p1)") { $0 == "parent\nparent\n" }
            try await h.waitFile("\(h.dir)/sig.\(leaves[p2]!)") { $0 == "leaf\nleaf\n" }

            // An unmanaged pid is silently ignored (one that cannot exist: above pid_max).
            expectOK(try await h.call("signal", ["name": "tree", "signum": "USR1", "pid": 99_999_999], id: "k5"))
            expectError(try await h.call("signal", ["name": "tree"], id: "k4"), errno: 3,
                        reason: "message invalid 'signum' is missing")
            let childpid = try await h.call("signal", ["name": "tree", "signum": "USR1",
                                                       "childpid": .int(Int64(leaves[p1]!))], id: "k7")
            expectError(childpid, errno: 5, reasonContains: "cannot specify childpid without pid")
            // `signal` publishes no kill event, and nobody died.
            #expect(!h.events(since: mark).contains { $0.name == "kill" || $0.name == "reap" })
            #expect(try await h.childPids("tree") == parents)
        }
    }

    /// Circus converts the name with `getattr(signal, ...)`: an unknown name raises, which
    /// the controller answers with errno 5.
    /// Circus answers errno 5 with a Python AttributeError here; we answer the errno 3
    /// `signal invalid` it meant to (README, compatibility notes).
    @Test func signalWithAnUnknownNameIsSignalInvalid() async throws {
        try await withDaemon(sleeperINI) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            expectError(try await h.call("signal", ["name": "sleeper", "signum": "SIGHUP2"]), errno: 3,
                        reasonContains: "signal invalid")
            #expect(try await h.childPids("sleeper") == pids)
        }
    }

    // MARK: kill

    @Test func killPidThenRespawn() async throws {
        try await withDaemon(sleeperINI) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            var mark = h.mark
            let k1 = try await h.call("kill", ["name": "sleeper", "pid": .int(Int64(pids[0])), "signum": "SIGINT",
                                               "waiting": true], id: "k1")
            expectOK(k1)
            let kill = try await h.waitEvent("watcher.sleeper.kill", pid: pids[0], since: mark)
            #expect(kill.keys == ["process_pid", "time"])
            let reap = try await h.waitEvent("watcher.sleeper.reap", pid: pids[0], since: mark)
            #expect(reap.payload["exit_code"] == -2)
            let spawn = try await h.waitEvent(since: mark, "respawn") { $0.name == "spawn" }
            let names = h.events(since: mark).map(\.name)
            #expect(names.firstIndex(of: "kill")! < names.firstIndex(of: "reap")!)
            #expect(names.firstIndex(of: "reap")! < names.firstIndex(of: "spawn")!)
            let now = try await h.waitPids("sleeper", count: 2)
            #expect(now.contains(pids[1]) && now.contains(spawn.pid!))

            // Without pid: every process, with the watcher's stop signal (TERM → -15).
            mark = h.mark
            expectOK(try await h.call("kill", ["name": "sleeper", "waiting": true]))
            let reaps = try await h.waitEvents(since: mark, count: 2, "reaps") { $0.name == "reap" }
            #expect(reaps.allSatisfy { $0.payload["exit_code"] == -15 })
            try await h.waitEvents(since: mark, count: 2, "respawns") { $0.name == "spawn" }
            #expect(try await h.status("sleeper") == "active")
            expectError(try await h.call("kill", ["name": "ghost"]), errno: 3, reason: "program ghost not found")
        }
    }

    // MARK: stats / dstats / listsockets / globaloptions / listen / ipython

    static let infoKeys = ["mem_info1", "mem_info2", "cpu", "mem", "ctime", "pid", "username", "nice",
                           "create_time", "age", "cmdline", "children", "started", "wid"]

    @Test func statsAndDstatsShapes() async throws {
        try await withDaemon(sleeperINI) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            let all = try await h.call("stats", id: "x4")
            expectOK(all, keys: ["infos"])
            #expect(all["infos"]?.keys == ["sleeper"])
            #expect(Set(all["infos"]?["sleeper"]?.keys ?? []) == Set(pids.map(String.init)))

            let byName = try await h.call("stats", ["name": "sleeper"])
            expectOK(byName, keys: ["name", "info"])
            #expect(byName["name"] == "sleeper")
            let info = byName["info"]?[String(pids[0])]
            #expect(info?.keys == Self.infoKeys)
            #expect(info?["pid"] == .int(Int64(pids[0])))
            #expect(info?["cmdline"] == "sleep")
            #expect(info?["username"] == .string(NSUserName()))
            #expect(info?["children"] == [])
            #expect(info?["wid"] == 1)
            #expect(info?["mem_info1"]?.stringValue != nil)
            #expect(info?["cpu"]?.doubleValue != nil)
            #expect(info?["age"]?.doubleValue != nil)

            let one = try await h.call("stats", ["name": "sleeper", "process": .int(Int64(pids[1])), "extended": true])
            expectOK(one, keys: ["process", "info"])
            #expect(one["process"] == .int(Int64(pids[1])))
            #expect(one["info"]?["pid"] == .int(Int64(pids[1])))
            #expect(one["info"]?["wid"] == 2)
            expectError(try await h.call("stats", ["name": "sleeper", "process": 99_999_999]), errno: 3,
                        reason: "process 99999999 not found in 'sleeper'")
            expectError(try await h.call("stats", ["name": "ghost"]), errno: 3, reason: "program ghost not found")

            let d = try await h.call("dstats", id: "x5")
            expectOK(d, keys: ["info"])
            #expect(d["info"]?.keys == Array(Self.infoKeys.prefix(12)))
            #expect(d["info"]?["pid"] == .int(Int64(h.pid)))
            #expect(d["info"]?["children"] == [])
        }
    }

    @Test func listsocketsGlobaloptionsListenIpython() async throws {
        try await withDaemon(sleeperINI) { h in
            let sockets = try await h.call("listsockets", id: "x6")
            expectOK(sockets, keys: ["sockets"])
            #expect(sockets["sockets"] == [])

            let global = try await h.call("globaloptions")
            expectOK(global, keys: ["options"])
            #expect(global["options"]?.keys == ["endpoint", "stats_endpoint", "pubsub_endpoint", "check_delay",
                                                "multicast_endpoint"])
            #expect(global["options"]?["endpoint"] == .string(h.controlEndpoint))
            #expect(global["options"]?["pubsub_endpoint"] == .string(h.pubsubEndpoint))
            #expect(global["options"]?["check_delay"] == .double(5.0))
            #expect(global["options"]?["multicast_endpoint"] == "udp://237.219.251.97:12027")
            let one = try await h.call("globaloptions", ["option": "check_delay"], id: "x7")
            expectOK(one, keys: ["options"])
            #expect(one["options"] == ["check_delay": 5.0])
            expectError(try await h.call("globaloptions", ["option": "umask"]), errno: 3,
                        reason: "'umask' not an existing option")

            expectError(try await h.call("listen", id: "x10"), errno: 3, reason: "invalid message. use a pub/sub socket")

            let ipython = try await h.call("ipython", id: "i1")
            expectOK(ipython, keys: ["shell", "msg"])
            #expect(ipython["shell"] == false)
            #expect(ipython["msg"]?.stringValue?.isEmpty == false)
        }
    }
}
