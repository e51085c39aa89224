// The loop never waits on slow work: a `stats` is sampled on a worker while commands,
// reaps and respawns go on; log lines are written by a writer thread and flushed at exit.
//
// The sampling is held, not timed: circusd started with CIRCUSD_TEST_STATS_GATE=<fifo>
// opens that FIFO and reads one byte before each sampling, so the test decides when the
// `stats` may finish and checks what happens in between.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Loop responsiveness") struct LoopResponsivenessTests {
    static let ini = """
        [watcher:sleepers]
        cmd = sleep 3600
        numprocesses = 2
        """

    /// Opens the write end of `fifo` once a reader holds it (the stats worker waiting at
    /// the gate); nil after 10 s without one.
    static func openWhenSamplingWaits(_ fifo: String) async throws -> Int32? {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if fd >= 0 { return fd }
            guard errno == ENXIO else { throw HarnessError("open \(fifo): errno \(errno)") }
            try await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    @Test func statusReapAndRespawnAreServedWhileAStatsIsBeingSampled() async throws {
        let h = try await DaemonHarness.launch(Self.ini, environment: ["CIRCUSD_TEST_STATS_GATE": "%DIR%/stats-gate"])
        do {
            let pids = try await h.waitPids("sleepers", count: 2)
            let gate = h.dir + "/stats-gate"
            guard mkfifo(gate, 0o600) == 0 else { throw HarnessError("mkfifo: errno \(errno)") }

            let answered = Locked(false)
            let stats = Task {
                defer { answered.withLock { $0 = true } }
                return try await h.call("stats", ["name": "sleepers"], timeout: .seconds(60))
            }
            // The worker is now inside the sampling job, blocked until we write a byte.
            let fd = try #require(try await Self.openWhenSamplingWaits(gate), "the stats worker never reached the gate")
            var closed = false
            defer { if !closed { close(fd) } }

            // A command is served meanwhile...
            let status = try await h.call("status", ["name": "sleepers"])
            #expect(status["status"] == "active")
            // ...and a killed process is reaped and replaced.
            let mark = h.mark
            let victim = pids[0]
            kill(victim, SIGKILL)
            try await h.waitEvent("watcher.sleepers.reap", pid: victim, since: mark)
            let spawn = try await h.waitEvent("watcher.sleepers.spawn", since: mark)
            let replacement = try #require(spawn.pid)
            #expect(try await h.childPids("sleepers").sorted() == [pids[1], replacement].sorted())
            // Everything above happened while the sampling was held: the reply cannot
            // have left yet.
            #expect(!answered.snapshot)

            var byte: UInt8 = 1
            #expect(write(fd, &byte, 1) == 1)
            close(fd)
            closed = true
            let reply = try await stats.value
            // The stats answers for the processes as they were when it was asked: the
            // victim was reaped before it was sampled.
            #expect(reply["status"] == "ok")
            #expect(reply["info"]?.keys.sorted() == pids.map { String($0) }.sorted())
            #expect(reply["info"]?[String(victim)] == ProcessStats.noSuchProcess)
            #expect(reply["info"]?[String(pids[1])]?["pid"]?.intValue == Int64(pids[1]))
        } catch {
            await h.teardown()
            throw error
        }
        await h.teardown()
    }

    @Test func aStuckLogOutputDoesNotStopTheDaemonAndQueuedLinesAreWrittenBeforeExit() async throws {
        // The log output is a FIFO whose pipe the test fills first: every line circusd
        // writes waits until the test reads.
        var template = Array("/tmp/ci-logfifo-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp: errno \(errno)") }
        let fifoDir = String(cString: made)
        let fifo = fifoDir + "/log"
        defer {
            unlink(fifo)
            rmdir(fifoDir)
        }
        guard mkfifo(fifo, 0o600) == 0 else { throw HarnessError("mkfifo: errno \(errno)") }
        let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        let filler = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard reader >= 0, filler >= 0 else { throw HarnessError("open fifo: errno \(errno)") }
        _ = fcntl(filler, 1031 /* F_SETPIPE_SZ */, 4096)
        let junk = [UInt8](repeating: UInt8(ascii: "#"), count: 4096)
        while write(filler, junk, junk.count) > 0 {}
        close(filler)

        let h = try await DaemonHarness.launch(
            Self.ini, arguments: ["--log-output", fifo, "--pidfile", "%DIR%/circusd.pid"])
        do {
            // It serves commands and supervises while its log writer is stuck.
            _ = try await h.waitPids("sleepers", count: 2)
            expectOK(try await h.call("quit", ["waiting": true]), keys: [])
            // The pidfile goes last, just before circusd waits for its log writer: only
            // then does the test let the writer go on.
            try await h.waitUntil("the pidfile removed at exit", timeout: 10) {
                access(h.dir + "/circusd.pid", F_OK) != 0
            }
            // Read everything until circusd closes its end (at exit).
            let text = try await onThread { () -> String in
                _ = fcntl(reader, F_SETFL, 0)
                var bytes: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = read(reader, &chunk, chunk.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    bytes += chunk[..<n]
                }
                close(reader)
                return String(decoding: bytes.drop { $0 == UInt8(ascii: "#") }, as: UTF8.self)
            }
            #expect(await h.waitExit(timeout: 10))
            #expect(h.process.terminationStatus == 0)
            let lines = text.split(separator: "\n")
            #expect(lines.first?.hasSuffix("[INFO] Starting master on pid \(h.pid)") == true, "\(lines.prefix(3))")
            #expect(lines.last?.hasSuffix("[INFO] Arbiter exiting") == true, "\(lines.suffix(3))")
        } catch {
            close(reader)
            await h.teardown()
            throw error
        }
        await h.teardown()
    }
}
