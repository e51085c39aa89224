// A hold on a worker's job, for the tests that prove the loop serves while slow work runs:
// the test decides when the job may go on, without timing.

import Glibc

/// A FIFO a worker job reads one byte from before it starts. Named by an environment
/// variable read once when the daemon starts; never set in production.
struct TestGate: Sendable {
    let path: String

    /// The gate named by `variable`, or nil when it is unset or empty (production).
    init?(environment variable: String) {
        guard let value = getenv(variable).map({ String(cString: $0) }), !value.isEmpty else { return nil }
        path = value
    }

    /// Blocks until one byte can be read from the FIFO; returns at once when it does not
    /// exist.
    func wait() {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        var byte: UInt8 = 0
        while read(fd, &byte, 1) < 0 && errno == EINTR {}
        _ = close(fd)
    }
}
