import CCircusSys
import CircusSystem

/// Gives the memory a burst of work freed back to the system once the daemon is quiet.
///
/// glibc keeps freed memory in its arenas for reuse and returns only what sits at the top
/// of the main heap. After a burst (a few thousand client connections, each costing libzmq
/// buffers in its I/O thread's arena), circusd would keep holding several MiB it no
/// longer uses: 3000 connections in a row left 9.4 MiB of anonymous memory, of which
/// `malloc_trim` returned 7.7 MiB. This calls it once activity has stopped for
/// ``settle`` seconds, on a worker thread, so a busy daemon pays nothing and an idle one
/// holds only what it uses.
final class IdleMemoryRelease {
    /// Quiet time after the last activity before memory is returned.
    static let settle = 2.0

    private unowned let loop: EventLoop
    private let worker: SerialWorker
    private var activeSinceCheck = false
    private var armed = false

    /// - Parameter worker: a worker thread to run `malloc_trim` on (it walks every arena,
    ///   which takes a few hundred microseconds for a few MiB).
    init(loop: EventLoop, worker: SerialWorker) {
        self.loop = loop
        self.worker = worker
    }

    /// Records activity: costs a flag while a check is armed, one timer otherwise.
    func noteActivity() {
        activeSinceCheck = true
        guard !armed else { return }
        armed = true
        arm()
    }

    private func arm() {
        _ = loop.schedule(after: Self.settle) { [weak self] in self?.check() }
    }

    private func check() {
        if activeSinceCheck {
            activeSinceCheck = false
            return arm()
        }
        armed = false
        try? loop.offload(to: worker, { _ = circus_release_free_memory() }, then: { _ in })
    }
}
