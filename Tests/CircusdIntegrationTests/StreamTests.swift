// Output streams end to end: real children writing through circusd into files and
// circusd's stdout, in Circus's formats, with rotation, logrotate-style renames,
// failures, `--daemon`, and `tail`.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Tests/CircusdIntegrationTests/Fixtures/streamwriter.c, compiled into a temporary directory.
struct StreamWriterFixture {
    let dir: String
    var path: String { dir + "/streamwriter" }

    static func build() throws -> StreamWriterFixture {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let fixture = StreamWriterFixture(dir: try DaemonHarness.makeTempDir())
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-O2", "-o", fixture.path, root + "/Tests/CircusdIntegrationTests/Fixtures/streamwriter.c"]
        try cc.run()
        cc.waitUntilExit()
        guard cc.terminationStatus == 0 else {
            fixture.remove()
            throw HarnessError("cc could not build the stream writer fixture (status \(cc.terminationStatus))")
        }
        return fixture
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    /// Runs the checker on `file`; returns its one-line verdict.
    func verify(_ file: String, writers: Int, bytes: Int) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["verify", file, String(writers), String(bytes)]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The current local year, as `%Y` writes it.
func currentYear() -> String {
    var t = time(nil)
    var parts = tm()
    localtime_r(&t, &parts)
    return String(Int(parts.tm_year) + 1900)
}

extension DaemonHarness {
    /// Starts `watcher` (configured with `autostart = false`, so that its spawn is seen
    /// on the pub/sub socket) and returns the pid of its first process.
    func startedPid(_ watcher: String) async throws -> Int32 {
        let mark = self.mark
        expectOK(try await call("start", ["name": .string(watcher), "waiting": true]), keys: ["info"])
        return try #require(try await waitEvent("watcher.\(watcher).spawn", since: mark).pid)
    }
}

@Suite("Output streams") struct StreamTests {

    @Test func fileStreamKeepsBytesAndTheLastPartialLine() async throws {
        try await withDaemon("""
            [watcher:w]
            cmd = sh -c 'printf "line1\\nline2\\n"; printf "err\\n" >&2; printf partial'
            respawn = false
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/out.log
            stderr_stream.class = circus.stream.FileStream
            stderr_stream.filename = %DIR%/err.log
            """) { h in
            try await h.waitFile("\(h.dir)/out.log") { $0 == "line1\nline2\npartial" }
            try await h.waitFile("\(h.dir)/err.log") { $0 == "err\n" }
        }
    }

    @Test func timeFormatPrefixesEveryLineAsCircusDoes() async throws {
        try await withDaemon("""
            [watcher:w]
            autostart = false
            cmd = sh -c 'printf "line1\\nline2\\n\\n"; until [ $(wc -l < %DIR%/out.log) -ge 2 ]; do sleep 0.01; done; \
                printf partial'
            respawn = false
            stdout_stream.filename = %DIR%/out.log
            stdout_stream.time_format = %Y
            """) { h in
            let pid = try await h.startedPid("w")
            let p = "\(currentYear()) [\(pid)] | "
            // "line1\nline2\n\n" is one write, read as one chunk (the child waits for it to be
            // in the file before it writes again): its trailing newlines are stripped and one
            // is added; the partial line gets its newline.
            try await h.waitFile("\(h.dir)/out.log") { $0 == "\(p)line1\n\(p)line2\n\(p)partial\n" }
        }
    }

    @Test func stdoutAndFancyStdoutStreamsWriteToCircusdStdout() async throws {
        try await withDaemon("""
            [watcher:plain]
            cmd = sh -c 'printf "plain\\n"'
            respawn = false
            stdout_stream.class = StdoutStream

            [watcher:fancy]
            cmd = sh -c 'printf "x\\n\\ny"'
            respawn = false
            autostart = false
            stdout_stream.class = circus.stream.FancyStdoutStream
            stdout_stream.color = green
            stdout_stream.time_format = %Y
            """) { h in
            try await h.waitFile(h.stdoutPath) { $0 == "plain\n" }
            let pid = try await h.startedPid("fancy")
            let line = { (text: String) in "\u{1B}[0;32;40m\(currentYear()) [\(pid)] | \(text)\u{1B}[0m\n" }
            // Empty lines are skipped; each line is coloured and reset.
            try await h.waitFile(h.stdoutPath) { $0 == "plain\n" + line("x") + line("y") }
        }
    }

    @Test func sizeRotationFollowsCircusRule() async throws {
        // Each 30-byte line is written once the previous one is in the file, so each is
        // one chunk: rotation happens before a chunk that would make the file reach 100.
        try await withDaemon("""
            [watcher:w]
            cmd = sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do printf "L%02d-%025d\\n" $i 0; \
                until grep -qs "^L$(printf %02d $i)-" %DIR%/out.log; do sleep 0.01; done; done'
            respawn = false
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/out.log
            stdout_stream.max_bytes = 100
            stdout_stream.backup_count = 2
            """) { h in
            func lines(_ numbers: ClosedRange<Int>) -> String {
                numbers.map { String(format: "L%02d-%025d\n", $0, 0) }.joined()
            }
            try await h.waitFile("\(h.dir)/out.log") { $0 == lines(10...10) }
            try await h.waitStatus("w", "stopped")
            #expect(readFile("\(h.dir)/out.log.1") == lines(7...9))
            #expect(readFile("\(h.dir)/out.log.2") == lines(4...6))
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/out.log.3"))
        }
    }

    @Test func timedRotationNamesFilesByTheEndedPeriodAndPrunes() async throws {
        // Each line goes out in a later second than the one before, once the one before is
        // in out.log: so each write after the first rolls the file over.
        try await withDaemon("""
            [watcher:w]
            cmd = sh -c 'for i in 1 2 3 4; do s=$(date +%s); until [ $(date +%s) != $s ]; do sleep 0.02; done; \
                echo "L$i"; until grep -qs "^L$i$" %DIR%/out.log; do sleep 0.01; done; done'
            respawn = false
            stdout_stream.class = TimedRotatingFileStream
            stdout_stream.filename = %DIR%/out.log
            stdout_stream.rotate_when = S
            stdout_stream.backup_count = 2
            """) { h in
            try await h.waitFile("\(h.dir)/out.log", timeout: 15) { $0 == "L4\n" }
            try await h.waitStatus("w", "stopped")
            let rotated = try FileManager.default.contentsOfDirectory(atPath: h.dir)
                .filter { $0.hasPrefix("out.log.") }.sorted()
            #expect(rotated.count == 2, "\(rotated)")
            for name in rotated {
                let suffix = name.dropFirst("out.log.".count)
                #expect(suffix.count == 14 && suffix.allSatisfy(\.isNumber), "\(name)")
            }
            #expect(rotated.map { readFile("\(h.dir)/\($0)") } == ["L2\n", "L3\n"])
        }
    }

    @Test func watchedFileStreamReopensAfterARename() async throws {
        try await withDaemon("""
            [watcher:w]
            autostart = false
            cmd = sh -c 'echo before; until [ -e %DIR%/out.log.old ]; do sleep 0.01; done; echo after; exec sleep 100'
            stdout_stream.class = WatchedFileStream
            stdout_stream.filename = %DIR%/out.log
            stdout_stream.time_format = %Y
            """) { h in
            let pid = try await h.startedPid("w")
            let p = "\(currentYear()) [\(pid)] | "
            try await h.waitFile("\(h.dir)/out.log") { $0 == "\(p)before\n" }
            #expect(rename("\(h.dir)/out.log", "\(h.dir)/out.log.old") == 0)
            try await h.waitFile("\(h.dir)/out.log") { $0 == "\(p)after\n" }
            #expect(readFile("\(h.dir)/out.log.old") == "\(p)before\n")
        }
    }

    @Test func reloadconfigGivesTheWatcherItsNewStream() async throws {
        let ini = { (file: String) in """
            [watcher:w]
            cmd = sh -c 'echo "run $$"; exec sleep 100'
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/\(file)
            """ }
        try await withDaemon(ini("a.log")) { h in
            let first = try await h.waitPids("w", count: 1)[0]
            try await h.waitFile("\(h.dir)/a.log") { $0 == "run \(first)\n" }
            try h.rewriteConfig(ini("b.log"))
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            let second = try await h.waitPids("w", count: 1) { $0 != [first] }[0]
            try await h.waitFile("\(h.dir)/b.log") { $0 == "run \(second)\n" }
            #expect(readFile("\(h.dir)/a.log") == "run \(first)\n")
        }
    }

    /// `slow` writes 1 MB into a FIFO that nobody reads (create it before starting `slow`):
    /// its writer thread blocks in write(2) once the FIFO is full, like a writer on a hung disk.
    static let stuckINI = """
        [watcher:slow]
        autostart = false
        cmd = sh -c 'head -c 1000000 /dev/zero | tr "\\0" x; exec sleep 100'
        stdout_stream.class = FileStream
        stdout_stream.filename = %DIR%/fifo
        """

    /// Waits until `tr`, the child of `pid` whose stdout is the stream's pipe, sleeps in a
    /// write to it: the pipe is full, so the stream's writer no longer drains it. (`head`
    /// blocking on its pipe to `tr` says nothing of the stream: a `tr` slowed down by a
    /// busy machine is enough.)
    func waitBlockedOnPipe(_ h: DaemonHarness, childOf pid: Int32) async throws {
        try await h.waitUntil("tr, a child of \(pid), blocked on its full stdout pipe") {
            let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
            return children.split(separator: " ").contains { child in
                readFile("/proc/\(child)/comm") == "tr\n" && readFile("/proc/\(child)/wchan").contains("pipe_write")
            }
        }
    }

    @Test func aStreamStuckOnItsFileHoldsUpNothingElse() async throws {
        try await withDaemon(Self.stuckINI + """

            [watcher:fast]
            autostart = false
            cmd = sh -c 'echo fast; exec sleep 100'
            stdout_stream.filename = %DIR%/fast.log

            [watcher:other]
            cmd = sleep 100
            """) { h in
            #expect(mkfifo("\(h.dir)/fifo", 0o600) == 0)
            let slow = try await h.startedPid("slow")
            // The program is stuck writing its pipe: nothing drains it any more.
            try await waitBlockedOnPipe(h, childOf: slow)
            // Commands, another watcher's stream and a respawn go on.
            let fast = try await h.startedPid("fast")
            try await h.waitFile("\(h.dir)/fast.log") { $0 == "fast\n" }
            let other = try await h.waitPids("other", count: 1)[0]
            let mark = h.mark
            expectOK(try await h.call("signal", ["name": "other", "signum": 9]))
            try await h.waitEvent(since: mark, "respawn of other") { $0.topic == "watcher.other.spawn" && $0.pid != other }
            #expect(try await h.childPids("fast") == [fast])
            // Let the FIFO drain, so that circusd can take the rest at its exit.
            let read = try await onThread { () -> Int in
                guard let handle = FileHandle(forReadingAtPath: h.dir + "/fifo") else { return -1 }
                var total = 0
                // read(upToCount:) waits for the whole count: ask for no more than is left.
                while total < 1_000_000, let data = try handle.read(upToCount: min(65536, 1_000_000 - total)),
                      !data.isEmpty { total += data.count }
                try handle.close()
                return total
            }
            #expect(read == 1_000_000)
        }
    }

    @Test func exitWaitsForAStuckStreamOnlyFiveSeconds() async throws {
        try await withDaemon(Self.stuckINI) { h in
            #expect(mkfifo("\(h.dir)/fifo", 0o600) == 0)
            let slow = try await h.startedPid("slow")
            try await waitBlockedOnPipe(h, childOf: slow)
            expectOK(try await h.call("quit", ["waiting": true]))
            #expect(await h.waitExit(timeout: 20), "circusd waited for a stream that cannot be written")
            #expect(h.log.contains("the output of slow was still being written after 5 s (its file does not take writes)"))
        }
    }

    @Test func twoHundredMegabytesFromEightWritersArriveByteExact() async throws {
        let fixture = try StreamWriterFixture.build()
        defer { fixture.remove() }
        let bytes = 25 * 1024 * 1000  // 25.6 MB each, 100-byte lines: 204.8 MB in all
        try await withDaemon("""
            [watcher:writers]
            cmd = \(fixture.path) write $(circus.wid) \(bytes)
            numprocesses = 8
            respawn = false
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/out.log
            """) { h in
            // Every byte in the file (it cannot hold more), then every line checked.
            let path = "\(h.dir)/out.log"
            try await h.waitUntil("all bytes in the file", timeout: 120) {
                ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) >= 8 * bytes
            }
            #expect(try fixture.verify(path, writers: 8, bytes: bytes) == "ok \(8 * bytes / 100) \(8 * bytes)")
        }
    }

    @Test func daemonModeKeepsFileStreamOutput() async throws {
        try await withDaemon("""
            [watcher:w]
            cmd = sh -c 'echo from-the-daemon; exec sleep 100'
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/out.log
            """, arguments: ["--daemon", "--pidfile", "%DIR%/d.pid"], waitReady: false) { h in
            #expect(await h.waitExit(timeout: 10))
            let text = try await h.waitFile("\(h.dir)/d.pid") { $0.hasSuffix("\n") }
            let detached = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            h.detachedPid.withLock { $0 = detached }
            try await h.waitFile("\(h.dir)/out.log") { $0 == "from-the-daemon\n" }
            expectOK(try await h.call("quit", ["waiting": true]))
            try await h.waitUntil("detached daemon gone", timeout: 10) { !Proc.isAlive(detached) }
        }
    }

    /// The log lines containing `text` written so far: stopping the watcher `other` logs a
    /// line after everything logged before the request, so once that line is in the file,
    /// so is every earlier one.
    func logLinesSoFar(_ h: DaemonHarness, containing text: String) async throws -> [String] {
        expectOK(try await h.call("stop", ["name": "other", "waiting": true]), keys: ["info"])
        try await h.waitUntil("other stopped in the log") { h.log.contains("other stopped") }
        return h.log.components(separatedBy: "\n").filter { $0.contains(text) }
    }

    @Test func anUnwritableStreamIsReportedOnceAndTheChildRuns() async throws {
        // The directory does not exist yet: the file cannot be opened. The child writes a
        // line every 10 ms all along.
        try await withDaemon("""
            [watcher:w]
            autostart = false
            cmd = sh -c 'i=0; while true; do i=$((i+1)); echo "n$i"; sleep 0.01; done'
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/later/out.log

            [watcher:other]
            cmd = sleep 100
            """) { h in
            let pid = try await h.startedPid("w")
            try await h.waitUntil("the failure in the log") { h.log.contains("%DIR%/later/out.log".replacingOccurrences(of: "%DIR%", with: h.dir)) }
            // A hundred lines later (tail sees what the stream captured, written or not)...
            try await h.waitUntil("100 lines captured") {
                let reply = try await h.call("tail", ["name": "w", "lines": 1])
                guard let last = reply["stdout"]?.arrayValue?.first?.stringValue, let n = Int(last.dropFirst()) else { return false }
                return n > 100
            }
            // ...the failure was logged once.
            let failures = try await logLinesSoFar(h, containing: "w stdout stream: cannot open")
            #expect(failures.count == 1, "\(h.log)")
            #expect(try await h.childPids("w") == [pid])
            // Once the directory exists the stream writes again, and says how much was lost.
            try FileManager.default.createDirectory(atPath: "\(h.dir)/later", withIntermediateDirectories: false)
            try await h.waitFile("\(h.dir)/later/out.log") { $0.hasSuffix("\n") && $0.hasPrefix("n") }
            try await h.waitUntil("the recovery in the log") { h.log.contains("w stdout stream writes again") }
            #expect(try await h.childPids("w") == [pid])
        }
    }

    @Test func aFullDiskIsReportedOnce() async throws {
        try await withDaemon("""
            [watcher:w]
            autostart = false
            cmd = sh -c 'i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo "n$i"; sleep 0.005; done; exec sleep 100'
            stdout_stream.class = FileStream
            stdout_stream.filename = /dev/full

            [watcher:other]
            cmd = sleep 100
            """) { h in
            let pid = try await h.startedPid("w")
            try await h.waitUntil("all 200 lines captured") {
                try await h.call("tail", ["name": "w", "lines": 1])["stdout"] == ["n200"]
            }
            let failures = try await logLinesSoFar(h, containing: "w stdout stream: cannot write to /dev/full")
            #expect(failures.count == 1, "\(h.log)")
            #expect(failures.first?.contains("No space left on device") == true)
            #expect(try await h.childPids("w") == [pid])
        }
    }

    @Test func tailReturnsTheLastLinesAndFollowPublishesNewOnes() async throws {
        try await withDaemon("""
            [watcher:w]
            autostart = false
            cmd = sh -c 'printf "a\\nb\\nc\\n"; printf "e1\\n" >&2; until [ -e %DIR%/go ]; do sleep 0.01; done; printf "d\\ne"; \
                until [ -e %DIR%/go2 ]; do sleep 0.01; done; printf "f\\n"; exec sleep 100'
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/out.log
            stderr_stream.class = StdoutStream

            [watcher:quiet]
            cmd = sleep 100

            [watcher:later]
            autostart = false
            cmd = sh -c 'echo first; exec sleep 100'
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/later.log
            """) { h in
            // A follow can begin before the watcher ever ran.
            let before = try await h.call("tail", ["name": "later", "follow": true])
            expectOK(before, keys: ["stdout", "follow"])
            #expect(before["stdout"] == [])
            let laterMark = h.mark
            let later = try await h.startedPid("later")
            let firstLine = try await h.waitEvent("tail.later", since: laterMark)
            #expect(firstLine.payload["lines"] == ["first"] && firstLine.payload["pid"] == .int(Int64(later)))

            let pid = try await h.startedPid("w")
            try await h.waitFile("\(h.dir)/out.log") { $0 == "a\nb\nc\n" }
            try await h.waitFile(h.stdoutPath) { $0 == "e1\n" }
            let reply = try await h.call("tail", ["name": "w", "lines": 2])
            expectOK(reply, keys: ["stdout", "stderr"])
            #expect(reply["stdout"] == ["b", "c"])
            #expect(reply["stderr"] == ["e1"])
            expectOK(try await h.call("tail", ["name": "w", "lines": 0]), keys: ["stdout", "stderr"])

            let mark = h.mark
            let following = try await h.call("tail", ["name": "w", "lines": 1, "follow": true])
            expectOK(following, keys: ["stdout", "stderr", "follow"])
            #expect(following["follow"] == .double(30))
            #expect(following["stdout"] == ["c"])
            _ = FileManager.default.createFile(atPath: "\(h.dir)/go", contents: nil)
            let first = try await h.waitEvent("tail.w", since: mark)
            #expect(first.payload["stream"] == "stdout")
            #expect(first.payload["pid"] == .int(Int64(pid)))
            // A line is published once it is complete: "e" waits for its newline.
            #expect(first.payload["lines"] == ["d"])
            _ = FileManager.default.createFile(atPath: "\(h.dir)/go2", contents: nil)
            let events = try await h.waitEvents(since: mark, count: 2, "tail.w") { $0.topic == "tail.w" }
            #expect(events[1].payload["lines"] == ["ef"])
            try await h.waitFile("\(h.dir)/out.log") { $0 == "a\nb\nc\nd\nef\n" }

            expectOK(try await h.call("tail", ["name": "w", "follow": false]), keys: ["stdout", "stderr", "follow"])
            expectError(try await h.call("tail", ["name": "quiet"]), errno: 3,
                        reason: "watcher 'quiet' has no output stream: its output is not captured")
            expectError(try await h.call("tail", ["name": "nope"]), errno: 3, reason: "program nope not found")
            expectError(try await h.call("tail", ["name": "w", "lines": -1]), errno: 3,
                        reason: "'lines' must be a non-negative integer")
            expectError(try await h.call("tail", [:]), errno: 3, reason: "message invalid 'name' is missing")
        }
    }

    static let badStreams: [BadConfig] = [
        BadConfig(name: "unknown stream class", ini: markerINI + "\nstdout_stream.class = Nope\n",
                  line: "stdout_stream.class = Nope", option: "stdout_stream.class"),
        BadConfig(name: "Python stream class", ini: markerINI + "\nstderr_stream.class = myapp.MyStream\n",
                  line: "stderr_stream.class = myapp.MyStream", option: "stderr_stream.class"),
        BadConfig(name: "option the class does not take",
                  ini: markerINI + "\nstdout_stream.class = FileStream\nstdout_stream.rotate_when = H\n",
                  line: "stdout_stream.rotate_when = H", option: "stdout_stream.rotate_when"),
        BadConfig(name: "lower-case rotate_when",
                  ini: markerINI + "\nstdout_stream.class = TimedRotatingFileStream\nstdout_stream.rotate_when = midnight\n",
                  line: "stdout_stream.rotate_when = midnight", option: "stdout_stream.rotate_when"),
    ]

    @Test(arguments: badStreams)
    func streamConfigErrorsStopCircusdBeforeAnythingRuns(_ bad: BadConfig) async throws {
        try await withDaemon(bad.ini, waitReady: false) { h in
            #expect(await h.waitExit(timeout: 10), "circusd kept running with a bad config")
            #expect(h.process.terminationStatus == 1)
            let lines = readFile(h.configPath).components(separatedBy: "\n")
            let number = (lines.firstIndex(of: bad.line) ?? -1) + 1
            #expect(h.log.contains("circus.ini:\(number): [watcher:marker] \(bad.option): "), "stderr: \(h.log)")
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/spawned"), "a process was spawned")
        }
    }
}
