// Circus imports a plugin's class when it loads its configuration, so a typo in `use` or a
// Python without Circus is a load error, not a plugin watcher that crash-loops. We run the
// same import with the Python that will run the plugin, before anything starts (and on
// reloadconfig, on the config worker thread).

public import CircusConfig
import CircusSystem
import Glibc
import OrderedCollections

/// Checks that each Python plugin's class can be imported by its Python.
public enum PythonPluginCheck {
    /// Exit statuses of the probe script, for what it found.
    private static let circusMissing: Int32 = 3
    private static let classMissing: Int32 = 4

    /// Imports `circus.plugins`, then the class named by argv[1], and prints why not.
    private static let probe = """
        import importlib, sys
        try:
            import circus.plugins
        except Exception as e:
            print("%s: %s" % (type(e).__name__, e)); sys.exit(3)
        module, _, name = sys.argv[1].rpartition(".")
        try:
            getattr(importlib.import_module(module), name)
        except Exception as e:
            print("%s: %s" % (type(e).__name__, e)); sys.exit(4)
        """

    /// How long one import may take before the check gives up on it.
    static let deadline: Duration = .seconds(60)

    /// Runs the check for every Python plugin of `configuration`.
    ///
    /// - Parameter environment: circusd's environment (plugin watchers copy it).
    /// - Throws: ``ConfigError`` at the plugin's `use`, saying what to install or fix.
    public static func verify(
        _ configuration: CircusConfiguration, environment: [(key: String, value: String)]
    ) throws(ConfigError) {
        for plugin in configuration.plugins {
            guard case .python(let className) = plugin.source,
                  let watcher = configuration.watchers.first(where: { $0.name == plugin.name })
            else { continue }
            var env: OrderedDictionary<String, String> = [:]
            if watcher.copyEnv { for (key, value) in environment { env[key] = value } }
            for (key, value) in watcher.env { env[key] = value }
            let python = plugin.options["python"] ?? "python3"
            if let problem = problem(python: python, className: className, env: env) {
                throw ConfigError(
                    at: plugin.useLocation ?? plugin.location ?? SourceLocation(file: configuration.path, line: 0),
                    section: plugin.name, option: "use", message: problem)
            }
        }
    }

    /// Why `python` cannot import `className`, or nil when it can.
    static func problem(python: String, className: String, env: OrderedDictionary<String, String>) -> String? {
        let install = "install Circus for it (\(python) -m pip install circus==0.19.0) or name a Python that has it "
            + "with `python = /path/to/python` in the section"
        let run: (status: ProcessExitStatus, output: String)
        do {
            run = try capture(
                SpawnRequest(
                    executable: python, arguments: [python, "-c", probe, className],
                    environment: env.map { (key: $0.key, value: $0.value) },
                    searchPath: env["PATH"] ?? SpawnRequest.defaultSearchPath))
        } catch {
            return "the Python that runs \(PythonText.repr(className)), \(PythonText.repr(python)), cannot be run "
                + "(\(error)): install Python 3 and Circus (pip install circus==0.19.0), or name a Python that has "
                + "them with `python = /path/to/python` in the section"
        }
        let said = run.output.split(separator: "\n").last.map(String.init) ?? ""
        switch run.status {
        case .exited(0): return nil
        case .exited(circusMissing): return "\(PythonText.repr(python)) cannot import circus (\(said)): \(install)"
        case .exited(classMissing): return "\(PythonText.repr(python)) cannot import \(PythonText.repr(className)): \(said)"
        default:
            return "\(PythonText.repr(python)) failed to import \(PythonText.repr(className)) (\(run.status))"
                + (said.isEmpty ? "" : ": \(said)")
        }
    }

    /// Runs `request` with stdout and stderr into one pipe, and returns how it ended with
    /// what it wrote; a probe still running at the deadline is killed.
    static func capture(_ request: SpawnRequest) throws(SpawnError) -> (status: ProcessExitStatus, output: String) {
        var fds: [Int32] = [-1, -1]
        // Close-on-exec: the spawner gives the child the write end as its stdout/stderr only.
        guard pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else {
            return (.unknown, "cannot create a pipe: \(String(cString: strerror(errno)))")
        }
        var request = request
        request.stdin = .null
        request.stdout = .fd(fds[1])
        request.stderr = .fd(fds[1])
        let process: SpawnedProcess
        do {
            process = try ChildMonitor.spawnOwned(request)
        } catch {
            close(fds[0]); close(fds[1])
            throw error
        }
        // Run while the loop serves (reloadconfig, `set`, `add`): owned from its spawn, so
        // the loop's orphan reaper leaves its exit status to the wait below.
        defer { ChildMonitor.unmarkOwned(process.pid) }
        close(fds[1])
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let end = ContinuousClock.now + deadline
        var timedOut = false
        while true {
            let left = ContinuousClock.now.duration(to: end)
            guard left > .zero else { timedOut = true; break }
            var poller = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(left.components.seconds * 1000 + 1))
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let count = read(fds[0], &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            output += buffer[..<count]
        }
        close(fds[0])
        if timedOut { try? process.signal(SIGKILL) }
        let status = (try? process.waitForExit()) ?? .unknown
        process.close()
        let text = String(decoding: output, as: UTF8.self)
        return timedOut ? (status, "the import did not finish within \(deadline)") : (status, text)
    }
}
