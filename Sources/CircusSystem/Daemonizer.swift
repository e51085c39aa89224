// circusd --daemon (spec 1.1): the classic double fork, done in C because the intermediate
// processes must run no Swift runtime code between fork and _exit.

import CCircusSys

/// Detaches the daemon from its terminal and parent.
public enum Daemonizer {
    /// Circus's `daemonize()`: fork (the caller's process exits 0), setsid, fork again (the
    /// session leader exits 0), close every descriptor, `/dev/null` on 0, 1 and 2. No chdir
    /// and no umask change, so relative paths and the umask behave as before.
    ///
    /// Only the grandchild returns; the pidfile written afterwards holds its pid.
    /// - Important: call it before any thread exists (fork copies only the calling thread),
    ///   and before opening anything meant to survive: every descriptor is closed.
    /// - Throws: `SystemError` when the first fork fails (still in the original process).
    public static func daemonize() throws(SystemError) {
        let r = circus_daemonize()
        if r < 0 { throw SystemError("fork", errno: -r) }
    }
}
