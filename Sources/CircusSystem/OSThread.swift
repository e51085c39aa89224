// A plain pthread for blocking work that must stay off Swift's cooperative pool (blocking
// there starves every task of the process): a ZeroMQ socket owner, a plugin executor, a test's foreign thread.

import CCircusSys
import Glibc
import Synchronization

/// A joinable OS thread running one closure.
public final class OSThread: Sendable {
    private let handle: pthread_t
    private let joined = Atomic<Bool>(false)

    private final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    private init(handle: pthread_t) { self.handle = handle }

    /// Starts `body` on a new thread named `name` (what `top -H`, `ps -L` and `perf` show;
    /// cut to the kernel's 15 bytes). The thread inherits the caller's signal mask, so call
    /// `SignalSource.blockDaemonSignals()` first in the daemon. SIGPIPE is blocked on the new
    /// thread whatever the caller's mask: these threads write to pipes and sockets of helper
    /// processes that may die at any time, and such a write must fail with EPIPE, never end
    /// the process (circusd ignores SIGPIPE; a test process or another program using these
    /// modules need not). The signal a blocked write raises stays pending on the thread
    /// only and goes with it.
    ///
    /// - Throws: `SystemError` (EAGAIN) when the thread cannot be created.
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) -> OSThread {
        // The kernel keeps 15 bytes of a name (PR_SET_NAME cuts it): cut it between characters.
        var kept = ""
        for character in name {
            guard kept.utf8.count + character.utf8.count <= 15 else { break }
            kept.append(character)
        }
        let box = Unmanaged.passRetained(Box(name: kept, body)).toOpaque()
        var handle = pthread_t()
        let r = pthread_create(&handle, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            var pipe = sigset_t()
            sigemptyset(&pipe)
            sigaddset(&pipe, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &pipe, nil)
            _ = circus_set_thread_name(box.name)
            box.body()
            return nil
        }, box)
        if r != 0 {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError("pthread_create", errno: r)
        }
        return OSThread(handle: handle)
    }

    /// Waits for the thread to finish. Joining twice is a no-op.
    public func join() {
        guard !joined.exchange(true, ordering: .acquiringAndReleasing) else { return }
        pthread_join(handle, nil)
    }

    deinit {
        if !joined.load(ordering: .acquiring) { pthread_detach(handle) }
    }
}
