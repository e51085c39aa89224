// How a child ended, in Circus's terms.

import Glibc

/// How a reaped process ended.
public enum ProcessExitStatus: Hashable, Sendable, CustomStringConvertible {
    /// It called exit with this status (0-255).
    case exited(Int32)
    /// A signal ended it.
    case signaled(Int32, coreDumped: Bool)
    /// Someone else reaped it (it cannot happen while only pidfds are used to wait, but a
    /// stray `waitpid(-1)` or SIGCHLD set to SIG_IGN would cause it); the status is lost.
    case unknown

    /// Circus's `exit_code`: the exit status, or minus the signal number (`-15`, `-9`); nil
    /// when unknown.
    public var exitCode: Int32? {
        switch self {
        case .exited(let code): code
        case .signaled(let signal, _): -signal
        case .unknown: nil
        }
    }

    /// Builds a status from waitid's `si_code` and `si_status`.
    init(code: Int32, status: Int32) {
        switch code {
        case Int32(CLD_EXITED): self = .exited(status)
        case Int32(CLD_DUMPED): self = .signaled(status, coreDumped: true)
        default: self = .signaled(status, coreDumped: false)  // CLD_KILLED
        }
    }

    /// `exited with status 3`, `killed by signal 9`, for log lines.
    public var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal, let core): "killed by signal \(signal)" + (core ? " (core dumped)" : "")
        case .unknown: "reaped elsewhere"
        }
    }
}
