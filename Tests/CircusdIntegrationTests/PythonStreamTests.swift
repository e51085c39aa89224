// Custom Python stream classes as Circus users write them (a callable class taking the
// stream's options as keyword arguments, with optional open() and close()), run by
// circusd's Python stream helper with the project's .venv Python.

import CircusProtocol
import Foundation
import Testing

/// Stream classes written for Circus. `Collect` appends each chunk to
/// `<directory>/<label>.<stream>.<pid>` and journals its calls in events.log; a chunk
/// containing "boom" raises after it was kept, one containing "crash" ends the Python
/// process.
private let streamModule = """
    import json
    import os
    import time

    HERE = os.path.dirname(os.path.abspath(__file__))


    def _event(**fields):
        with open(os.path.join(HERE, "events.log"), "a") as f:
            f.write(json.dumps(fields, sort_keys=True) + "\\n")


    class Collect(object):
        def __init__(self, directory, label="", **kwargs):
            self.directory = directory
            self.label = label
            _event(call="init", label=label, extra=sorted(kwargs))

        def open(self):
            _event(call="open", label=self.label)

        def __call__(self, data):
            name = "%s.%s.%d" % (self.label, data["name"], data["pid"])
            with open(os.path.join(self.directory, name), "ab") as f:
                f.write(data["data"])
            if b"crash" in data["data"]:
                os._exit(7)
            if b"boom" in data["data"]:
                raise RuntimeError("cannot ship %r" % data["data"])

        def close(self):
            _event(call="close", label=self.label)


    class Stall(object):
        \"\"\"Keeps nothing until <directory>/release exists, then everything.\"\"\"

        def __init__(self, directory, **kwargs):
            self.directory = directory

        def __call__(self, data):
            open(os.path.join(self.directory, "called"), "a").close()
            while not os.path.exists(os.path.join(self.directory, "release")):
                time.sleep(0.01)
            with open(os.path.join(self.directory, "stalled.out"), "ab") as f:
                f.write(data["data"])


    class Strict(object):
        def __init__(self, directory):
            self.directory = directory

        def __call__(self, data):
            pass
    """

private func streamINI(_ watchers: String) -> String {
    "[circus]\npython = \(venvPython)\n\n" + watchers
}

/// Watcher `w` (started by the test) running `cmd`, its stdout through `Collect`.
private func collectINI(_ cmd: String) -> String {
    streamINI("""
        [watcher:w]
        autostart = false
        cmd = \(cmd)
        stdout_stream.class = mystreams.Collect
        stdout_stream.directory = %DIR%
        stdout_stream.label = out
        """)
}

@Suite("Python stream classes") struct PythonStreamTests {
    /// The calls journaled for the stream labelled `label`, in order.
    private func calls(_ h: DaemonHarness, _ label: String) -> [String] {
        readFile(h.dir + "/events.log").split(separator: "\n").compactMap { line in
            guard let event = try? JSONParser.parse(Array(line.utf8)), event["label"]?.stringValue == label else { return nil }
            return event["call"]?.stringValue
        }
    }

    @Test func aPythonClassGetsEveryChunkWithItsOptionsOpenAndClose() async throws {
        try await withDaemon(streamINI("""
            [watcher:w]
            autostart = false
            cmd = sh -c 'printf "one\\ntwo"; printf "err1\\n" >&2; printf " three\\n"; printf "last, no newline"; exec sleep 100'
            stdout_stream.class = mystreams.Collect
            stdout_stream.directory = %DIR%
            stdout_stream.label = out
            stdout_stream.flavour = plain
            stderr_stream.class = mystreams:Collect
            stderr_stream.directory = %DIR%
            stderr_stream.label = err
            """), files: ["mystreams.py": streamModule]) { h in
            var mark = h.mark
            expectOK(try await h.call("start", ["name": "w", "waiting": true]), keys: ["info"])
            let pid = try #require(try await h.waitEvent("watcher.w.spawn", since: mark).pid)
            try await h.waitFile("\(h.dir)/out.stdout.\(pid)") { $0 == "one\ntwo three\nlast, no newline" }
            try await h.waitFile("\(h.dir)/err.stderr.\(pid)") { $0 == "err1\n" }
            // tail sees what the class was given.
            let tail = try await h.call("tail", ["name": "w", "lines": 5])
            #expect(tail["stdout"] == .array(["one", "two three", "last, no newline"]))

            // Circus calls close() when the watcher stops and open() when it starts again.
            mark = h.mark
            expectOK(try await h.call("stop", ["name": "w", "waiting": true]), keys: ["info"])
            _ = try await h.waitEvent("watcher.w.stop", since: mark)
            try await h.waitUntil("close() of both streams") { calls(h, "out").last == "close" && calls(h, "err").last == "close" }
            expectOK(try await h.call("start", ["name": "w", "waiting": true]), keys: ["info"])
            try await h.waitUntil("open() again") { calls(h, "out").count == 4 && calls(h, "err").count == 4 }
            #expect(calls(h, "out") == ["init", "open", "close", "open"])
            #expect(calls(h, "err") == ["init", "open", "close", "open"])
            let inits = readFile(h.dir + "/events.log").split(separator: "\n").filter { $0.contains("init") }
            #expect(inits.contains(#"{"call": "init", "extra": ["flavour"], "label": "out"}"#), "\(inits)")
            #expect(inits.contains(#"{"call": "init", "extra": [], "label": "err"}"#), "\(inits)")
        }
    }

    @Test func anExceptionIsReportedOnceAndTheChildRuns() async throws {
        try await withDaemon(collectINI(
            "sh -c 'echo boom1; while [ ! -e %DIR%/go1 ]; do sleep 0.01; done; echo boom2; "
                + "while [ ! -e %DIR%/go2 ]; do sleep 0.01; done; echo fine; exec sleep 100'"
        ), files: ["mystreams.py": streamModule]) { h in
            let pid = try await h.startedPid("w")
            let data = "\(h.dir)/out.stdout.\(pid)"
            try await h.waitFile(data) { $0 == "boom1\n" }
            try await h.waitUntil("the failure in the log") { h.log.contains("w stdout stream: RuntimeError: cannot ship") }
            _ = FileManager.default.createFile(atPath: h.dir + "/go1", contents: nil)
            try await h.waitFile(data) { $0 == "boom1\nboom2\n" }
            _ = FileManager.default.createFile(atPath: h.dir + "/go2", contents: nil)
            try await h.waitFile(data) { $0 == "boom1\nboom2\nfine\n" }
            // The call that worked is followed by the recovery, which counts both failed chunks.
            try await h.waitUntil("the recovery in the log") {
                h.log.contains("w stdout stream writes again (after: RuntimeError: cannot ship b'boom1\\n'); 12 bytes were lost")
            }
            let failures = h.log.components(separatedBy: "\n").filter { $0.contains("w stdout stream: RuntimeError") }
            #expect(failures.count == 1, "\(h.log)")
            #expect(h.log.contains("Traceback (most recent call last)"))
            #expect(try await h.childPids("w") == [pid])
        }
    }

    @Test func aHelperThatDiesIsReportedAndStartedAgain() async throws {
        // The child writes "crash" once, then a numbered line every 20 ms.
        try await withDaemon(collectINI(
            #"sh -c 'echo crash; i=0; while true; do i=$((i+1)); echo "n$i"; sleep 0.02; done'"#
        ), files: ["mystreams.py": streamModule]) { h in
            let pid = try await h.startedPid("w")
            try await h.waitUntil("the helper's end in the log") {
                h.log.contains("w Python stream: the Python stream helper ended (exited with status 7); its output is dropped until the helper runs "
                    + "again (next try in 1 s)")
            }
            // Started again (a new object: init, then open for the running watcher), and the
            // lines written meanwhile are counted.
            try await h.waitUntil("the restart") { calls(h, "out") == ["init", "open", "init", "open"] }
            try await h.waitUntil("the recovery in the log") { h.log.contains("w Python stream runs again (after: ") }
            try await h.waitFile("\(h.dir)/out.stdout.\(pid)") { text in
                text.hasPrefix("crash\n") && text.split(separator: "\n").count > 3
            }
            #expect(try await h.childPids("w") == [pid])
        }
    }

    @Test func aStuckClassHoldsUpOnlyItsWatcherAndLosesNothing() async throws {
        // 2 MB: more than the pipes between the child, circusd and the helper hold, so
        // the child and the watcher's writer thread wait for the class.
        try await withDaemon(streamINI("""
            [watcher:slow]
            autostart = false
            cmd = head -c 2000000 /dev/zero
            respawn = false
            stdout_stream.class = mystreams.Stall
            stdout_stream.directory = %DIR%

            [watcher:fast]
            autostart = false
            cmd = sh -c 'echo one; echo two; exec sleep 100'
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/fast.log
            """), files: ["mystreams.py": streamModule]) { h in
            let slow = try await h.startedPid("slow")
            // The class has its first chunk, and the child is blocked writing: its pipe is
            // full (the kernel function is pipe_write, anon_pipe_write in recent kernels),
            // so the writer thread stopped reading it.
            try await h.waitUntil("the class's first call") { FileManager.default.fileExists(atPath: h.dir + "/called") }
            try await h.waitUntil("the slow child blocked in write") {
                readFile("/proc/\(slow)/wchan").hasSuffix("pipe_write")
            }
            _ = try await h.startedPid("fast")
            try await h.waitFile(h.dir + "/fast.log") { $0 == "one\ntwo\n" }
            #expect(try await h.status("slow") == "active")
            // The slow watcher's writer still answers: it waits for the class in its loop,
            // not in a write (what it read so far, the chunks the class has or will have, is
            // one line of NULs, not ended).
            let tail = try await h.call("tail", ["name": "slow", "lines": 5])
            #expect(tail["status"] == "ok", "\(tail)")
            let lines = tail["stdout"]?.arrayValue?.compactMap { $0.stringValue }
            let captured = try #require(lines)
            #expect(captured.count == 1 && !captured[0].isEmpty && captured[0].allSatisfy { $0 == "\0" }, "\(captured.map(\.count))")
            _ = FileManager.default.createFile(atPath: h.dir + "/release", contents: nil)
            try await h.waitFile(h.dir + "/stalled.out", timeout: 15) { $0.utf8.count == 2_000_000 }
            #expect(readFile(h.dir + "/stalled.out").allSatisfy { $0 == "\0" })
        }
    }

    @Test func aHelperStuckInACallEndsWithCircusd() async throws {
        // The class never returns; circusd's exit gives up on the output after 5 s, and
        // the helper must not outlive it.
        try await withDaemon(streamINI("""
            [watcher:slow]
            autostart = false
            cmd = sh -c 'echo one; exec sleep 100'
            stdout_stream.class = mystreams.Stall
            stdout_stream.directory = %DIR%
            """), files: ["mystreams.py": streamModule]) { h in
            _ = try await h.startedPid("slow")
            let daemon = h.pid
            var helper: Int32 = 0
            try await h.waitUntil("the stream helper") {
                // The writer thread started it: it is that thread's child.
                let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon)/task")) ?? []
                let children = threads.flatMap { readFile("/proc/\(daemon)/task/\($0)/children").split(separator: " ") }
                    .compactMap { Int32($0) }
                helper = children.first { readFile("/proc/\($0)/cmdline").contains("mystreams.Stall") } ?? 0
                return helper != 0
            }
            kill(daemon, SIGTERM)
            #expect(await h.waitExit(timeout: 30))
            try await h.waitUntil("the helper's end") { !FileManager.default.fileExists(atPath: "/proc/\(helper)/cmdline") }
        }
    }

    @Test func setGivesARunningWatcherAPythonStreamCheckedFirst() async throws {
        try await withDaemon(streamINI("""
            [watcher:w]
            autostart = false
            cmd = sh -c 'echo before; while [ ! -e %DIR%/go ]; do sleep 0.01; done; echo after; exec sleep 100'
            stdout_stream.class = FileStream
            stdout_stream.filename = %DIR%/out.log
            """), files: ["mystreams.py": streamModule]) { h in
            let pid = try await h.startedPid("w")
            try await h.waitFile("\(h.dir)/out.log") { $0 == "before\n" }
            // Checked as the configuration file's classes are, and refused with the reason.
            expectError(try await h.call("set", ["name": "w", "options": ["stdout_stream.class": "mystreams.Nope"]]),
                        errno: 3, reason: "'stdout_stream.class': '\(venvPython)' cannot import 'mystreams.Nope': "
                            + "AttributeError: module 'mystreams' has no attribute 'Nope'")
            let strict: JSON = ["class": "mystreams.Strict", "directory": .string(h.dir), "colour": "red"]
            expectError(try await h.call("set", ["name": "w", "options": ["stdout_stream": strict]]),
                        errno: 3, reason: "'stdout_stream.class': 'mystreams.Strict' does not take these options: "
                            + "TypeError: got an unexpected keyword argument 'colour'")
            // A class that can run takes the running process's next output.
            let collect: JSON = ["class": "mystreams.Collect", "directory": .string(h.dir), "label": "swapped"]
            expectOK(try await h.call("set", ["name": "w", "waiting": true, "options": ["stdout_stream": collect]]))
            _ = FileManager.default.createFile(atPath: h.dir + "/go", contents: nil)
            try await h.waitFile("\(h.dir)/swapped.stdout.\(pid)") { $0 == "after\n" }
            #expect(readFile("\(h.dir)/out.log") == "before\n")
            #expect(calls(h, "swapped") == ["init", "open"])
            #expect(try await h.call("list", ["name": "w"])["pids"] == [.int(Int64(pid))])
        }
    }

    static let badStreams: [BadConfig] = [
        BadConfig(name: "a class that does not import",
                  ini: streamINI(markerINI + "\nstdout_stream.class = mystreams.Nope\n"),
                  line: "stdout_stream.class = mystreams.Nope",
                  option: "stdout_stream.class: '\(venvPython)' cannot import 'mystreams.Nope': AttributeError: module "
                    + "'mystreams' has no attribute 'Nope'"),
        BadConfig(name: "an option the constructor does not take",
                  ini: streamINI(markerINI + "\nstderr_stream.class = mystreams.Strict\nstderr_stream.directory = x\n"
                    + "stderr_stream.colour = red\n"),
                  line: "stderr_stream.class = mystreams.Strict",
                  option: "stderr_stream.class: 'mystreams.Strict' does not take these options: TypeError: got an "
                    + "unexpected keyword argument 'colour'"),
        BadConfig(name: "no Python to run it",
                  ini: "[circus]\npython = /nonexistent/python3\n\n" + markerINI
                    + "\nstdout_stream.class = mystreams.Collect\n",
                  line: "stdout_stream.class = mystreams.Collect",
                  option: "stdout_stream.class: the Python that runs stream classes, '/nonexistent/python3', cannot be "
                    + "run (exec '/nonexistent/python3': No such file or directory): install Python 3, or name one "
                    + "with `python = /path/to/python` in [circus]"),
    ]

    @Test(arguments: badStreams)
    func aPythonStreamThatCannotRunIsAConfigError(_ bad: BadConfig) async throws {
        try await withDaemon(bad.ini, files: ["mystreams.py": streamModule], waitReady: false) { h in
            #expect(await h.waitExit(timeout: 30), "circusd kept running with a bad stream")
            #expect(h.process.terminationStatus == 1)
            let lines = readFile(h.configPath).components(separatedBy: "\n")
            let number = try #require(lines.firstIndex(of: bad.line)) + 1
            #expect(h.log.contains("circus.ini:\(number): [watcher:marker] \(bad.option)"), "stderr: \(h.log)")
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/spawned"), "a process was spawned")
        }
    }
}
