// `set` and `add` with output streams, as Circus serves them: `stdout_stream.<key>` swaps
// the stream of a running watcher in place (its processes go on, what they write next goes
// to the new stream), a stream the processes have no pipe for restarts them, and `add`
// takes whole stream objects. Errors name the key and change nothing.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Streams changed by set and add") struct StreamSetTests {
    /// The numbers of the `line N` lines of `text`, in order.
    private func numbers(_ text: String) -> [Int] {
        text.split(separator: "\n").compactMap { $0.hasPrefix("line ") ? Int($0.dropFirst(5)) : nil }
    }

    @Test func setMovesARunningWatchersOutputToTheNewFileWithoutARestart() async throws {
        try await withDaemon("""
            [watcher:w]
            autostart = false
            cmd = sh -c 'i=0; while :; do i=$((i+1)); echo "line $i"; sleep 0.02; done'
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/old.log
            """) { h in
            let pid = try await h.startedPid("w")
            try await h.waitFile("\(h.dir)/old.log") { numbers($0).count >= 3 }
            let mark = h.mark
            expectOK(try await h.call("set", ["name": "w", "waiting": true,
                                              "options": ["stdout_stream.filename": .string("\(h.dir)/new.log")]]))
            _ = try await h.waitEvent("watcher.w.updated", since: mark)
            try await h.waitFile("\(h.dir)/new.log") { numbers($0).count >= 3 }
            // The same process, never restarted.
            #expect(try await h.call("list", ["name": "w"])["pids"] == [.int(Int64(pid))])
            // Every line is in one file or the other, in order: nothing lost at the swap.
            let old = numbers(readFile("\(h.dir)/old.log"))
            let new = numbers(readFile("\(h.dir)/new.log"))
            #expect(old == Array(1...old.count))
            #expect(new == Array((old.count + 1)...(old.count + new.count)))
            let options = try await h.call("options", ["name": "w"])["options"]
            #expect(options?["stdout_stream_conf"] == ["filename": .string("\(h.dir)/new.log")])
            // tail still has the lines written before the swap.
            let tail = try await h.call("tail", ["name": "w", "lines": 1000])
            #expect(numbers(tail["stdout"]?.arrayValue?.compactMap(\.stringValue).joined(separator: "\n") ?? "").first == 1)
        }
    }

    @Test func aStreamTheProcessesHaveNoPipeForRestartsThem() async throws {
        try await withDaemon("""
            [watcher:plain]
            autostart = false
            cmd = sh -c 'echo hello; exec sleep 100'
            """) { h in
            let pid = try await h.startedPid("plain")
            let mark = h.mark
            expectOK(try await h.call("set", ["name": "plain", "waiting": true,
                                              "options": ["stdout_stream.filename": .string("\(h.dir)/out.log")]]))
            let respawned = try #require(try await h.waitEvent("watcher.plain.spawn", since: mark).pid)
            #expect(respawned != pid)
            try await h.waitFile("\(h.dir)/out.log") { $0 == "hello\n" }
        }
    }

    @Test func aBadStreamKeyIsRefusedByNameAndChangesNothing() async throws {
        try await withDaemon("""
            [watcher:w]
            cmd = sleep 100
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/out.log
            """) { h in
            expectError(try await h.call("set", ["name": "w", "options": ["stdout_stream.max_bytes": "lots"]]),
                        errno: 3, reason: "'stdout_stream.max_bytes': 'lots' is not an integer")
            expectError(try await h.call("set", ["name": "w", "options": ["stdout_stream.class": "NoSuchStream"]]),
                        errno: 3, reasonContains: "'stdout_stream.class': ")
            expectError(try await h.call("set", ["name": "w", "options": ["stderr_stream.time_format": "%Y"]]),
                        errno: 3, reasonContains: "'stderr_stream.time_format': stream configuration invalid")
            let options = try await h.call("options", ["name": "w"])["options"]
            #expect(options?["stdout_stream_conf"] == ["filename": .string("\(h.dir)/out.log")])
            #expect(options?["stderr_stream_conf"] == [:])
        }
    }

    @Test func addTakesAWholeStream() async throws {
        try await withDaemon("[watcher:idle]\ncmd = sleep 100\n") { h in
            let path = "\(h.dir)/added.log"
            expectOK(try await h.call("add", ["name": "a", "cmd": "sh -c 'echo added; exec sleep 100'", "start": true,
                                              "waiting": true,
                                              "options": ["stdout_stream": ["class": "FileStream", "filename": .string(path),
                                                                            "time_format": "%Y"]]]),
                     keys: ["started", "kept"])
            let pid = try #require(try await h.call("list", ["name": "a"])["pids"]?.arrayValue?.first?.intValue)
            try await h.waitFile(path) { $0 == "\(currentYear()) [\(pid)] | added\n" }
            let options = try await h.call("options", ["name": "a"])["options"]
            #expect(options?["stdout_stream_conf"] == ["filename": .string(path), "time_format": "%Y"])
            expectError(try await h.call("add", ["name": "b", "cmd": "true",
                                                 "options": ["stdout_stream": ["class": "FileStream", "max_bytes": -1]]]),
                        errno: 3, reason: "'stdout_stream.max_bytes': must not be negative (-1)")
            #expect(try await h.call("list")["watchers"] == ["a", "idle"])
        }
    }
}
