// The libzmq context: its I/O thread and the registry of every socket.
//
// A process needs exactly one (circusd creates its own; clients share `shared`).
// Termination is where ZeroMQ programs classically hang: `zmq_ctx_term` waits for every
// socket to be closed and, by default, for every pending outgoing message to be
// delivered. We remove both waits: contexts are created with `ZMQ_BLOCKY = 0` and every
// socket gets `ZMQ_LINGER = 0`, and each socket holds a strong reference to its context,
// so the context's `deinit` (which terminates it) can only run after the last socket
// has been closed.

internal import CZeroMQ
internal import Glibc

/// A ZeroMQ context (`zmq_ctx_new`), terminated when the last reference goes away.
///
/// Create one per process and pass it to every socket. Sockets retain their context,
/// so dropping your reference while sockets are open is safe: termination waits for
/// the sockets, never for unsent messages.
///
/// - Important: The context is thread-safe; the sockets made from it are not. Each
///   socket belongs to one thread at a time (for circusd: the loop thread).
public final class ZMQContext: @unchecked Sendable {
    // @unchecked: libzmq documents contexts as thread-safe, and `handle` never changes.
    let handle: UnsafeMutableRawPointer

    /// A process-wide context for clients (circusctl, tests, benchmarks), created on
    /// first use and never terminated. The daemon should create and own its own.
    public static let shared = ZMQContext()

    /// Creates a context with one I/O thread and non-blocking termination.
    ///
    /// - Parameter ioThreads: Background I/O threads. One is plenty for a supervisor's
    ///   control traffic; each extra thread costs a stack and an epoll set.
    public init(ioThreads: Int32 = 1) {
        // zmq_ctx_new only allocates (threads start with the first socket), so NULL
        // means the allocator failed: nothing sensible can continue.
        guard let handle = zmq_ctx_new() else {
            preconditionFailure("zmq_ctx_new returned NULL: out of memory")
        }
        self.handle = handle
        // BLOCKY=0: zmq_ctx_term no longer waits for queued messages (and new sockets
        // default to linger 0). Must be set before the first socket is created.
        _ = zmq_ctx_set(handle, ZMQ_BLOCKY, 0)
        _ = zmq_ctx_set(handle, ZMQ_IO_THREADS, max(1, ioThreads))
    }

    deinit {
        // Every socket retains its context, so none is open here and term cannot block.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// The linked libzmq's version, e.g. `"4.3.4"` (for `circusd --version` and bug reports).
    public static var libraryVersion: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        var patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
