// Signals as loop events: the daemon blocks its signals before any thread
// exists, then reads them from a signalfd registered in the loop. No handler ever runs.

import CCircusSys
import Glibc

/// A signal mask saved by `SignalSource.blockDaemonSignals()`, to restore it later.
public struct SignalMask: Sendable {
    let set: sigset_t

    /// Reinstalls this mask on the calling thread.
    public func restore() {
        var set = self.set
        pthread_sigmask(SIG_SETMASK, &set, nil)
    }
}

/// Delivers the daemon's signals to a callback on the loop thread, through a signalfd.
public final class SignalSource {
    /// The signals circusd handles: HUP (reload), INT/TERM/QUIT (quit), USR1 (reopen logs),
    /// USR2, WINCH (logged), and CHLD (only a hint: exits are seen through pidfds).
    public static let daemonSignals: [Int32] = [SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD]

    /// Blocks `signals` on the calling thread, gives them their default disposition, and
    /// sets SIGPIPE to ignored (a write to a closed pipe or socket must be an EPIPE error,
    /// never death).
    ///
    /// The default disposition matters to the children: a launcher may have left some of
    /// these signals ignored (a shell starts background jobs with INT and QUIT ignored,
    /// `nohup` ignores HUP), and an ignored signal stays ignored across exec, so `kill
    /// --signum INT` would not reach a worker. Circus installs handlers for them, which
    /// exec resets to the default; blocked and read through a signalfd, the default
    /// action never runs in the daemon itself.
    ///
    /// - Important: call it first in `main`, before any thread starts: threads inherit the
    ///   mask, and a daemon signal delivered to a thread that does not block it would run the
    ///   default action (killing the daemon) instead of reaching the signalfd.
    /// - Returns: the previous mask, for tests that must put it back.
    @discardableResult
    public static func blockDaemonSignals(_ signals: [Int32] = daemonSignals) -> SignalMask {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &set, &old)
        for s in signals { Glibc.signal(s, SIG_DFL) }
        Glibc.signal(SIGPIPE, SIG_IGN)
        return SignalMask(set: old)
    }

    private let loop: EventLoop
    private let fd: Int32
    private var registration: EventLoop.Registration?
    private let handler: (Int32) -> Void

    /// Starts reading `signals` (which must already be blocked in every thread) and calls
    /// `handler` with each signal number on the loop thread.
    ///
    /// Several deliveries of the same signal before the loop reads them arrive as one (as
    /// with any pending signal).
    /// - Throws: `SystemError` when the signalfd cannot be created or registered.
    public init(
        loop: EventLoop, signals: [Int32] = SignalSource.daemonSignals,
        handler: @escaping (Int32) -> Void
    ) throws(SystemError) {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        let fd = try retryingSyscall("signalfd") { signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
        self.loop = loop
        self.fd = fd
        self.handler = handler
        do throws(SystemError) {
            registration = try loop.register(fd: fd) { [weak self] _ in self?.readSignals() }
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
    }

    deinit { close() }

    /// Stops reading signals and closes the signalfd (the signals stay blocked).
    public func close() {
        guard let registration else { return }
        loop.unregister(registration)
        self.registration = nil
        _ = Glibc.close(fd)
    }

    private func readSignals() {
        var info = signalfd_siginfo()
        let size = MemoryLayout<signalfd_siginfo>.size
        while registration != nil {
            let n = read(fd, &info, size)
            if n == size {
                handler(Int32(bitPattern: info.ssi_signo))
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return  // EAGAIN: drained
            }
        }
    }
}
