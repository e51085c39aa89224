// The load-time check of the Python callables a configuration names in `[circus]`'s
// Python (hooks, stream classes): a short script imports the name and says why it cannot.

import CircusConfig
import CircusSystem

/// Runs an import probe with `[circus] python` in circusd's environment.
enum PythonImportProbe {
    /// The probe's exit status when the name cannot be imported (it printed why last).
    static let importFailed: Int32 = 4

    /// Why `python` running `script` with `arguments` refuses `name`, or nil when it exits 0.
    ///
    /// - Parameters:
    ///   - runs: what the Python runs, for the message when it cannot be started ("hooks").
    ///   - statuses: messages for the script's other exit statuses, from its last line.
    static func problem(
        python: String, script: String, arguments: [String], name: String, runs: String,
        environment: [(key: String, value: String)], statuses: [Int32: (String) -> String] = [:]
    ) -> String? {
        let run: (status: ProcessExitStatus, output: String)
        do {
            run = try PythonPluginCheck.capture(
                SpawnRequest(
                    executable: python, arguments: [python, "-c", script] + arguments, environment: environment,
                    searchPath: environment.last(where: { $0.key == "PATH" })?.value ?? SpawnRequest.defaultSearchPath))
        } catch {
            return "the Python that runs \(runs), \(PythonText.repr(python)), cannot be run (\(error)): install Python 3, "
                + "or name one with `python = /path/to/python` in [circus]"
        }
        let said = run.output.split(separator: "\n").last.map(String.init) ?? ""
        switch run.status {
        case .exited(0): return nil
        case .exited(importFailed): return "\(PythonText.repr(python)) cannot import \(PythonText.repr(name)): \(said)"
        case .exited(let code) where statuses[code] != nil: return statuses[code]!(said)
        default:
            return "\(PythonText.repr(python)) failed to import \(PythonText.repr(name)) (\(run.status))"
                + (said.isEmpty ? "" : ": \(said)")
        }
    }
}
