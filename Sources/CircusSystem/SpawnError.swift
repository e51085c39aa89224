// Why a spawn failed, worded for the watcher's log line and for circusctl.

/// A spawn that did not reach the new program, with the step that failed.
///
/// The description names the step and the item, e.g. `exec 'missing-binary': No such file
/// or directory`, `setuid(65534): Operation not permitted`,
/// `setrlimit(RLIMIT_NOFILE): Invalid argument`, `chdir('/nope'): No such file or directory`.
public struct SpawnError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The failing step. A struct rather than an enum so new steps do not break callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Hashable, Sendable {
            case invalidRequest, clone, signals, stdio, chdir, setsid, setrlimit, setgroups, setgid
            case setuid, keepFD, closeFDs, exec
        }
        fileprivate let base: Base

        /// The request itself is unusable (NUL byte in a string, unknown rlimit name, fd < 3 in
        /// `keepFDs`); nothing was started.
        public static let invalidRequest = Code(base: .invalidRequest)
        /// The daemon could not create a process (EAGAIN, ENOMEM).
        public static let clone = Code(base: .clone)
        /// Resetting signal dispositions or the mask in the child.
        public static let signals = Code(base: .signals)
        /// Installing stdin, stdout or stderr.
        public static let stdio = Code(base: .stdio)
        /// Changing to the working directory.
        public static let chdir = Code(base: .chdir)
        /// Creating the new session.
        public static let setsid = Code(base: .setsid)
        /// Applying one of the rlimits (named in the description).
        public static let setrlimit = Code(base: .setrlimit)
        /// Installing the supplementary groups.
        public static let setgroups = Code(base: .setgroups)
        /// Changing the gid.
        public static let setgid = Code(base: .setgid)
        /// Changing the uid.
        public static let setuid = Code(base: .setuid)
        /// A descriptor in `keepFDs` was not open.
        public static let keepFD = Code(base: .keepFD)
        /// Closing the descriptors that are not kept.
        public static let closeFDs = Code(base: .closeFDs)
        /// No candidate path could be executed.
        public static let exec = Code(base: .exec)

        /// The step's name (`exec`, `setuid`, ...).
        public var description: String { base.rawValue }
    }

    /// The failing step.
    public let code: Code
    /// The errno of the failing call (0 for `invalidRequest`).
    public let errno: Int32
    /// What failed and why, for humans.
    public let description: String

    /// Creates an error; `message` is the complete description.
    public init(code: Code, errno: Int32, message: String) {
        self.code = code
        self.errno = errno
        self.description = message
    }

    static func invalid(_ message: String) -> SpawnError {
        SpawnError(code: .invalidRequest, errno: 0, message: message)
    }
}
