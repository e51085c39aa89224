// The Python hook helper with a real Python: hooks written as Circus users write them
// (keyword arguments, the watcher and arbiter objects), their results, their exceptions, a
// hook that outlives its deadline while others are answered, and a helper that dies.

@testable import CircusDaemon
import CircusHooks
import CircusProtocol
import CircusStreams
import OrderedCollections
import Glibc
import Synchronization
import Testing

@Suite("Python hook bridge")
struct PythonHookBridgeTests {
    /// A module of hooks in a fresh directory, importable as `hooks`.
    static let module = """
        import os, time


        def allow(watcher, arbiter, hook_name, **kwargs):
            return True


        def nothing(watcher, arbiter, hook_name, **kwargs):
            pass


        def boom(*args, **kwargs):
            raise ValueError("the database is down")


        def check_arguments(watcher, arbiter, hook_name, pid, signum):
            seen = (watcher.name, watcher.numprocesses, watcher.pids, sorted(p.wid for p in watcher.get_active_processes()),
                    watcher.env.get("APP"), watcher.graceful_timeout, arbiter.watcher_names, hook_name, pid, signum)
            expected = ("web", 2, [7, 9], [1, 2], "prod", 3.0, ["web", "worker"], "before_signal", 7, 15)
            if seen != expected:
                raise AssertionError(repr(seen))
            return True


        def slow(*args, **kwargs):
            time.sleep(60)


        def die(*args, **kwargs):
            os._exit(3)
        """

    static func makeModule() throws -> String {
        var template = Array("/tmp/circus-pyhook-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw Failure("mkdtemp failed") }
        let path = String(cString: dir)
        let file = fopen(path + "/hooks.py", "w")
        fputs(module, file)
        fclose(file)
        return path
    }

    static func removeModule(_ dir: String) {
        unlink(dir + "/hooks.py")
        rmdir(dir + "/__pycache__")
        rmdir(dir)
    }

    static func bridge(python: String = "python3", module dir: String) -> PythonHookBridge {
        var env: [(key: String, value: String)] = [("PYTHONPATH", dir), ("PYTHONDONTWRITEBYTECODE", "1")]
        if let path = getenv("PATH") { env.append(("PATH", String(cString: path))) }
        return PythonHookBridge(runtime: PythonRuntime(python: python, environment: env), endpoint: "ipc:///nonexistent")
    }

    static func call(_ hook: String, name: String = "before_start", extra: JSONObject = [:],
                     deadline: Duration = .seconds(30)) -> PythonHookBridge.Call {
        PythonHookBridge.Call(
            hook: hook, hookName: name,
            watcher: [
                "name": "web", "numprocesses": 2,
                "processes": [["wid": 1, "pid": 7], ["wid": 2, "pid": 9]],
                "options": ["graceful_timeout": 3.0, "numprocesses": 2], "env": ["APP": "prod"],
            ],
            arbiter: ["watchers": ["web", "worker"]], extra: extra, deadline: deadline)
    }

    /// Calls and waits for the outcome.
    static func outcome(_ bridge: PythonHookBridge, _ call: PythonHookBridge.Call) async -> PythonHookBridge.Outcome {
        await withCheckedContinuation { continuation in
            bridge.call(call) { continuation.resume(returning: $0) }
        }
    }

    @Test("results are booleans (None is False), exceptions are failures with their message")
    func results() async throws {
        let dir = try Self.makeModule()
        defer { Self.removeModule(dir) }
        let bridge = Self.bridge(module: dir)
        defer { bridge.shutdown() }
        #expect(await Self.outcome(bridge, Self.call("hooks.allow")) == .returned(true))
        #expect(await Self.outcome(bridge, Self.call("hooks:nothing")) == .returned(false))
        #expect(await Self.outcome(bridge, Self.call("hooks.boom")) == .failed("the database is down"))
        #expect(await Self.outcome(bridge, Self.call("hooks.missing")) == .failed("module 'hooks' has no attribute 'missing'"))
    }

    @Test("the hook gets Circus's keyword arguments and a watcher and arbiter to look at")
    func arguments() async throws {
        let dir = try Self.makeModule()
        defer { Self.removeModule(dir) }
        let bridge = Self.bridge(module: dir)
        defer { bridge.shutdown() }
        let call = Self.call("hooks.check_arguments", name: "before_signal", extra: ["pid": 7, "signum": 15])
        #expect(await Self.outcome(bridge, call) == .returned(true))
    }

    @Test("a hook past its deadline fails, and hooks called after it are answered meanwhile")
    func deadline() async throws {
        let dir = try Self.makeModule()
        defer { Self.removeModule(dir) }
        let bridge = Self.bridge(module: dir)
        defer { bridge.shutdown() }
        let order = Mutex<[String]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let remaining = Mutex(2)
            @Sendable func finished(_ what: String) {
                order.withLock { $0.append(what) }
                if remaining.withLock({ $0 -= 1; return $0 }) == 0 { done.resume() }
            }
            bridge.call(Self.call("hooks.slow", deadline: .seconds(2))) { outcome in
                finished("slow: \(outcome)")
            }
            bridge.call(Self.call("hooks.allow")) { outcome in finished("allow: \(outcome)") }
        }
        #expect(order.withLock { $0 } == ["allow: returned(true)", "slow: failed(\"the hook did not return in time\")"])
    }

    @Test("a helper that dies fails its calls, and the next call starts a new one")
    func helperDies() async throws {
        let dir = try Self.makeModule()
        defer { Self.removeModule(dir) }
        let bridge = Self.bridge(module: dir)
        defer { bridge.shutdown() }
        #expect(await Self.outcome(bridge, Self.call("hooks.die")) == .failed("the Python hook helper exited (exited with status 3)"))
        #expect(await Self.outcome(bridge, Self.call("hooks.allow")) == .returned(true))
    }

    @Test("a Python that cannot run: the failure says what to install")
    func noPython() async throws {
        let dir = try Self.makeModule()
        defer { Self.removeModule(dir) }
        let bridge = Self.bridge(python: "/nonexistent/python3", module: dir)
        defer { bridge.shutdown() }
        #expect(await Self.outcome(bridge, Self.call("hooks.allow")) == .failed("""
            the Python that runs hooks, '/nonexistent/python3', cannot be run (exec '/nonexistent/python3': No such file \
            or directory): install Python 3, or name one with `python = /path/to/python` in [circus]
            """))
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
