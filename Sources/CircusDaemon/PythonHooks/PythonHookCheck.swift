// Circus imports a hook's callable when it creates the watcher, so a typo in its name is a
// load error. We import each Python hook with the Python that will run it, in circusd's
// environment and working directory, before anything starts (and on reloadconfig, on the
// config worker thread).

public import CircusConfig
import CircusSystem
import OrderedCollections

/// Checks that every Python hook of a configuration can be imported.
public enum PythonHookCheck {
    /// Resolves argv[1] as Circus's `resolve_name` does, and prints why not.
    private static let probe = """
        import importlib, sys
        name = sys.argv[1]
        try:
            if ":" in name:
                module, attr = name.split(":", 1)
            else:
                module, attr = name.rsplit(".", 1)
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            if not callable(obj):
                raise TypeError("%r is not callable" % (obj,))
        except Exception as e:
            print("%s: %s" % (type(e).__name__, e)); sys.exit(4)
        """

    /// Imports each Python hook of `configuration` with `[circus] python`.
    ///
    /// - Parameter environment: circusd's environment, which the hook helper gets too.
    /// - Throws: ``ConfigError`` at the hook's option, saying what to install or fix.
    public static func verify(
        _ configuration: CircusConfiguration, environment: [(key: String, value: String)]
    ) throws(ConfigError) {
        let python = configuration.settings.python
        var checked: [String: String?] = [:]
        for watcher in configuration.watchers {
            for (point, spec) in watcher.hooks {
                guard let name = spec.target.python else { continue }
                let problem = checked[name] ?? problem(python: python, name: name, environment: environment)
                checked[name] = problem
                if let problem {
                    throw ConfigError(
                        at: spec.location, section: "watcher:\(watcher.name)", option: "hooks.\(point.rawValue)",
                        message: problem)
                }
            }
        }
    }

    /// Why `python` cannot import the callable `name`, or nil when it can.
    static func problem(python: String, name: String, environment: [(key: String, value: String)]) -> String? {
        let run: (status: ProcessExitStatus, output: String)
        do {
            run = try PythonPluginCheck.capture(
                SpawnRequest(
                    executable: python, arguments: [python, "-c", probe, name], environment: environment,
                    searchPath: environment.last(where: { $0.key == "PATH" })?.value ?? SpawnRequest.defaultSearchPath))
        } catch {
            return "the Python that runs hooks, \(PythonText.repr(python)), cannot be run (\(error)): install Python 3, "
                + "or name one with `python = /path/to/python` in [circus]"
        }
        let said = run.output.split(separator: "\n").last.map(String.init) ?? ""
        switch run.status {
        case .exited(0): return nil
        case .exited(4): return "\(PythonText.repr(python)) cannot import \(PythonText.repr(name)): \(said)"
        default:
            return "\(PythonText.repr(python)) failed to import \(PythonText.repr(name)) (\(run.status))"
                + (said.isEmpty ? "" : ": \(said)")
        }
    }
}
