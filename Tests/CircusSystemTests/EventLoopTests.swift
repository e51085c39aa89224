// The loop: timer order and cancellation, descriptors, foreign-thread posts, and proof that
// an idle loop sleeps instead of polling.

import CircusSystem
import Glibc
import Synchronization
import Testing

extension CircusSystemTests {
    @Suite struct EventLoopTests {
        @Test func timersFireInDeadlineOrderAndCancelWorks() throws {
            let loop = try EventLoop()
            var fired: [String] = []
            let now = EventLoop.monotonicNow()
            loop.schedule(at: now + 0.03) { fired.append("c") }
            loop.schedule(at: now + 0.01) { fired.append("a") }
            let cancelled = loop.schedule(at: now + 0.015) { fired.append("cancelled") }
            loop.schedule(at: now + 0.02) { fired.append("b") }
            loop.schedule(at: now + 0.01) { fired.append("a2") }  // same deadline: after "a"
            loop.schedule(at: now - 1) { fired.append("past") }  // already due: first
            loop.schedule(at: now + 0.04) { loop.stop() }
            loop.cancel(cancelled)
            loop.cancel(cancelled)  // twice is harmless
            #expect(loop.timerCount == 6)
            loop.run()
            #expect(fired == ["past", "a", "a2", "b", "c"])
            #expect(loop.timerCount == 0)
            #expect(EventLoop.monotonicNow() >= now + 0.04)
        }

        @Test func manyCancelledTimersAreCompacted() throws {
            let loop = try EventLoop()
            var ids: [EventLoop.TimerID] = []
            for i in 0..<1000 { ids.append(loop.schedule(after: 100 + Double(i)) {}) }
            for id in ids { loop.cancel(id) }
            #expect(loop.timerCount == 0)
            var ran = false
            loop.schedule(after: 0) {
                ran = true
                loop.stop()
            }
            loop.run()
            #expect(ran)
        }

        @Test func timerRescheduledFromCallbackDoesNotStarveDescriptors() throws {
            let loop = try EventLoop()
            let p = Support.pipe()
            defer {
                close(p.read)
                close(p.write)
            }
            _ = write(p.write, "x", 1)
            var ticks = 0
            func tick() {
                ticks += 1
                loop.schedule(after: 0) { tick() }
            }
            tick()
            try loop.register(fd: p.read) { _ in loop.stop() }
            loop.run()
            #expect(ticks < 5)
        }

        @Test func descriptorCallbacksAndUnregisterWithinABatch() throws {
            let loop = try EventLoop()
            let (a, b) = Support.twoReadablePipes()
            defer { for fd in [a.read, a.write, b.read, b.write] { close(fd) } }
            var calls: [Int32] = []
            var regA: EventLoop.Registration?
            var regB: EventLoop.Registration?
            regA = try loop.register(fd: a.read) { events in
                #expect(events.contains(.readable))
                calls.append(a.read)
                loop.unregister(regB!)
                loop.unregister(regA!)
                loop.schedule(after: 0.01) { loop.stop() }
            }
            regB = try loop.register(fd: b.read) { _ in
                calls.append(b.read)
                loop.unregister(regA!)
                loop.unregister(regB!)
                loop.schedule(after: 0.01) { loop.stop() }
            }
            #expect(loop.registrationCount == 2)
            loop.run()
            // Both were ready in the same epoll batch; whichever ran first removed the other.
            #expect(calls.count == 1)
            #expect(loop.registrationCount == 0)

            // Registering the same fd twice is an error, not a silent replacement.
            let reg = try loop.register(fd: a.read) { _ in }
            #expect(throws: SystemError.self) { try loop.register(fd: a.read) { _ in } }
            loop.unregister(reg)
        }

        /// A one-shot registration reports a descriptor that stays ready once, until
        /// `modify` arms it again; forgotten after it fired and closed, it costs no
        /// epoll_ctl and reports nothing more (the ChildMonitor's pidfds).
        @Test func aOneShotRegistrationReportsOnceUntilArmedAgain() throws {
            let loop = try EventLoop()
            let ready = Support.pipe()
            let later = Support.pipe()
            defer { for fd in [ready.read, ready.write, later.read, later.write] { close(fd) } }
            _ = write(ready.write, "x", 1)  // never read: level-triggered, it stays ready
            var reports: [String] = []
            var armedAgain = false
            var registration: EventLoop.Registration?
            registration = try loop.register(fd: ready.read, events: [.readable, .oneShot]) { _ in
                reports.append("ready")
                if !armedAgain {
                    // Quiet now: a later turn's event comes without a second report.
                    _ = write(later.write, "y", 1)
                }
            }
            try loop.register(fd: later.read) { _ in
                var byte: UInt8 = 0
                _ = read(later.read, &byte, 1)
                reports.append("later")
                if !armedAgain {
                    armedAgain = true
                    try? loop.modify(registration!, events: [.readable, .oneShot])
                    // A timer due now runs on the next turn, after the re-armed report.
                    loop.schedule(after: 0.05) { loop.stop() }
                }
            }
            loop.run()
            #expect(reports == ["ready", "later", "ready"])
            loop.forgetFiredOneShot(registration!)
            #expect(loop.registrationCount == 1)
        }

        @Test func endOfTurnJobsRunAfterTheTurnsCallbacksBeforeTheLoopSleeps() throws {
            let loop = try EventLoop()
            let (a, b) = Support.twoReadablePipes()
            defer { for fd in [a.read, a.write, b.read, b.write] { close(fd) } }
            var order: [String] = []
            var scheduled = false
            // Both descriptors are ready in the same turn: the job waits for both callbacks.
            for (name, fd) in [("a", a.read), ("b", b.read)] {
                try loop.register(fd: fd) { _ in
                    var byte: UInt8 = 0
                    _ = read(fd, &byte, 1)
                    order.append(name)
                    guard !scheduled else { return }
                    scheduled = true
                    loop.atEndOfTurn {
                        order.append("end")
                        // Added by an end-of-turn job: runs in the same turn, before the
                        // loop sleeps (nothing else would ever wake it here).
                        loop.atEndOfTurn {
                            order.append("nested")
                            loop.stop()
                        }
                    }
                }
            }
            loop.run()
            #expect(order.sorted() == ["a", "b", "end", "nested"])
            #expect(order.suffix(2) == ["end", "nested"])
        }

        @Test func postFromAnotherThreadRunsOnTheLoopThread() throws {
            let loop = try EventLoop()
            let remote = loop.remote
            let ranOn = Mutex<[pthread_t]>([])
            let thread = try OSThread.start(name: "test") {
                for _ in 0..<3 {
                    remote.post { ranOn.withLock { $0.append(pthread_self()) } }
                }
                remote.stop()
            }
            loop.run()
            thread.join()
            let threads = ranOn.withLock { $0 }
            #expect(threads.count == 3)
            #expect(threads.allSatisfy { pthread_equal($0, pthread_self()) != 0 })
        }

        @Test func whatAnotherThreadPostsDuringACallbackRunsBeforeTheRestOfTheBatch() throws {
            // A hook's answer that comes while the loop is busy is acted on before the
            // other descriptors of the same epoll_wait, not after them.
            let loop = try EventLoop()
            let remote = loop.remote
            let order = Mutex<[String]>([])
            var pipes: [[Int32]] = []
            var registrations: [EventLoop.Registration] = []
            defer {
                for r in registrations { loop.unregister(r) }
                for p in pipes { close(p[0]); close(p[1]) }
            }
            for _ in 0..<2 {
                var fds: [Int32] = [-1, -1]
                #expect(pipe(&fds) == 0)
                var byte: UInt8 = 1
                #expect(write(fds[1], &byte, 1) == 1)
                pipes.append(fds)
            }
            // Both are readable before the loop runs: one epoll_wait reports both.
            for fds in pipes {
                registrations.append(try loop.register(fd: fds[0]) { _ in
                    var byte: UInt8 = 0
                    _ = read(fds[0], &byte, 1)
                    let first = order.withLock { o -> Bool in
                        o.append("descriptor")
                        return o.count == 1
                    }
                    guard first else { return loop.stop() }
                    let thread = try? OSThread.start(name: "test") {
                        remote.post { order.withLock { $0.append("posted") } }
                    }
                    thread?.join()
                })
            }
            loop.run()
            #expect(order.withLock { $0 } == ["descriptor", "posted", "descriptor"])
        }

        @Test func aDeferredPostWaitsForItsDelayAndJobsPostedMeanwhileShareTheWakeup() throws {
            let loop = try EventLoop()
            let remote = loop.remote
            let ran = Mutex<[(String, Double)]>([])
            let posted = Mutex<Double>(0)
            let thread = try OSThread.start(name: "test") {
                posted.withLock { $0 = EventLoop.monotonicNow() }
                for name in ["a", "b", "c"] {
                    remote.post({ ran.withLock { $0.append((name, EventLoop.monotonicNow())) } }, within: 0.05)
                }
            }
            thread.join()
            _ = loop.schedule(after: 0.3) { loop.stop() }
            loop.run()
            let done = ran.withLock { $0 }
            #expect(done.map(\.0) == ["a", "b", "c"])
            let start = posted.withLock { $0 }
            #expect(done.allSatisfy { $0.1 - start >= 0.05 })
            // Two wake-ups: the deferred timer's (all three jobs) and the stop timer's.
            #expect(loop.wakeupCount == 2)
        }

        @Test func aPostWakesTheLoopAtOnceForWhatADeferredPostQueued() throws {
            let loop = try EventLoop()
            let remote = loop.remote
            let order = Mutex<[String]>([])
            remote.post({ order.withLock { $0.append("deferred") } }, within: 60)
            remote.post {
                order.withLock { $0.append("now") }
                remote.stop()
            }
            let before = EventLoop.monotonicNow()
            loop.run()
            #expect(order.withLock { $0 } == ["deferred", "now"])
            // Served by the immediate post's wake-up, not the 60 s timer.
            #expect(EventLoop.monotonicNow() - before < 30)
        }

        @Test func idleLoopBlocksInEpollWait() throws {
            let loop = try EventLoop()
            let remote = loop.remote
            let thread = try OSThread.start(name: "test") {
                Support.sleep(milliseconds: 300)
                remote.stop()
            }
            let cpuBefore = Self.threadCPUTime()
            let wallBefore = EventLoop.monotonicNow()
            loop.run()
            let cpu = Self.threadCPUTime() - cpuBefore
            thread.join()
            #expect(EventLoop.monotonicNow() - wallBefore >= 0.29)
            // One wakeup in 300 ms: the stop. A polling loop would have woken many times.
            #expect(loop.wakeupCount == 1)
            #expect(cpu < 0.05)
        }

        @Test func clocks() {
            let mono = EventLoop.monotonicNow()
            let wall = EventLoop.wallNow()
            #expect(mono > 0)
            #expect(wall > 1_700_000_000)
            #expect(EventLoop.monotonicNow() >= mono)
        }

        static func threadCPUTime() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        }
    }
}

extension CircusSystemTests {
@Suite struct OffloadTests {
    @Test func resultsComeBackOnTheLoopThreadInOrderWhileTheLoopServesTimers() throws {
        let loop = try EventLoop()
        let worker = SerialWorker(name: "test")
        defer { worker.shutdown() }
        let loopThread = pthread_self()
        var received: [Int] = []
        var ticks = 0
        // The first job blocks until the loop has fired a timer: it can only finish if
        // the loop keeps running while the worker is busy.
        let gate = Gate()
        try loop.offload(to: worker, { gate.wait(); return 1 }) { value in
            #expect(pthread_equal(pthread_self(), loopThread) != 0)
            received.append(value)
        }
        try loop.offload(to: worker, { 2 }) { value in
            received.append(value)
            loop.stop()
        }
        _ = loop.schedule(after: 0.001) {
            ticks += 1
            gate.open()
        }
        loop.run()
        #expect(received == [1, 2])
        #expect(ticks == 1)
        #expect(loop.pendingOffloadCount == 0)
    }
}
}

/// A one-shot latch for a foreign thread to wait on.
final class Gate: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var isOpen = false
    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }
    func open() {
        pthread_mutex_lock(&mutex)
        isOpen = true
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }
    func wait() {
        pthread_mutex_lock(&mutex)
        while !isOpen { pthread_cond_wait(&condition, &mutex) }
        pthread_mutex_unlock(&mutex)
    }
}
