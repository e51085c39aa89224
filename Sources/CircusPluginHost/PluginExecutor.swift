// One serial executor per plugin instance: a dedicated thread (plugin C code may block,
// so it must never run on Swift's cooperative pool) running an epoll loop with timers, fd
// watches and a FIFO queue of work. Everything that calls into the instance runs here,
// one item at a time.
//
// The queue is bounded for what others push at the plugin (events, requests, posted
// tasks): a blocked or slow plugin costs its queue's capacity, never the caller's time.
// Enqueueing takes a mutex for a few instructions and never waits for the plugin.

import CircusSystem
import DequeModule
import Glibc
import Synchronization

final class PluginExecutor: @unchecked Sendable {
    /// What a queued item is, which decides what happens when the queue is full.
    enum Kind {
        /// An event: when full, the oldest queued event is dropped (and counted).
        case event
        /// A command or hook request: when full, refused with BUSY.
        case request
        /// A task posted by the plugin: when full, refused with BUSY.
        case task
        /// The host's own work (lifecycle, dtors, call results): never refused.
        case control

        var isBounded: Bool { self != .control }
    }

    struct Item: Sendable {
        var kind: Kind
        /// Runs the item on the executor's thread.
        var run: @Sendable () -> Void
        /// Called instead of `run` when the item is dropped (teardown): runs a dtor, fails
        /// a request.
        var discard: @Sendable () -> Void = {}
    }

    enum Enqueued: Equatable {
        case queued
        /// Refused: the bounded part of the queue is full.
        case busy
        /// Refused: the queue is closed (the instance is being torn down or stopped).
        case closed
    }

    private struct Queue {
        var items = Deque<Item>()
        var boundedCount = 0
        /// Events dropped since the last `dropped` report.
        var droppedSinceReport: UInt64 = 0
        /// Events dropped since the executor started (for introspection).
        var droppedTotal: UInt64 = 0
        /// A drain job is posted or running.
        var draining = false
        /// Items were queued with their wakeup left for `wake()` (`enqueueDeferringWake`).
        var wakeDeferred = false
        /// The posted drain waits for `eventGathering` (posted by `wake()`, not started).
        var drainDelayed = false
        var closed = false
    }

    /// The executor thread's id, once it runs (0 before).
    private final class ThreadID: Sendable {
        let value = Atomic<UInt>(0)
    }

    /// The loop, touched only on the executor's thread (and in `init`).
    private final class LoopBox: @unchecked Sendable {
        let loop: EventLoop
        init(_ loop: EventLoop) { self.loop = loop }
    }

    let capacity: Int
    private let queue: Mutex<Queue>
    private let box: LoopBox
    private let remote: EventLoop.Remote
    private let threadID = ThreadID()
    private let thread: Mutex<OSThread?> = Mutex(nil)
    /// Called on the executor's thread when the queue has drained after dropping events.
    private let reportDrops: @Sendable (UInt64) -> Void
    /// Called on the executor's thread after an item took longer than `slowThreshold`.
    private let reportSlow: @Sendable (Kind, Double) -> Void
    private let slowThreshold: Double

    /// Items run per turn before the loop looks at timers and descriptors again.
    private static let batch = 64

    /// The thread's name (what `top -H` shows).
    private let name: String
    /// How long events queued by `wake()` may wait for the thread (see
    /// `PluginHost.Configuration.eventGathering`); commands, hooks and replies
    /// (`enqueue`) never wait.
    private let eventGathering: Double

    init(
        name: String, capacity: Int, slowThreshold: Double, eventGathering: Double,
        reportDrops: @escaping @Sendable (UInt64) -> Void,
        reportSlow: @escaping @Sendable (Kind, Double) -> Void
    ) throws(SystemError) {
        self.name = name
        self.eventGathering = eventGathering
        self.capacity = max(1, capacity)
        self.slowThreshold = slowThreshold
        self.reportDrops = reportDrops
        self.reportSlow = reportSlow
        queue = Mutex(Queue())
        let loop = try EventLoop()
        box = LoopBox(loop)
        remote = loop.remote
    }

    /// Starts the thread.
    func start() throws(SystemError) {
        let box = self.box
        let threadID = self.threadID
        let started = try OSThread.start(name: name) {
            threadID.value.store(UInt(pthread_self()), ordering: .releasing)
            box.loop.run()
        }
        thread.withLock { $0 = started }
    }

    /// Ends the loop after what it is running; the thread then exits. A thread stuck in a
    /// plugin callback can't be ended: it stays until the callback returns.
    func finish() {
        remote.stop()
        // Not joined: finish() may run on the executor's own thread (teardown), and a
        // blocked plugin must not block the caller. The thread detaches when dropped.
        thread.withLock { $0 = nil }
    }

    /// Whether the caller runs on this executor's thread.
    var isCurrent: Bool { threadID.value.load(ordering: .acquiring) == UInt(pthread_self()) }

    // MARK: The queue

    /// Queues `item` after everything queued before it. Never blocks on the plugin.
    @discardableResult
    func enqueue(_ item: Item) -> Enqueued {
        let (result, post, hurry) = queue.withLock { q -> (Enqueued, Bool, Bool) in
            let result = Self.add(item, to: &q, capacity: capacity)
            // A drain waiting out `eventGathering` is posted already: wake the thread for it now.
            let hurry = result == .queued && q.drainDelayed
            if hurry { q.drainDelayed = false }
            return (result, result == .queued && Self.claimDrain(&q), hurry)
        }
        if post {
            remote.post { [self] in drain() }
        } else if hurry {
            remote.hurry()
        }
        return result
    }

    /// Queues `item` as `enqueue` does, without waking the thread for it: the caller calls
    /// `wake()` later, once for a whole batch (an item queued meanwhile with `enqueue`
    /// runs the batch with it, in order).
    ///
    /// - Returns: true when nothing queued this way was waiting for `wake()` before.
    func enqueueDeferringWake(_ item: Item) -> Bool {
        queue.withLock { q -> Bool in
            guard Self.add(item, to: &q, capacity: capacity) == .queued, !q.wakeDeferred else { return false }
            q.wakeDeferred = true
            return true
        }
    }

    /// Wakes the thread, within `eventGathering` seconds, for what `enqueueDeferringWake` queued,
    /// unless it runs already.
    func wake() {
        let post = queue.withLock { q -> Bool in
            guard q.wakeDeferred else { return false }
            q.wakeDeferred = false
            guard Self.claimDrain(&q) else { return false }
            q.drainDelayed = true
            return true
        }
        if post { remote.post({ [self] in drain() }, within: eventGathering) }
    }

    private static func add(_ item: Item, to q: inout Queue, capacity: Int) -> Enqueued {
        if q.closed { return .closed }
        if item.kind.isBounded && q.boundedCount >= capacity {
            switch item.kind {
            case .event:
                // Make room by dropping the oldest event; if everything queued is a
                // request or a task, the new event is the one dropped.
                q.droppedSinceReport += 1
                q.droppedTotal += 1
                guard let oldest = q.items.firstIndex(where: { $0.kind == .event }) else { return .queued }
                q.items.remove(at: oldest)
                q.boundedCount -= 1
            case .request, .task, .control:
                return .busy
            }
        }
        q.items.append(item)
        if item.kind.isBounded { q.boundedCount += 1 }
        return .queued
    }

    /// Whether the caller must post a drain: there is work and no drain is posted or running.
    private static func claimDrain(_ q: inout Queue) -> Bool {
        if q.draining || q.items.isEmpty { return false }
        q.draining = true
        return true
    }

    /// Items waiting (not counting the one running).
    var depth: Int { queue.withLock { $0.items.count } }

    /// Events dropped since the executor was created.
    var droppedTotal: UInt64 { queue.withLock { $0.droppedTotal } }

    /// Closes the queue and returns what was waiting, for the caller to discard. Later
    /// `enqueue` calls answer `.closed`.
    func close() -> [Item] {
        queue.withLock { q in
            q.closed = true
            let left = Array(q.items)
            q.items.removeAll()
            q.boundedCount = 0
            q.droppedSinceReport = 0
            return left
        }
    }

    /// Opens a closed queue again (an instance recreated on the same executor).
    func reopen() {
        queue.withLock { $0.closed = false }
    }

    private func drain() {
        for _ in 0..<Self.batch {
            let (next, drops) = queue.withLock { q -> (Item?, UInt64) in
                q.drainDelayed = false
                if let item = q.items.popFirst() {
                    if item.kind.isBounded { q.boundedCount -= 1 }
                    return (item, 0)
                }
                q.draining = false
                defer { q.droppedSinceReport = 0 }
                return (nil, q.closed ? 0 : q.droppedSinceReport)
            }
            guard let item = next else {
                if drops > 0 { reportDrops(drops) }
                return
            }
            let began = EventLoop.monotonicNow()
            item.run()
            let took = EventLoop.monotonicNow() - began
            if took > slowThreshold { reportSlow(item.kind, took) }
        }
        // Let timers and descriptors have a turn; `draining` stays true.
        remote.post { [self] in drain() }
    }

    // MARK: Loop-thread services (timers and descriptors)

    /// Runs `job` on the executor's thread: now if already there, else after the loop's
    /// current callback. Not bounded, not part of the FIFO queue: for arming and disarming
    /// timers and watches.
    func onLoop(_ job: @escaping @Sendable (EventLoop) -> Void) {
        if isCurrent {
            job(box.loop)
        } else {
            let box = self.box
            remote.post { job(box.loop) }
        }
    }
}
