// Third-party Python plugins run as Circus runs them: the watcher `plugin:NAME` runs
// Circus's own plugin runner (from PyPI, in the project's .venv), which talks to circusd
// over its endpoints. The plugin below is written the way Circus users write theirs.

import CircusProtocol
import Foundation
import Testing

/// Records every event, and answers each watcher start with a command sent back to circusd.
private let recorderPlugin = """
    import json
    from circus.plugins import CircusPlugin


    class Recorder(CircusPlugin):
        name = 'recorder'

        def __init__(self, *args, **config):
            super(Recorder, self).__init__(*args, **config)
            self.path = config['path']

        def handle_recv(self, data):
            topic, msg = data
            pid = json.loads(msg).get('process_pid', '')
            self._write('%s %s' % (topic.decode(), pid))
            if topic.endswith(b'.start'):
                res = self.call('numprocesses', name='sleeper')
                self._write('numprocesses %s' % res['numprocesses'])

        def _write(self, line):
            with open(self.path, 'a') as f:
                f.write(line + '\\n')

    """

private func pluginConfig(use: String, python: String) -> String {
    """
    [watcher:sleeper]
    cmd = sleep 60

    [plugin:rec]
    use = \(use)
    python = \(python)
    path = %DIR%/events.txt
    """
}

@Suite("Python plugins", .serialized)
struct PythonPluginTests {
    @Test("a Python plugin runs as the watcher plugin:rec, receives events and sends commands")
    func pluginRuns() async throws {
        let harness = try await DaemonHarness.launch(
            pluginConfig(use: "recorder.Recorder", python: venvPython), files: ["recorder.py": recorderPlugin],
            environment: ["PYTHONPATH": "%DIR%"])
        do {
            try await harness.waitStatus("plugin:rec", "active")
            let events = harness.dir + "/events.txt"
            // The plugin subscribes once it runs: restart until one whole restart reached it.
            try await harness.waitUntil("the plugin to see a restart", timeout: 30) {
                expectOK(try await harness.call("restart", ["name": "sleeper", "waiting": true]), keys: ["info"])
                return readFile(events).contains("numprocesses 1")
            }
            // The plugin is subscribed now. The events of the last restart above may still
            // be on their way when it returns, so one more, whose events come after them.
            expectOK(try await harness.call("restart", ["name": "sleeper", "waiting": true]), keys: ["info"])
            let pid = try #require(try await harness.childPids("sleeper").first)
            let expected = ["watcher.sleeper.spawn \(pid)", "watcher.sleeper.start ", "numprocesses 1"]
            try await harness.waitUntil("the plugin to record the restart of pid \(pid)", timeout: 30) {
                Array(readFile(events).split(separator: "\n").map(String.init).suffix(3)) == expected
            }
            let list = try await harness.call("list")
            #expect(list["watchers"]?.arrayValue?.contains("plugin:rec") == true, "\(list)")
        } catch {
            await harness.teardown()
            throw error
        }
        await harness.teardown()
    }

    @Test("a class the plugin's Python cannot import stops circusd at load, naming file, line and option")
    func missingClass() async throws {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try recorderPlugin.write(toFile: dir + "/recorder.py", atomically: true, encoding: .utf8)
        try DaemonHarness.renderConfig(
            pluginConfig(use: "recorder.Nope", python: venvPython), dir: dir,
            control: "ipc://\(dir)/c.sock", pubsub: "ipc://\(dir)/p.sock")
            .write(toFile: dir + "/circus.ini", atomically: true, encoding: .utf8)
        let run = try await runCircusd(["circus.ini"], in: dir, environment: ["PYTHONPATH": dir])
        #expect(run.status == 1)
        #expect(run.stderr == """
            circusd: configuration error: circus.ini:9: [plugin:rec] use: '\(venvPython)' cannot import \
            'recorder.Nope': AttributeError: module 'recorder' has no attribute 'Nope'

            """)
    }

    @Test("a Python without Circus: the error says what to install")
    func pythonWithoutCircus() async throws {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A real Python with nothing installed: a venv without pip.
        let venv = Process()
        venv.executableURL = URL(fileURLWithPath: venvPython)
        venv.arguments = ["-m", "venv", "--without-pip", dir + "/bare"]
        try venv.run()
        venv.waitUntilExit()
        try #require(venv.terminationStatus == 0)
        let python = dir + "/bare/bin/python"
        try DaemonHarness.renderConfig(
            pluginConfig(use: "recorder.Recorder", python: python), dir: dir,
            control: "ipc://\(dir)/c.sock", pubsub: "ipc://\(dir)/p.sock")
            .write(toFile: dir + "/circus.ini", atomically: true, encoding: .utf8)
        let run = try await runCircusd(["circus.ini"], in: dir)
        #expect(run.status == 1)
        #expect(run.stderr == """
            circusd: configuration error: circus.ini:9: [plugin:rec] use: '\(python)' cannot import circus \
            (ModuleNotFoundError: No module named 'circus'): install Circus for it (\(python) -m pip install \
            circus==0.19.0) or name a Python that has it with `python = /path/to/python` in the section

            """)
    }
}
