@testable import CircusDaemon
import Testing

@Suite("Job scheduler")
struct JobSchedulerTests {
    /// Submits jobs that record when they start and hand back their `done`.
    final class Recorder {
        let scheduler = JobScheduler()
        var started: [String] = []
        var finishers: [String: () -> Void] = [:]

        func submit(_ name: String, _ scope: JobScope) {
            scheduler.submit(scope) { [unowned self] done in
                self.started.append(name)
                self.finishers[name] = done
            }
        }

        func finish(_ name: String) { finishers.removeValue(forKey: name)?() }
    }

    @Test func jobsOnDifferentWatchersRunSideBySide() {
        let r = Recorder()
        r.submit("stop a", .watchers(["a"]))
        r.submit("incr b", .watchers(["b"]))
        #expect(r.started == ["stop a", "incr b"])
    }

    @Test func aJobOnTheSameWatcherWaitsItsTurn() {
        let r = Recorder()
        r.submit("stop a", .watchers(["a"]))
        r.submit("start a", .watchers(["a"]))
        #expect(r.started == ["stop a"])
        r.finish("stop a")
        #expect(r.started == ["stop a", "start a"])
    }

    @Test func anArbiterJobWaitsForEverythingAndHoldsEverythingBack() {
        let r = Recorder()
        r.submit("stop a", .watchers(["a"]))
        r.submit("quit", .all)
        r.submit("incr b", .watchers(["b"]))
        #expect(r.started == ["stop a"], "incr b must not overtake the quit queued before it")
        r.finish("stop a")
        #expect(r.started == ["stop a", "quit"])
        r.finish("quit")
        #expect(r.started == ["stop a", "quit", "incr b"])
        #expect(!r.scheduler.isIdle)
        r.finish("incr b")
        #expect(r.scheduler.isIdle)
    }

    @Test func orderIsKeptBehindAWaitingJob() {
        let r = Recorder()
        r.submit("stop a", .watchers(["a"]))
        r.submit("stop a+b", .watchers(["a", "b"]))
        r.submit("incr b", .watchers(["b"]))
        #expect(r.started == ["stop a"], "incr b waits for the earlier job on b, itself waiting for a")
        r.finish("stop a")
        #expect(r.started == ["stop a", "stop a+b"])
    }

    @Test func aJobThatFinishesAtOnceLetsTheNextOneStart() {
        let scheduler = JobScheduler()
        var order: [Int] = []
        for i in 0..<3 {
            scheduler.submit(.all) { done in
                order.append(i)
                done()
                done()  // a second call is ignored
            }
        }
        #expect(order == [0, 1, 2])
        #expect(scheduler.isIdle)
    }
}
