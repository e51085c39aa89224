// Circus imports a custom stream class and creates its object when it loads the watcher,
// so a typo in the class's path or a keyword its constructor does not take is a load
// error. We import each Python stream class with the Python that will run it, in
// circusd's environment, and bind the configured keywords to its constructor's signature
// (without calling it: the object is made once, by the helper that runs it).

public import CircusConfig
import CircusProtocol
import CircusStreams
import CircusSystem
import OrderedCollections

/// Checks that every Python stream class of a configuration can be imported and takes
/// its options.
public enum PythonStreamCheck {
    /// argv[1]: the class path; argv[2]: the keywords as JSON.
    private static let probe = PythonSource.resolveName + """
        import inspect, json, sys
        name = sys.argv[1]
        try:
            cls = resolve_name(name)
            if not callable(cls):
                raise TypeError("%r is not callable" % (cls,))
        except Exception as e:
            print("%s: %s" % (type(e).__name__, e)); sys.exit(4)
        try:
            signature = inspect.signature(cls)
        except (TypeError, ValueError):
            sys.exit(0)
        try:
            signature.bind(**json.loads(sys.argv[2]))
        except TypeError as e:
            print("TypeError: %s" % (e,)); sys.exit(5)
        """

    /// Imports each Python stream class of `configuration` with `[circus] python`.
    ///
    /// - Parameter environment: circusd's environment, which the stream helper gets too.
    /// - Throws: ``ConfigError`` at the stream's `class` option.
    public static func verify(
        _ configuration: CircusConfiguration, environment: [(key: String, value: String)]
    ) throws(ConfigError) {
        let runtime = PythonRuntime(python: configuration.settings.python, environment: environment)
        for watcher in configuration.watchers {
            for (prefix, keys) in [("stdout_stream", watcher.stdoutStream), ("stderr_stream", watcher.stderrStream)] {
                if let problem = problem(keys, runtime: runtime) {
                    let option = prefix + ".class"
                    throw ConfigError(
                        at: watcher.location(of: option),
                        section: "watcher:\(watcher.name)", option: option, message: problem)
                }
            }
        }
    }

    /// Why `runtime` cannot make the Python stream that `keys` configure (the keys after
    /// `stdout_stream.`); nil when it can, or when they name no Python class. Blocks while
    /// Python imports the class: call it off the loop.
    static func problem(_ keys: OrderedDictionary<String, String>, runtime: PythonRuntime) -> String? {
        guard let stream = try? StreamConfig.parse(keys), let path = stream.kind.pythonClass else { return nil }
        var keywords = JSONObject()
        for (key, value) in stream.pythonOptions { keywords[key] = .string(value) }
        return PythonImportProbe.problem(
            runtime, script: probe,
            arguments: [path, JSONWriter.string(.object(keywords))], name: path, runs: "stream classes",
            statuses: [5: { "\(PythonText.repr(path)) does not take these options: \($0)" }])
    }
}
