// The daemon's one loop: epoll for descriptors, a min-heap for timers (as epoll_wait's
// timeout), an eventfd for wakeups from other threads. Nothing polls: with no timers armed
// the loop sleeps in epoll_wait(-1).

import CCircusSys
import Glibc
import Synchronization

/// A single-threaded event loop over epoll.
///
/// Everything except `remote` (and `post(_:)`, which goes through it) must be used on the
/// thread that calls `run()`; callbacks run on that thread, one at a time, and may register,
/// unregister, schedule and cancel freely (changes apply at once: an fd unregistered by an
/// earlier callback in the same batch is not dispatched).
///
/// Descriptors are level-triggered: a callback must consume what made its fd ready, or it is
/// called again on the next iteration.
public final class EventLoop {
    /// Readiness conditions, as epoll reports them.
    public struct Events: OptionSet, Hashable, Sendable {
        /// The EPOLL* bits.
        public let rawValue: UInt32
        /// Wraps EPOLL* bits.
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// Data to read, or a peer closed its end (EPOLLIN).
        public static let readable = Events(rawValue: EPOLLIN.rawValue)
        /// Room to write (EPOLLOUT).
        public static let writable = Events(rawValue: EPOLLOUT.rawValue)
        /// An error condition (EPOLLERR; always reported).
        public static let error = Events(rawValue: EPOLLERR.rawValue)
        /// Hang-up (EPOLLHUP; always reported).
        public static let hangup = Events(rawValue: EPOLLHUP.rawValue)
        /// Report once, then stay quiet until `modify(_:events:)` arms it again
        /// (EPOLLONESHOT): for a descriptor that becomes ready once for good, as a pidfd
        /// does when its process ends.
        public static let oneShot = Events(rawValue: EPOLLONESHOT.rawValue)
    }

    /// A registered descriptor; pass it to `unregister(_:)` or `modify(_:events:)`.
    public struct Registration: Hashable, Sendable {
        /// The descriptor.
        public let fd: Int32
        let token: UInt64
    }

    /// A scheduled timer; pass it to `cancel(_:)`.
    public struct TimerID: Hashable, Sendable {
        let raw: UInt64
    }

    /// The thread-safe side of a loop: posting work and stopping it from any thread.
    ///
    /// It owns the eventfd, so a foreign thread that outlives the loop still writes to a
    /// valid descriptor (whose wakeups nobody reads any more).
    public final class Remote: Sendable {
        struct State {
            var jobs: [@Sendable () -> Void] = []
            var results: [(token: UInt64, value: any Sendable)] = []
            var stopRequested = false
            var wakePending = false
            /// The timer of `post(_:within:)`, made at its first use (-1 until then).
            var timerFD: Int32 = -1
            var deferredArmed = false
        }

        let eventFD: Int32
        let epollFD: Int32
        let state = Mutex(State())
        /// Something is queued: the loop looks at it between two callbacks of a turn, so
        /// an answer that comes while the loop is busy (a hook's, a spawn run's report)
        /// is acted on at once rather than after the rest of the turn. Set and cleared
        /// under `state`'s lock; read without it.
        let queued = Atomic<Bool>(false)
        /// The epoll data of the deferred-wake timer.
        static let deferredToken = UInt64.max

        init(eventFD: Int32, epollFD: Int32) {
            self.eventFD = eventFD
            self.epollFD = epollFD
        }

        deinit {
            _ = close(eventFD)
            let timer = state.withLock { $0.timerFD }
            if timer >= 0 { _ = close(timer) }
        }

        /// Runs `job` on the loop thread, after the current callback, in posting order.
        ///
        /// Safe from any thread, including the loop's own.
        public func post(_ job: @escaping @Sendable () -> Void) {
            queue { $0.jobs.append(job) }
        }

        /// Runs `job` on the loop thread like `post(_:)`, but wakes the loop for it only
        /// once `delay` seconds have passed (or sooner, when something else wakes it).
        ///
        /// For a producer that makes many small reports in a row (a spawn run): they
        /// gather and the loop takes them with one wake-up rather than one each. Safe from
        /// any thread; a later `post(_:)` still wakes the loop at once.
        public func post(_ job: @escaping @Sendable () -> Void, within delay: Double) {
            let arm = state.withLock { s -> Int32? in
                s.jobs.append(job)
                queued.store(true, ordering: .releasing)
                guard !s.wakePending, !s.deferredArmed else { return nil }
                if s.timerFD < 0 { s.timerFD = makeDeferredTimer() }
                guard s.timerFD >= 0 else {
                    // No timer to be had: wake at once rather than never.
                    s.wakePending = true
                    return -1
                }
                s.deferredArmed = true
                return s.timerFD
            }
            guard let arm else { return }
            guard arm >= 0 else { return signal() }
            if circus_timerfd_arm(arm, Int64(delay * 1e9)) < 0 { signal() }
        }

        /// Wakes the loop now for what `post(_:within:)` queued, rather than at its delay.
        ///
        /// Safe from any thread.
        public func hurry() {
            queue { _ in }
        }

        /// A timerfd registered with the loop's epoll (epoll_ctl is safe from any thread),
        /// or -1 when the kernel will not give one.
        private func makeDeferredTimer() -> Int32 {
            let fd = circus_timerfd_create()
            guard fd >= 0 else { return -1 }
            guard circus_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, EPOLLIN.rawValue, Self.deferredToken) == 0 else {
                _ = close(fd)
                return -1
            }
            return fd
        }

        /// Hands the result of offloaded work back to the loop thread.
        func deliver(token: UInt64, value: any Sendable) {
            queue { $0.results.append((token, value)) }
        }

        /// Makes `run()` return once the loop thread has handled the wakeup.
        public func stop() {
            queue { $0.stopRequested = true }
        }

        /// Makes `change` to what the loop will take, and wakes the loop unless a wake-up
        /// is already on its way.
        private func queue(_ change: (inout State) -> Void) {
            let wake = state.withLock { s -> Bool in
                change(&s)
                queued.store(true, ordering: .releasing)
                defer { s.wakePending = true }
                return !s.wakePending
            }
            if wake { signal() }
        }

        private func signal() {
            var one: UInt64 = 1
            while write(eventFD, &one, 8) < 0 && errno == EINTR {}
        }

        /// Takes the queued work; called by the loop after draining the eventfd.
        func take() -> (jobs: [@Sendable () -> Void], results: [(token: UInt64, value: any Sendable)], stop: Bool) {
            let (taken, armed) = state.withLock { s in
                let taken = (s.jobs, s.results, s.stopRequested)
                s.jobs = []
                s.results = []
                s.stopRequested = false
                s.wakePending = false
                queued.store(false, ordering: .relaxed)
                defer { s.deferredArmed = false }
                return (taken, s.deferredArmed ? s.timerFD : -1)
            }
            // Taken before its time (another wake-up came first): the timer would only wake
            // the loop for nothing.
            if armed >= 0 { _ = circus_timerfd_disarm(armed) }
            return taken
        }
    }

    private struct Handler {
        let fd: Int32
        let callback: (Events) -> Void
    }

    /// The handle other threads use to post work or stop the loop.
    public let remote: Remote

    private let epollFD: Int32
    private var handlers: [UInt64: Handler] = [:]
    private var nextToken: UInt64 = 1  // 0 is the eventfd
    private var timers = TimerHeap()
    private var timerCallbacks: [UInt64: () -> Void] = [:]
    private var nextTimer: UInt64 = 1
    private var offloadCompletions: [UInt64: (any Sendable) -> Void] = [:]
    private var nextOffload: UInt64 = 1
    private var endOfTurn: [() -> Void] = []
    private var stopRequested = false
    private var running = false
    private let eventBuffer: UnsafeMutablePointer<circus_epoll_event>
    private static let eventCapacity: Int32 = 64

    /// How many times `epoll_wait` has returned (events, timeouts, or interruptions), for
    /// tests that prove the loop does not poll and for diagnostics.
    public private(set) var wakeupCount: UInt64 = 0

    /// Creates a loop with its epoll instance and eventfd.
    ///
    /// - Throws: `SystemError` when the descriptors cannot be created (EMFILE, ENFILE, ENOMEM).
    public init() throws(SystemError) {
        let ep = try retryingSyscall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        let efd: Int32
        do throws(SystemError) {
            efd = try retryingSyscall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK)) }
        } catch {
            _ = close(ep)
            throw error
        }
        epollFD = ep
        remote = Remote(eventFD: efd, epollFD: ep)
        eventBuffer = .allocate(capacity: Int(Self.eventCapacity))
        let r = circus_epoll_ctl(ep, EPOLL_CTL_ADD, efd, EPOLLIN.rawValue, 0)
        precondition(r == 0, "epoll_ctl(ADD, eventfd) failed on a fresh epoll instance: \(errnoDescription(-r))")
    }

    deinit {
        _ = close(epollFD)
        eventBuffer.deallocate()
    }

    // MARK: Descriptors

    /// Watches `fd` and calls `callback` on the loop thread whenever it is ready.
    ///
    /// The loop does not own `fd`: unregister it before closing it.
    /// - Throws: `SystemError` (EEXIST when `fd` is already registered, EPERM for regular
    ///   files, ENOMEM, ENOSPC).
    @discardableResult
    public func register(
        fd: Int32, events: Events = .readable, callback: @escaping (Events) -> Void
    ) throws(SystemError) -> Registration {
        let token = nextToken
        nextToken += 1
        let r = circus_epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, events.rawValue, token)
        if r < 0 {
            precondition(-r != EBADF, "EventLoop.register: fd \(fd) is not open (a bug in the caller)")
            throw SystemError("epoll_ctl(ADD, \(fd))", errno: -r)
        }
        handlers[token] = Handler(fd: fd, callback: callback)
        return Registration(fd: fd, token: token)
    }

    /// Changes the conditions watched for a registration (e.g. add `.writable` while a
    /// write is pending).
    public func modify(_ registration: Registration, events: Events) throws(SystemError) {
        guard handlers[registration.token] != nil else { return }
        let r = circus_epoll_ctl(epollFD, EPOLL_CTL_MOD, registration.fd, events.rawValue, registration.token)
        if r < 0 { throw SystemError("epoll_ctl(MOD, \(registration.fd))", errno: -r) }
    }

    /// Forgets a `.oneShot` registration that has reported its event, whose descriptor the
    /// caller closes right away: the close takes it out of the epoll set, which saves
    /// `unregister`'s system call (one per child that ends). A copy of the descriptor
    /// that another process briefly holds (a child between clone and exec) keeps the
    /// entry alive, disarmed, so it reports nothing.
    public func forgetFiredOneShot(_ registration: Registration) {
        handlers.removeValue(forKey: registration.token)
    }

    /// Stops watching; pending events for it are dropped. Unregistering twice is harmless.
    public func unregister(_ registration: Registration) {
        guard handlers.removeValue(forKey: registration.token) != nil else { return }
        // ENOENT/EBADF mean the caller closed the fd first, which already removed it.
        _ = circus_epoll_ctl(epollFD, EPOLL_CTL_DEL, registration.fd, 0, 0)
    }

    /// The number of registered descriptors (the internal eventfd not included).
    public var registrationCount: Int { handlers.count }

    // MARK: Timers

    /// Calls `callback` once on the loop thread at `deadline` (on the `monotonicNow()`
    /// clock), or as soon as possible if it is already past. Timers with equal deadlines fire
    /// in scheduling order.
    @discardableResult
    public func schedule(at deadline: Double, _ callback: @escaping () -> Void) -> TimerID {
        let id = nextTimer
        nextTimer += 1
        timers.insert(.init(deadline: deadline, id: id))
        timerCallbacks[id] = callback
        return TimerID(raw: id)
    }

    /// Calls `callback` once after `seconds`.
    @discardableResult
    public func schedule(after seconds: Double, _ callback: @escaping () -> Void) -> TimerID {
        schedule(at: Self.monotonicNow() + seconds, callback)
    }

    /// Cancels a timer that has not fired yet; cancelling a fired or cancelled one is harmless.
    public func cancel(_ timer: TimerID) {
        guard timerCallbacks.removeValue(forKey: timer.raw) != nil else { return }
        if timers.count > 64 && timers.count > 2 * timerCallbacks.count {
            timers.compact { timerCallbacks[$0] != nil }
        }
    }

    /// The number of armed timers.
    public var timerCount: Int { timerCallbacks.count }

    // MARK: Running

    /// Runs callbacks until `stop()` (or `remote.stop()`) is called.
    ///
    /// - Important: not reentrant; call it from the thread that owns the loop.
    public func run() {
        precondition(!running, "EventLoop.run() called while the loop is already running")
        running = true
        defer {
            runEndOfTurn()
            running = false
            stopRequested = false
        }
        while !stopRequested {
            var timeout = fireDueTimers()
            while !endOfTurn.isEmpty && !stopRequested {
                runEndOfTurn()
                timeout = fireDueTimers()  // the jobs may have armed timers, or made some due
            }
            if stopRequested { break }
            let n = circus_epoll_wait(epollFD, eventBuffer, Self.eventCapacity, timeout)
            wakeupCount &+= 1
            if n < 0 {
                precondition(-n == EINTR, "epoll_wait failed: \(errnoDescription(-n))")
                continue
            }
            for i in 0..<Int(n) {
                let event = eventBuffer[i]
                if event.data == 0 {
                    drainRemote()
                } else if event.data == Remote.deferredToken {
                    var expirations: UInt64 = 0
                    _ = read(remote.state.withLock { $0.timerFD }, &expirations, 8)
                    drainRemote()
                } else if let handler = handlers[event.data] {
                    handler.callback(Events(rawValue: event.events))
                    // What another thread posted meanwhile comes before the rest of the batch.
                    if remote.queued.load(ordering: .acquiring) { drainRemote() }
                }
                if stopRequested { break }
            }
        }
    }

    /// Calls `job` on the loop thread once the callbacks of the current turn (the
    /// descriptors one `epoll_wait` reported, the due timers) have run, before the loop
    /// sleeps again; jobs added by such a job run in the same turn. What many callbacks of
    /// one turn produce can so be handed on at once: the plugins get a turn's events with
    /// one wakeup each rather than one per event.
    public func atEndOfTurn(_ job: @escaping () -> Void) {
        endOfTurn.append(job)
    }

    private func runEndOfTurn() {
        while !endOfTurn.isEmpty {
            let jobs = endOfTurn
            endOfTurn = []
            for job in jobs { job() }
        }
    }

    /// Makes `run()` return after the current callback. From another thread use
    /// `remote.stop()`.
    public func stop() {
        stopRequested = true
    }

    /// Runs `job` on the loop thread; safe from any thread (see `Remote.post(_:)`).
    public func post(_ job: @escaping @Sendable () -> Void) {
        remote.post(job)
    }

    /// Runs `work` on `worker` and then `completion` with its result on the loop thread.
    ///
    /// This is how blocking work (reading /proc, a configuration file, a user database)
    /// stays off the loop: the loop goes on serving while `work` runs, and the result
    /// comes back as one more event. `completion` may touch loop-owned state; `work` must
    /// not. A loop that stopped before the result arrived never calls `completion`.
    /// - Throws: `SystemError` when the worker's thread cannot be started.
    public func offload<T: Sendable>(
        to worker: SerialWorker, _ work: @escaping @Sendable () -> T, then completion: @escaping (T) -> Void
    ) throws(SystemError) {
        let token = nextOffload
        nextOffload += 1
        offloadCompletions[token] = { value in completion(value as! T) }
        let remote = self.remote
        do {
            try worker.submit { remote.deliver(token: token, value: work()) }
        } catch {
            offloadCompletions[token] = nil
            throw error
        }
    }

    /// Offloaded jobs whose result has not come back yet.
    public var pendingOffloadCount: Int { offloadCompletions.count }

    /// Fires every timer that is due now, oldest deadline first, and returns epoll_wait's
    /// timeout for the next one (-1 when none is armed: sleep until an fd is ready).
    private func fireDueTimers() -> Int32 {
        guard !timers.isEmpty else { return -1 }
        let now = Self.monotonicNow()
        // Timers scheduled by these callbacks wait for the next pass, so a timer that re-arms
        // itself at `now` cannot starve descriptors.
        let limit = nextTimer
        while let top = timers.min, top.deadline <= now, top.id < limit {
            timers.popMin()
            if let callback = timerCallbacks.removeValue(forKey: top.id) {
                callback()
                if stopRequested { return 0 }
                if remote.queued.load(ordering: .acquiring) { drainRemote() }
            }
        }
        while let top = timers.min, timerCallbacks[top.id] == nil { timers.popMin() }
        guard let next = timers.min else { return -1 }
        let delay = next.deadline - Self.monotonicNow()
        if delay <= 0 { return 0 }
        // Round up: waking a little late is harmless, waking early would spin.
        return Int32(Swift.min((delay * 1000).rounded(.up), Double(Int32.max)))
    }

    private func drainRemote() {
        var counter: UInt64 = 0
        _ = read(remote.eventFD, &counter, 8)
        let (jobs, results, stop) = remote.take()
        for job in jobs { job() }
        for result in results {
            offloadCompletions.removeValue(forKey: result.token)?(result.value)
        }
        if stop { stopRequested = true }
    }

    // MARK: Clocks

    /// Seconds on CLOCK_MONOTONIC: for deadlines and intervals (never jumps with the wall
    /// clock).
    public static func monotonicNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Seconds since the epoch (CLOCK_REALTIME): Circus's `time.time()` for wire timestamps.
    public static func wallNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
