// A thread for blocking work the loop thread must never do itself: reading /proc for
// `stats`, reading a configuration file again, name lookups, writes to a slow log file.
//
// Jobs run one at a time, in submission order. The thread starts with the first job and
// sleeps on a condition variable when it has none, so an idle daemon pays nothing for it.
// Results come back to the loop with `EventLoop.offload(to:_:then:)`.

import Glibc
import Synchronization

/// One OS thread running blocking jobs in the order they were submitted.
public final class SerialWorker: @unchecked Sendable {
    // The queue and the thread handle are guarded by `mutex`; `condition` wakes the
    // thread. pthread primitives rather than `Mutex` because a sleeping worker needs a
    // condition variable.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var thread: OSThread?
    private var stopping = false
    private var busy = false
    /// A name for diagnostics (`stats`, `config`, `log`).
    public let name: String

    /// Creates a worker; its thread starts with the first submitted job.
    public init(name: String) {
        self.name = name
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        shutdown()
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Queues `job`; it runs after every job submitted before it.
    ///
    /// Safe from any thread. A job submitted after `shutdown()` is dropped.
    /// - Throws: `SystemError` when the thread cannot be created (EAGAIN); the job is not
    ///   queued then.
    public func submit(_ job: @escaping @Sendable () -> Void) throws(SystemError) {
        pthread_mutex_lock(mutex)
        guard !stopping else {
            pthread_mutex_unlock(mutex)
            return
        }
        if thread == nil {
            do {
                thread = try OSThread.start(name: name) { [unowned self] in self.work() }
            } catch {
                pthread_mutex_unlock(mutex)
                throw error
            }
        }
        jobs.append(job)
        pthread_mutex_unlock(mutex)
        // Signalled after the unlock: a thread woken while the mutex is still held would
        // only block on it and be woken a second time.
        pthread_cond_signal(condition)
    }

    /// Jobs queued or running (for diagnostics and tests).
    public var pendingCount: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return jobs.count - head + (busy ? 1 : 0)
    }

    /// Runs what is queued, then ends the thread and waits for it. Idempotent.
    public func shutdown() {
        pthread_mutex_lock(mutex)
        stopping = true
        let running = thread
        thread = nil
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
        running?.join()
    }

    private func work() {
        pthread_mutex_lock(mutex)
        while true {
            if head < jobs.count {
                let job = jobs[head]
                head += 1
                if head == jobs.count {
                    jobs.removeAll(keepingCapacity: true)
                    head = 0
                }
                busy = true
                pthread_mutex_unlock(mutex)
                job()
                pthread_mutex_lock(mutex)
                busy = false
            } else if stopping {
                break
            } else {
                pthread_cond_wait(condition, mutex)
            }
        }
        pthread_mutex_unlock(mutex)
    }
}
