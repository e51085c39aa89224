// Python hooks as Circus users write them (keyword arguments, the watcher and arbiter
// objects, None for no, exceptions for failures), run by circusd's Python helper with
// the project's .venv Python (which has Circus, for `watcher.call`).

import CircusProtocol
import Foundation
import Testing

/// The virtualenv Python that scripts/setup.sh makes (Circus 0.19 installed), shared by
/// the Python hook, plugin and stream tests.
let venvPython: String = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    return root + "/.venv/bin/python"
}()

/// Hooks written for Circus; every call appends a JSON line to calls.log beside the module.
private let hookModule = """
    import json
    import os

    LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log")


    def _log(**fields):
        with open(LOG, "a") as f:
            f.write(json.dumps(fields, sort_keys=True) + "\\n")


    def check_start(watcher, arbiter, hook_name, **kwargs):
        # Asks circusd about its own watcher before it starts.
        status = watcher.call("status")["status"]
        _log(hook=hook_name, watcher=watcher.name, numprocesses=watcher.numprocesses, status=status,
             watchers=sorted(arbiter.watcher_names), app=watcher.env.get("APP"), timeout=watcher.graceful_timeout)
        return True


    def after_spawn(watcher, arbiter, hook_name, pid, **kwargs):
        _log(hook=hook_name, pid=pid, pids=watcher.pids)
        return True


    def before_signal(watcher, arbiter, hook_name, pid, signum, **kwargs):
        _log(hook=hook_name, pid=pid, signum=signum)
        return True


    def refuse(watcher, arbiter, hook_name, **kwargs):
        return None


    def boom(watcher, arbiter, hook_name, **kwargs):
        raise RuntimeError("the database is down")
    """

private func pythonINI(_ watchers: String) -> String {
    """
    [circus]
    python = \(venvPython)

    [env:web]
    APP = prod

    """ + watchers
}

@Suite("Python hooks") struct PythonHookTests {
    @Test func pythonHooksRunWithCircusArgumentsAndObjects() async throws {
        try await withHookDaemon(pythonINI("""
            [watcher:web]
            cmd = sleep 100
            autostart = false
            graceful_timeout = 7
            hooks.before_start = myhooks.check_start
            hooks.after_spawn = myhooks:after_spawn
            hooks.before_signal = myhooks.before_signal

            [watcher:refused]
            cmd = sleep 100
            autostart = false
            hooks.before_start = myhooks.refuse

            [watcher:failing]
            cmd = sleep 100
            autostart = false
            hooks.before_start = myhooks.boom
            """), files: ["myhooks.py": hookModule]) { h, _ in
            var mark = h.mark
            expectOK(try await h.call("start", ["name": "web", "waiting": true]), keys: ["info"])
            #expect(try await h.waitWatcherEvents("web", since: mark, through: "start")
                == ["hook_success before_start", "hook_success after_spawn", "spawn", "start"])
            let pid = try #require(try await h.childPids("web").first)
            mark = h.mark
            expectOK(try await h.call("stop", ["name": "web", "waiting": true]), keys: ["info"])
            _ = try await h.waitWatcherEvents("web", since: mark, through: "stop")
            // The lines as Python's json.dumps(sort_keys=True) wrote them.
            let calls = try await h.waitFile(h.dir + "/calls.log") { $0.split(separator: "\n").count == 3 }
                .split(separator: "\n").map(String.init)
            #expect(calls == [
                #"{"app": "prod", "hook": "before_start", "numprocesses": 1, "status": "stopped", "timeout": 7.0, "#
                    + #""watcher": "web", "watchers": ["failing", "refused", "web"]}"#,
                #"{"hook": "after_spawn", "pid": \#(pid), "pids": [\#(pid)]}"#,
                #"{"hook": "before_signal", "pid": \#(pid), "signum": 15}"#,
            ])

            // None counts as False: the start is refused, and hook_success is published.
            mark = h.mark
            expectError(try await h.call("start", ["name": "refused", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'refused' refused the start")
            // An exception is a failure, with its message.
            expectError(try await h.call("start", ["name": "failing", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'failing' refused the start")
            let failure = try await h.waitEvent(since: mark, "hook_failure of failing") {
                $0.watcher == "failing" && $0.name == "hook_failure"
            }
            #expect(failure.payload["error"] == "the database is down")
            #expect(h.watcherEvents("refused", since: mark) == ["hook_success before_start"])
            #expect(try await h.status("refused") == "stopped")
            #expect(try await h.status("failing") == "stopped")
        }
    }

    static let badPythonConfigs: [BadConfig] = [
        BadConfig(name: "a Python hook that does not import",
                  ini: pythonINI(markerINI + "\n\n[watcher:bad]\ncmd = sleep 1\nhooks.before_start = myhooks.nope\n"),
                  line: "hooks.before_start = myhooks.nope",
                  option: "hooks.before_start: '\(venvPython)' cannot import 'myhooks.nope': AttributeError: module "
                    + "'myhooks' has no attribute 'nope'"),
        BadConfig(name: "no Python to run it",
                  ini: "[circus]\npython = /nonexistent/python3\n\n" + markerINI
                    + "\n\n[watcher:bad]\ncmd = sleep 1\nhooks.before_start = myhooks.check_start\n",
                  line: "hooks.before_start = myhooks.check_start",
                  option: "hooks.before_start: the Python that runs hooks, '/nonexistent/python3', cannot be run (exec "
                    + "'/nonexistent/python3': No such file or directory): install Python 3, or name one with "
                    + "`python = /path/to/python` in [circus]"),
    ]

    @Test func setGivesAPythonHookAndImportsItsModuleAnew() async throws {
        try await withHookDaemon(pythonINI("""
            [watcher:w]
            cmd = sleep 100
            autostart = false
            """), files: ["gate.py": "def check(watcher, arbiter, hook_name, **kwargs):\n    return False\n"]) { h, _ in
            expectError(try await h.call("set", ["name": "w", "options": ["hooks.before_start": "gate.nope"]]),
                        errno: 3, reason: "'hooks.before_start': '\(venvPython)' cannot import 'gate.nope': "
                            + "AttributeError: module 'gate' has no attribute 'nope'")
            expectOK(try await h.call("set", ["name": "w", "waiting": true, "options": ["hooks.before_start": "gate.check"]]))
            expectError(try await h.call("start", ["name": "w", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'w' refused the start")
            // The module changed: the same hook set again is imported anew, as Circus reloads it.
            try "def check(watcher, arbiter, hook_name, **kwargs):\n    return 'yes'\n"
                .write(toFile: h.dir + "/gate.py", atomically: true, encoding: .utf8)
            expectOK(try await h.call("set", ["name": "w", "waiting": true, "options": ["hooks.before_start": "gate.check"]]))
            expectOK(try await h.call("start", ["name": "w", "waiting": true]), keys: ["info"])
        }
    }

    @Test(arguments: badPythonConfigs)
    func aPythonHookThatCannotRunIsAConfigError(_ bad: BadConfig) async throws {
        try await withHookDaemon(bad.ini, files: ["myhooks.py": hookModule], waitReady: false) { h, _ in
            #expect(await h.waitExit(timeout: 30), "circusd kept running with a bad hook")
            #expect(h.process.terminationStatus == 1)
            let lines = readFile(h.configPath).components(separatedBy: "\n")
            let number = try #require(lines.firstIndex(of: bad.line)) + 1
            #expect(h.log.contains("circus.ini:\(number): [watcher:bad] \(bad.option)"), "stderr: \(h.log)")
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/spawned"), "a process was spawned")
        }
    }
}
