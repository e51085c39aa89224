// The Python circusd runs its helpers with: the stream classes' helper, the hook helper
// and the load-time import checks all start it the same way and say the same thing when
// it cannot be started.

import CircusConfig
public import CircusSystem

/// A Python interpreter and the environment it runs in (circusd's `python` option and
/// environment, as Circus would import the user's code inside circusd).
public struct PythonRuntime: Sendable {
    /// An executable path or a name looked up in the environment's PATH.
    public var python: String
    public var environment: [(key: String, value: String)]

    public init(python: String, environment: [(key: String, value: String)]) {
        self.python = python
        self.environment = environment
    }

    /// A request that runs the interpreter with `arguments` (argv[0] is `python`), looked
    /// up in the environment's PATH as the spawner looks up any program.
    public func request(_ arguments: [String]) -> SpawnRequest {
        SpawnRequest(
            executable: python, arguments: [python] + arguments, environment: environment,
            searchPath: environment.last(where: { $0.key == "PATH" })?.value ?? SpawnRequest.defaultSearchPath)
    }

    /// Why the interpreter could not be started, and what to do, for a user.
    ///
    /// - Parameter runs: what it runs (`hooks`, `stream classes`).
    public func cannotRun(_ runs: String, _ error: any Error) -> String {
        "the Python that runs \(runs), \(PythonText.repr(python)), cannot be run (\(error)): install Python 3, "
            + "or name one with `python = /path/to/python` in [circus]"
    }
}
