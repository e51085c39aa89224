import CircusConfig
import CircusCore
import Testing

/// `reload` of a stopped watcher: started as Circus does, or left alone by reload-all.
@Suite struct ReloadStoppedWatcherTests {
    @Test func gracefulReloadOfAStoppedWatcherStartsItThenPublishesReload() {
        var d = Driver { $0.numprocesses = 2 }
        let op = d.command(.reload(graceful: true, sequential: false))
        #expect(d.events == ["spawn 101", "spawn 102", "start", "reload"])
        #expect(d.machine.status == .active)
        #expect(d.finished[op] == OperationResult(started: [101, 102]))
    }

    @Test func nonGracefulReloadOfAStoppedWatcherIsAPlainStart() {
        var d = Driver()
        d.command(.reload(graceful: false, sequential: false))
        #expect(d.events == ["spawn 101", "start"])
    }

    @Test func reloadOfAStoppedWatcherThatCannotSpawnEndsWithoutReload() {
        var d = Driver { $0.maxRetry = 2 }
        d.failSpawns = 2
        let op = d.command(.reload(graceful: true, sequential: false))
        #expect(d.events == ["stop"])
        #expect(d.finished[op]?.failure == "exec 'x': No such file or directory")
    }

    @Test func runningOnlyReloadLeavesAStoppedWatcherStopped() {
        var d = Driver()
        let op = d.command(.reload(graceful: true, sequential: false, runningOnly: true))
        #expect(d.events == [])
        #expect(d.spawnedWids == [])
        #expect(d.machine.status == .stopped)
        #expect(d.finished[op] == OperationResult())
    }

    @Test func runningOnlyReloadQueuedBehindAStopSeesTheWatcherStopped() {
        var d = Driver()
        d.command(.start)
        d.clearLog()
        d.command(.stop)
        // Decided when it begins (after the stop), not when it was queued.
        let op = d.command(.reload(graceful: true, sequential: false, runningOnly: true))
        d.exit(101, code: -15)
        #expect(d.events == ["reap 101 -15", "stop"])
        #expect(d.machine.status == .stopped)
        #expect(d.finished[op] == OperationResult())
    }

    @Test func runningOnlyReloadReloadsARunningWatcher() {
        var d = Driver()
        d.command(.start)
        d.clearLog()
        d.command(.reload(graceful: true, sequential: false, runningOnly: true))
        d.exit(101, code: -15)
        #expect(d.events == ["spawn 102", "reap 101 -15", "reload"])
    }
}
