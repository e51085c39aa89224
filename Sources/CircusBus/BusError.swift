// The one error type of the ZeroMQ layer.
//
// Every failure that crosses this module's boundary is a `BusError`: a stable code a
// caller can switch on, the libzmq errno when there is one, and a sentence written for
// the person reading circusd's log or circusctl's output (it names the endpoint and
// carries `zmq_strerror`'s text).

internal import CZeroMQ

/// A failure in the ZeroMQ transport: binding, connecting, sending or receiving.
public struct BusError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as a value a caller can compare against.
    ///
    /// Codes are static members rather than enum cases so that new ones can be added
    /// without breaking anyone's exhaustive `switch`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case socketCreationFailed, optionFailed, bindFailed, connectFailed
            case sendFailed, receiveFailed, wouldBlock, peerUnreachable, timedOut, closed
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// `zmq_socket` failed (usually too many open files or sockets).
        public static let socketCreationFailed = Code(.socketCreationFailed)
        /// A socket option could not be set or read.
        public static let optionFailed = Code(.optionFailed)
        /// `zmq_bind` failed: address in use, missing ipc directory, bad endpoint.
        public static let bindFailed = Code(.bindFailed)
        /// `zmq_connect` refused the endpoint (malformed or unsupported transport).
        public static let connectFailed = Code(.connectFailed)
        /// `zmq_send` failed for a reason other than back-pressure.
        public static let sendFailed = Code(.sendFailed)
        /// `zmq_msg_recv` or `zmq_poll` failed for a reason other than "nothing yet".
        public static let receiveFailed = Code(.receiveFailed)
        /// A non-blocking send met the high-water mark; the message was dropped.
        public static let wouldBlock = Code(.wouldBlock)
        /// The ROUTER has no peer with that identity any more (only reported when the
        /// server was created with `reportUnroutableReplies: true`); the reply was dropped.
        public static let peerUnreachable = Code(.peerUnreachable)
        /// A bounded wait ended before the peer answered.
        public static let timedOut = Code(.timedOut)
        /// The socket was used after `close()`.
        public static let closed = Code(.closed)

        public var description: String {
            switch base {
            case .socketCreationFailed: "socketCreationFailed"
            case .optionFailed: "optionFailed"
            case .bindFailed: "bindFailed"
            case .connectFailed: "connectFailed"
            case .sendFailed: "sendFailed"
            case .receiveFailed: "receiveFailed"
            case .wouldBlock: "wouldBlock"
            case .peerUnreachable: "peerUnreachable"
            case .timedOut: "timedOut"
            case .closed: "closed"
            }
        }
    }

    /// The kind of failure.
    public let code: Code
    /// The libzmq errno (`zmq_errno()`), when the failure came from libzmq.
    public let errorNumber: Int32?
    /// A human-readable sentence, e.g. `cannot bind tcp://127.0.0.1:5555: Address already in use`.
    public let message: String

    /// Creates an error; `message` should be a complete sentence fit for a log line.
    public init(_ code: Code, errorNumber: Int32? = nil, message: String) {
        self.code = code
        self.errorNumber = errorNumber
        self.message = message
    }

    public var description: String { message }

    /// Builds an error from the calling thread's `zmq_errno()`, prefixing `what`.
    static func fromErrno(_ code: Code, _ what: String, errno: Int32 = zmq_errno()) -> BusError {
        BusError(code, errorNumber: errno, message: "\(what): \(zmqDescription(errno))")
    }

    /// `zmq_strerror` as a Swift string (libzmq's own messages for ETERM, EFSM, ...).
    static func zmqDescription(_ errno: Int32) -> String {
        String(cString: zmq_strerror(errno))
    }
}
