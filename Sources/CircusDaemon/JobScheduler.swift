// Orders the operations that change watchers, so that commands arriving while another
// runs wait their turn instead of failing (Circus answers "arbiter is already running
// ... command"; we queue).
//
// A job names what it touches: some watchers, or everything. Jobs on different watchers
// run side by side (a 30 s graceful stop of one watcher does not hold up `incr` on
// another); a job waits for every earlier job it overlaps, so order is kept per watcher.

/// What a job may change.
enum JobScope: Hashable {
    /// Every watcher and the arbiter itself (start/stop all, reloadconfig, quit).
    case all
    /// The watchers with these lower-cased names.
    case watchers(Set<String>)

    func overlaps(_ other: JobScope) -> Bool {
        switch (self, other) {
        case (.all, _), (_, .all): return true
        case (.watchers(let a), .watchers(let b)): return !a.isDisjoint(with: b)
        }
    }
}

/// A FIFO of jobs with scopes, run on the loop thread.
final class JobScheduler {
    typealias Body = (_ done: @escaping () -> Void) -> Void

    private struct Job {
        let id: Int
        let scope: JobScope
        let body: Body
    }

    private var waiting: [Job] = []
    private var running: [Int: JobScope] = [:]
    private var nextID = 0
    private var pumping = false
    private var pumpAgain = false

    /// True when nothing runs and nothing waits.
    var isIdle: Bool { waiting.isEmpty && running.isEmpty }

    /// Queues `body`; it starts as soon as no earlier overlapping job is running or waiting.
    /// `body` must call `done` exactly once, now or later.
    func submit(_ scope: JobScope, _ body: @escaping Body) {
        waiting.append(Job(id: nextID, scope: scope, body: body))
        nextID += 1
        pump()
    }

    /// Forgets every job that has not started (the daemon is exiting); running jobs go on.
    func dropWaiting() {
        waiting.removeAll()
    }

    private func pump() {
        if pumping {
            pumpAgain = true
            return
        }
        pumping = true
        defer { pumping = false }
        repeat {
            pumpAgain = false
            var blocked = Array(running.values)
            var index = 0
            while index < waiting.count {
                let job = waiting[index]
                if blocked.contains(where: { $0.overlaps(job.scope) }) {
                    blocked.append(job.scope)
                    index += 1
                    continue
                }
                waiting.remove(at: index)
                running[job.id] = job.scope
                blocked.append(job.scope)
                var finished = false
                job.body { [weak self] in
                    guard !finished, let self else { return }
                    finished = true
                    self.running[job.id] = nil
                    self.pump()
                }
            }
        } while pumpAgain
    }
}
