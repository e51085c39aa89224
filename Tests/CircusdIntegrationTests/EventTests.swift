// The pub/sub feed: topics, payload keys and their order, and the sequences Circus publishes.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Events") struct EventTests {
    @Test func topicsAndPayloadsOfAWatcherWithASpaceInItsName() async throws {
        try await withDaemon("""
            [watcher:Web App]
            cmd = sleep 999
            numprocesses = 2
            """) { h in
            let old = try await h.waitPids("Web App", count: 2)
            var mark = h.mark
            expectOK(try await h.call("stop", ["name": "Web App", "waiting": true]), keys: ["info"])
            let stop = try await h.waitEvents(since: mark, count: 5, "stop sequence") { $0.topic.hasPrefix("watcher.") }
            #expect(stop.map(\.topic) == [
                "watcher.web_app.kill", "watcher.web_app.kill", "watcher.web_app.reap", "watcher.web_app.reap",
                "watcher.web_app.stop",
            ])
            for event in stop {
                switch event.name {
                case "kill":
                    #expect(event.keys == ["process_pid", "time"])
                    #expect(String(decoding: event.raw, as: UTF8.self).hasPrefix("{\"process_pid\": "), "\(event)")
                case "reap":
                    #expect(event.keys == ["process_pid", "time", "exit_code"])
                    #expect(event.payload["exit_code"] == -15)
                default:
                    #expect(event.keys == ["time"])
                    #expect(event.payload["time"]?.doubleValue != nil)
                }
            }
            #expect(Set(stop.prefix(2).compactMap(\.pid)) == Set(old))
            #expect(Set(stop.dropFirst(2).prefix(2).compactMap(\.pid)) == Set(old))

            mark = h.mark
            let before = Date().timeIntervalSince1970
            expectOK(try await h.call("start", ["name": "web app", "waiting": true]), keys: ["info"])
            let start = try await h.waitEvents(since: mark, count: 3, "start sequence") { $0.topic.hasPrefix("watcher.") }
            #expect(start.map(\.topic) == ["watcher.web_app.spawn", "watcher.web_app.spawn", "watcher.web_app.start"])
            for spawn in start.prefix(2) {
                #expect(spawn.keys == ["process_pid", "time"])
                let time = spawn.payload["time"]?.doubleValue ?? 0
                #expect(abs(time - before) < 5, "spawn time is a Unix epoch float: \(time)")
            }
            #expect(start.last?.keys == ["time"])
        }
    }

    @Test func crashIsReapedWithNegativeSignalThenRespawned() async throws {
        try await withDaemon("""
            [watcher:crashy]
            cmd = sleep 997
            """) { h in
            let pids = try await h.waitPids("crashy", count: 1)
            let mark = h.mark
            kill(pids[0], SIGKILL)
            let events = try await h.waitEvents(since: mark, count: 2, "reap, spawn") { $0.watcher == "crashy" }
            #expect(events.map(\.name) == ["reap", "spawn"])
            #expect(events[0].pid == pids[0])
            #expect(events[0].payload["exit_code"] == -9)
            #expect(events[0].keys == ["process_pid", "time", "exit_code"])
            #expect(events[1].pid != pids[0])
        }
    }

    @Test func exitCodeOfANormalExit() async throws {
        try await withDaemon("""
            [watcher:three]
            cmd = sh -c 'read x; exit 3'
            close_child_stdin = false
            # The crash loop goes on until the SUB socket, connected after the start, sees a reap.
            flapping.active = false
            """) { h in
            // stdin is circusd's (/dev/null here), so `read` fails at once and the shell exits 3.
            let reap = try await h.waitEvent(timeout: 5, "reap with exit_code 3") {
                $0.topic == "watcher.three.reap"
            }
            #expect(reap.payload["exit_code"] == 3)
            try await h.call("stop", ["name": "three", "waiting": true])
        }
    }
}
