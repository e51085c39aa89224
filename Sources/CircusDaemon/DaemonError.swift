// Errors that stop circusd from starting or from doing what it was asked.

/// A failure the daemon reports to its user in one sentence (config, bind, pidfile, ...).
public struct DaemonError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, written for the person who runs circusd.
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
