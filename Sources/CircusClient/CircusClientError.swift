// The one error type of the client library, written to be shown to a user as is.

public import CircusBus

/// A failed call, cast or subscription.
public struct CircusClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong; static members so new codes do not break exhaustive switches.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case timedOut, connectionFailed, sendFailed, receiveFailed, malformedReply, closed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No reply (or no room to send) within the timeout: the daemon is down, busy,
        /// or deliberately silent (casts, malformed requests).
        public static let timedOut = Code(.timedOut)
        /// The endpoint is malformed or its transport unsupported, or the socket could
        /// not be created.
        public static let connectionFailed = Code(.connectionFailed)
        /// The request could not be queued.
        public static let sendFailed = Code(.sendFailed)
        /// Receiving failed (for example, the context was terminated).
        public static let receiveFailed = Code(.receiveFailed)
        /// The daemon answered with something other than one frame.
        public static let malformedReply = Code(.malformedReply)
        /// The connection or subscriber was used after `close()`.
        public static let closed = Code(.closed)

        public var description: String {
            switch base {
            case .timedOut: "timedOut"
            case .connectionFailed: "connectionFailed"
            case .sendFailed: "sendFailed"
            case .receiveFailed: "receiveFailed"
            case .malformedReply: "malformedReply"
            case .closed: "closed"
            }
        }
    }

    /// The kind of failure.
    public let code: Code
    /// A sentence for the user, e.g. `timed out after 5.0 seconds waiting for ipc:///run/circus/ctl.sock`.
    public let message: String
    /// The transport error behind this one, if any.
    public let underlying: BusError?

    /// Creates an error.
    public init(_ code: Code, message: String, underlying: BusError? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { message }

    /// Maps a transport error, keeping its message (which already names the endpoint or message).
    init(_ error: BusError, default code: Code) {
        let mapped: Code =
            switch error.code {
            case .closed: .closed
            case .timedOut: .timedOut
            default: code
            }
        self.init(mapped, message: error.message, underlying: error)
    }
}
