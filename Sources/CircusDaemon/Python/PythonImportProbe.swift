// The load-time check of the Python callables a configuration names in `[circus]`'s
// Python (hooks, stream classes): a short script imports the name and says why it cannot.

import CircusConfig
import CircusStreams
import CircusSystem

/// Runs an import probe with `[circus] python` in circusd's environment.
enum PythonImportProbe {
    /// The probe's exit status when the name cannot be imported (it printed why last).
    static let importFailed: Int32 = 4

    /// Why `runtime` running `script` with `arguments` refuses `name`, or nil when it exits 0.
    ///
    /// - Parameters:
    ///   - runs: what the Python runs, for the message when it cannot be started ("hooks").
    ///   - statuses: messages for the script's other exit statuses, from its last line.
    static func problem(
        _ runtime: PythonRuntime, script: String, arguments: [String], name: String, runs: String,
        statuses: [Int32: (String) -> String] = [:]
    ) -> String? {
        let run: (status: ProcessExitStatus, output: String)
        do {
            run = try PythonPluginCheck.capture(runtime.request(["-c", script] + arguments))
        } catch {
            return runtime.cannotRun(runs, error)
        }
        let python = PythonText.repr(runtime.python)
        let said = run.output.split(separator: "\n").last.map(String.init) ?? ""
        switch run.status {
        case .exited(0): return nil
        case .exited(importFailed): return "\(python) cannot import \(PythonText.repr(name)): \(said)"
        case .exited(let code) where statuses[code] != nil: return statuses[code]!(said)
        default:
            return "\(python) failed to import \(PythonText.repr(name)) (\(run.status))" + (said.isEmpty ? "" : ": \(said)")
        }
    }
}
