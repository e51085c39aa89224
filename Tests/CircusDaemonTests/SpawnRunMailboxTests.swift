// When the hook thread of a spawn run asks the loop to take its reports: the first report
// of a batch within a millisecond (others follow), the run's end at once, and nothing early
// for the last worker's steps, whose end comes right after them.

@testable import CircusDaemon
import CircusConfig
import CircusHooks
import Testing

@Suite("Spawn run mailbox")
struct SpawnRunMailboxTests {
    private let answered = SpawnRunReport.hook(.afterSpawn, .returned(true), micros: 1)

    @Test func aBatchAsksForOneDeferredLookAndTheEndForAnImmediateOne() {
        let mailbox = SpawnRun.Mailbox()
        #expect(mailbox.add(answered, more: true) == .soon)
        #expect(mailbox.add(answered, more: true) == .none)
        #expect(mailbox.add(.ended(next: 2), more: false) == .now)
        #expect(mailbox.add(.ended(next: 2), more: false) == .none)
        #expect(mailbox.take().reports.count == 4)
        // Taken: the next batch asks again.
        #expect(mailbox.add(answered, more: true) == .soon)
    }

    @Test func theLastWorkersStepsWaitForTheRunsEnd() {
        let mailbox = SpawnRun.Mailbox()
        #expect(mailbox.add(answered, more: false) == .none)
        #expect(mailbox.add(answered, more: false) == .none)
        #expect(mailbox.add(.ended(next: 1), more: false) == .now)
        #expect(mailbox.take().reports.count == 3)
    }
}
