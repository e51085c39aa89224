// Circus imports a hook's callable when it creates the watcher, so a typo in its name is a
// load error. We import each Python hook with the Python that will run it, in circusd's
// environment and working directory, before anything starts (and on reloadconfig, on the
// config worker thread).

public import CircusConfig
import CircusStreams
import CircusSystem
import OrderedCollections

/// Checks that every Python hook of a configuration can be imported.
public enum PythonHookCheck {
    /// Resolves argv[1] as Circus's `resolve_name` does, and prints why not.
    private static let probe = PythonSource.resolveName + """
        import sys
        name = sys.argv[1]
        try:
            obj = resolve_name(name)
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
        let runtime = PythonRuntime(python: configuration.settings.python, environment: environment)
        var checked: [String: String?] = [:]
        for watcher in configuration.watchers {
            for (point, spec) in watcher.hooks {
                guard let name = spec.target.python else { continue }
                let problem = checked[name] ?? self.problem(name, runtime: runtime)
                checked[name] = problem
                if let problem {
                    let option = "hooks.\(point.rawValue)"
                    throw ConfigError(
                        at: watcher.location(of: option), section: "watcher:\(watcher.name)", option: option,
                        message: problem)
                }
            }
        }
    }

    /// Why `runtime` cannot import the hook `name`; nil when it can. Blocks while Python
    /// imports it: call it off the loop.
    static func problem(_ name: String, runtime: PythonRuntime) -> String? {
        PythonImportProbe.problem(runtime, script: probe, arguments: [name], name: name, runs: "hooks")
    }
}
