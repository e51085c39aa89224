// Requests waiting for a plugin's answer, by reply token.
//
// A `circus_reply *` is not a pointer to anything: it is the token's number, so the host
// never dereferences what a plugin hands back. A second reply, a reply for a stopped
// instance, or garbage is then a failed lookup (CIRCUS_E_NOT_FOUND), not a crash. The
// table is process-wide because `reply()` gets no `circus_host *` to find its host by.

import CCircusPlugin
import CircusProtocol
import OrderedCollections
import CircusSystem
import Synchronization

/// How a request ended, as the requester sees it.
enum RequestOutcome: Sendable {
    /// The plugin answered with `status` and a parsed JSON object.
    case answered(status: Int32, json: JSONObject)
    /// The host ended it (timeout, busy, instance stopped, ...).
    case failed(PluginRequestError)
}

enum PendingRequests {
    struct Entry {
        /// The instance serial the request is addressed to.
        var instance: UInt64
        var complete: @Sendable (RequestOutcome) -> Void
    }

    private struct Table {
        var next: UInt64 = 1
        var pending: [UInt64: Entry] = [:]
        /// Tokens whose requester gave up (deadline): a late reply is accepted and dropped.
        var expired: [UInt64: UInt64] = [:]
    }

    private static let table = Mutex(Table())

    /// Records a request and returns its token.
    static func add(instance: UInt64, complete: @escaping @Sendable (RequestOutcome) -> Void) -> UInt64 {
        table.withLock { t in
            let token = t.next
            t.next += 1
            t.pending[token] = Entry(instance: instance, complete: complete)
            return token
        }
    }

    /// Whether `token` still waits for an answer.
    static func isPending(_ token: UInt64) -> Bool {
        table.withLock { $0.pending[token] != nil }
    }

    /// Ends `token` with `outcome` if it is still pending. Returns false otherwise.
    @discardableResult
    static func finish(_ token: UInt64, _ outcome: RequestOutcome) -> Bool {
        guard let entry = table.withLock({ $0.pending.removeValue(forKey: token) }) else { return false }
        entry.complete(outcome)
        return true
    }

    /// The plugin's answer. `CIRCUS_E_NOT_FOUND` for a token already answered or unknown
    /// (or, with `instance`, addressed to another instance); `CIRCUS_OK` for a late answer
    /// after the deadline (dropped).
    static func answer(_ token: UInt64, _ outcome: RequestOutcome, from instance: UInt64? = nil) -> circus_status {
        let entry = table.withLock { t -> Entry? in
            if let instance, (t.pending[token]?.instance ?? t.expired[token]) != instance { return nil }
            if let entry = t.pending.removeValue(forKey: token) { return entry }
            if t.expired.removeValue(forKey: token) != nil {
                return Entry(instance: 0, complete: { _ in })
            }
            return nil
        }
        guard let entry else { return CIRCUS_E_NOT_FOUND }
        entry.complete(outcome)
        return CIRCUS_OK
    }

    /// The deadline passed: the requester gets a timeout; the token is kept so that the
    /// plugin's late answer is still accepted.
    static func expire(_ token: UInt64, reason: String) {
        let entry = table.withLock { t -> Entry? in
            guard let entry = t.pending.removeValue(forKey: token) else { return nil }
            t.expired[token] = entry.instance
            return entry
        }
        entry?.complete(.failed(PluginRequestError(.timeout, reason)))
    }

    /// Forgets an expired token once the plugin can no longer answer it.
    static func forgetExpired(_ token: UInt64) {
        _ = table.withLock { $0.expired.removeValue(forKey: token) }
    }

    /// Fails every request addressed to `instance` and forgets its expired tokens.
    static func cancelAll(instance: UInt64, reason: String) {
        let entries = table.withLock { t -> [Entry] in
            let mine = t.pending.filter { $0.value.instance == instance }
            for token in mine.keys { t.pending[token] = nil }
            t.expired = t.expired.filter { $0.value != instance }
            return mine.sorted { $0.key < $1.key }.map(\.value)
        }
        for entry in entries { entry.complete(.failed(PluginRequestError(.cancelled, reason))) }
    }

    // MARK: Tokens as C pointers

    static func pointer(_ token: UInt64) -> OpaquePointer? { OpaquePointer(bitPattern: UInt(token)) }

    static func token(_ pointer: OpaquePointer?) -> UInt64 {
        guard let pointer else { return 0 }
        return UInt64(UInt(bitPattern: pointer))
    }
}

/// A thread of its own that fires request deadlines: a plugin's executor may be blocked
/// in the very callback that should answer, so the deadline can't live there.
final class DeadlineClock: @unchecked Sendable {
    private let loop: EventLoop
    private let remote: EventLoop.Remote
    private var thread: OSThread?

    init() throws(SystemError) {
        loop = try EventLoop()
        remote = loop.remote
        let loop = self.loop
        nonisolated(unsafe) let unsafeLoop = loop
        thread = try OSThread.start(name: "deadlines") { unsafeLoop.run() }
    }

    /// Calls `action` on the clock's thread after `seconds`.
    func after(_ seconds: Double, _ action: @escaping @Sendable () -> Void) {
        nonisolated(unsafe) let loop = self.loop
        remote.post { loop.schedule(after: seconds, action) }
    }

    /// Ends the thread and waits for it.
    func shutdown() {
        remote.stop()
        thread?.join()
        thread = nil
    }

    deinit { shutdown() }
}
