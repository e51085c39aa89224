// Running plugins: events in, commands and hooks answered, the namespace enforced, a
// blocked plugin that costs the caller nothing and drops its oldest events, requests that
// time out or are cancelled, and registrations ended (dtors) before destroy. Each runs in
// process and isolated (in a circus-plugin-host process): the plugin cannot tell.

import CircusPluginHost
import CircusProtocol
import CircusSystem
import Glibc
import OrderedCollections
import Synchronization
import Testing

@Suite struct PluginHostTests {
    /// A host with the probe plugin built and loaded, and its instance `probe` started.
    struct Probe {
        let directory: TemporaryDirectory
        let bus = RecordingBus()
        let host: PluginHost
        let path: String
        let library: PluginLibrary

        let mode: Mode

        init(_ mode: Mode, capacity: Int = 1024, config: JSONObject = [:], start: Bool = true,
             directory: TemporaryDirectory? = nil, configure: (inout PluginHost.Configuration) -> Void = { _ in }) throws {
            self.mode = mode
            self.directory = try directory ?? TemporaryDirectory()
            var configuration = PluginHost.Configuration()
            configuration.queueCapacity = capacity
            configure(&configuration)
            host = try PluginHost(bus: bus, configuration: configuration)
            path = try Build.plugin(Build.probe, into: self.directory.path, as: "probe.so")
            library = try host.load(path, mode)
            if start {
                try host.startAndWait("probe", of: library, config: config, stateDirectory: self.directory.path, mode: mode)
            }
        }

        var journal: String { (try? probeJournal(directory.path)) ?? "" }

        /// Waits for the probe's timer, due 1 ms after its start: after it, nothing wakes
        /// the instance's thread but what the test sends.
        func waitForItsTimer() throws {
            _ = try bus.wait(for: "plugin.probe.timer") { r in r.events.first { $0.topic == "plugin.probe.timer" } }
        }

        func close() {
            try? host.stopAndWait("probe")
            host.shutdown()
            directory.remove()
        }
    }

    @Test(arguments: Mode.allCases) func theExamplePluginCountsWatcherEventsAndAnswersItsCommand(_ mode: Mode) throws {
        let (directory, bus, host) = try startCounter(mode)
        defer {
            host.shutdown()
            directory.remove()
        }

        let command = try bus.wait(for: "counter.count to be registered") { $0.commands["counter.count"] }
        #expect(command.instance == "counter")
        #expect(command.access == .readOnly)
        #expect(command.help == "how many watcher events this instance has seen")

        // Its timer publishes ticks under its own namespace.
        let tick = try bus.wait(for: "a tick") { r in r.events.first { $0.topic == "plugin.counter.tick" } }
        #expect(tick.payload["count"] == 0)

        for pid in 1...3 { host.deliver(EventMessage(topic: "watcher.web.spawn", payload: ["pid": .int(Int64(pid))])) }
        host.deliver(EventMessage(topic: "arbiter.stop", payload: [:]))  // not subscribed
        // FIFO: the command is answered after the four events were handled.
        #expect(try host.call("counter.count").get()["count"] == 3)

        let info = try #require(host.instance("counter"))
        #expect(info.plugin == "example")
        #expect(info.state == .started)
        #expect(info.abiMajor == 1 && info.abiMinor == 0)
        #expect(info.droppedEvents == 0)
        #expect(info.isolated == mode.isolated)
        #expect(info.restarts == 0)
        #expect((info.pid != nil) == mode.isolated)

        try host.stopAndWait("counter")
        #expect(host.instance("counter")?.state == .stopped)
        #expect(bus.record.withLock { $0.unregisteredCommands } == ["counter.count"])
        let after = try host.call("counter.count")
        #expect(after == .failure(PluginRequestError(.notFound, "unknown plugin command: counter.count")))
    }

    @Test(arguments: Mode.allCases) func eventsDeliveredWithADeferredWakeupWaitForItOrForTheNextRequest(_ mode: Mode) throws {
        // circusd hands a loop turn's events over with one wakeup per instance at the end
        // of the turn; a request queued meanwhile runs the events queued before it first.
        let (directory, bus, host) = try startCounter(mode)
        defer {
            host.shutdown()
            directory.remove()
        }

        #expect(host.deliverDeferringWakeup(EventMessage(topic: "watcher.web.spawn", payload: ["pid": 1])))
        #expect(!host.deliverDeferringWakeup(EventMessage(topic: "watcher.web.spawn", payload: ["pid": 2])))
        // Not handled yet: the second tick published after the deliveries was counted
        // after them (the first may have been on its way), and counts none.
        let mark = bus.record.withLock { $0.events.count }
        let ticks = try bus.wait(for: "two ticks after the deliveries") { r -> [EventMessage]? in
            let ticks = r.events.dropFirst(mark).filter { $0.topic == "plugin.counter.tick" }
            return ticks.count >= 2 ? ticks : nil
        }
        #expect(ticks[1].payload["count"] == 0)
        host.wakeDeferred()
        let counted = try bus.wait(for: "a tick counting both events") { r in
            r.events.dropFirst(mark).first { $0.topic == "plugin.counter.tick" && $0.payload["count"] == 2 }
        }
        #expect(counted.payload["count"] == 2)

        #expect(host.deliverDeferringWakeup(EventMessage(topic: "watcher.web.spawn", payload: ["pid": 3])))
        #expect(try host.call("counter.count").get()["count"] == 3)
        host.wakeDeferred()
        try host.stopAndWait("counter")
    }

    @Test func eventsWokenForReachTheInstanceWhenTheGatheringIsOver() throws {
        // A turn's events wait up to `eventGathering` (5 ms) for the instance's thread, so
        // that a burst over many turns costs one wake-up; then they run with nothing else
        // to wake the thread (the probe's one timer is past).
        let probe = try Probe(.inProcess)
        defer { probe.close() }
        try probe.waitForItsTimer()
        #expect(probe.host.deliverDeferringWakeup(EventMessage(topic: "watcher.web.spawn", payload: ["pid": 1])))
        probe.host.wakeDeferred()
        let seen = try probe.bus.wait(for: "plugin.probe.seen") { r in r.events.first { $0.topic == "plugin.probe.seen" } }
        #expect(seen.payload["topic"] == "watcher.web.spawn")
    }

    @Test func aRequestBehindGatheringEventsIsServedAtOnceAfterThem() throws {
        // Here the gathering would hold the event for an hour: the request wakes the thread.
        let probe = try Probe(.inProcess) { $0.eventGathering = .seconds(3600) }
        defer { probe.close() }
        try probe.waitForItsTimer()
        #expect(probe.host.deliverDeferringWakeup(EventMessage(topic: "watcher.web.spawn", payload: ["pid": 1])))
        probe.host.wakeDeferred()
        #expect(try probe.host.call("probe.count").get()["count"] == 1)
    }

    @Test(arguments: Mode.allCases) func publishingOutsideItsNamespaceIsRefused(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        #expect(try probe.host.call("probe.publish_outside").get() == ["rc": .int(Int64(-1))])
        #expect(try probe.host.call("probe.publish_inside").get() == ["rc": 0])
        // The inside publish came after the outside one, so by now the latter would show.
        let hello = try probe.bus.wait(for: "plugin.probe.hello") { r in r.events.first { $0.topic == "plugin.probe.hello" } }
        #expect(hello.payload == ["hi": 1])
        #expect(probe.bus.record.withLock { r in r.events.filter { $0.topic.hasPrefix("watcher.") } }.isEmpty)
        let refusal = probe.bus.record.withLock { r in r.logs.first { $0.message.contains("watcher.web.spawn") } }
        #expect(refusal?.message == "plugin probe tried to publish \"watcher.web.spawn\": it may publish only under \"plugin.probe.\"")
    }

    @Test(arguments: Mode.allCases) func aBlockedPluginCostsTheCallerNothingAndDropsItsOldestEvents(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        let fifo = try FIFO(in: directory.path, named: "block")
        defer { fifo.close() }
        let probe = try Probe(mode, capacity: 4, config: ["block_path": .string(fifo.path)], directory: directory)
        defer { probe.close() }
        let host = probe.host

        host.deliver(EventMessage(topic: "watcher.test.block", payload: [:]))
        _ = try probe.bus.wait(for: "the probe to block") { r in r.events.first { $0.topic == "plugin.probe.blocked" } }

        // Ten events to a plugin stuck in a callback, from another thread with a deadline,
        // so that a blocking deliver fails the test instead of hanging it.
        let delivered = Outcomes<Bool>()
        let deliverer = try OSThread.start(name: "test") {
            for i in 1...10 { host.deliver(EventMessage(topic: "watcher.test.e\(i)", payload: ["i": .int(Int64(i))])) }
            delivered.put(true)
        }
        _ = try delivered.first("ten deliveries to return while the plugin is blocked", timeout: 10)
        deliverer.join()
        // In process the counts are known at once; isolated, once the host reported them.
        _ = try waitUntil("four queued and six dropped") {
            host.instance("probe").map { $0.queueDepth == 4 && $0.droppedEvents == 6 } == true ? true : nil
        }

        // A request is not dropped: with the queue full it fails at once with BUSY.
        let busy = try host.call("probe.count")
        #expect(busy == .failure(PluginRequestError(.busy, "plugin probe is busy: its queue of 4 items is full; retry later")))

        // Unblock: the four newest events are handled, then the drop count is published.
        fifo.write(1)
        let dropped = try probe.bus.wait(for: "plugin.probe.dropped") { r in r.events.first { $0.topic == "plugin.probe.dropped" } }
        #expect(dropped.payload["count"] == 6)
        let seen = probe.bus.events("plugin.probe.seen").compactMap { $0.payload["topic"]?.stringValue }
        #expect(seen == ["watcher.test.e7", "watcher.test.e8", "watcher.test.e9", "watcher.test.e10"])
        // Published once the queue had drained: after the last of the four.
        let topics = probe.bus.record.withLock { r in r.events.map(\.topic) }
        let lastSeen = try #require(topics.lastIndex(of: "plugin.probe.seen"))
        #expect(topics.firstIndex(of: "plugin.probe.dropped").map { $0 > lastSeen } == true)
        #expect(probe.bus.record.withLock { r in r.logs.contains { $0.message == "plugin probe was too slow: 6 events were dropped" } })
        // And it serves again; it handled the blocking event and the four newest.
        #expect(try host.call("probe.count").get() == ["count": 5])
    }

    @Test(arguments: Mode.allCases) func aRequestThePluginNeverAnswersTimesOutAndALateReplyIsAccepted(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        let replies = Outcomes<Result<JSONObject, PluginRequestError>>()
        probe.host.invokeCommand(named: "probe.never", arguments: [:], deadline: .milliseconds(50)) { replies.put($0) }
        let reply = try replies.first("the timeout")
        #expect(reply == .failure(PluginRequestError(.timeout, "plugin probe did not answer probe.never within 0.05 s")))
        // The plugin answers after the deadline: accepted (CIRCUS_OK) and dropped.
        #expect(try probe.host.call("probe.answer_held").get() == ["rc": 0])
        #expect(replies.all.count == 1)
    }

    @Test(arguments: Mode.allCases) func stoppingAnswersPendingRequestsAndEndsRegistrationsBeforeDestroy(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        let replies = Outcomes<Result<JSONObject, PluginRequestError>>()
        probe.host.invokeCommand(named: "probe.never", arguments: [:], deadline: .seconds(600)) { replies.put($0) }
        // FIFO: once count is answered, never has been handed to the plugin.
        #expect(try probe.host.call("probe.count").get() == ["count": 0])
        try probe.host.stopAndWait("probe")
        #expect(replies.all == [.failure(PluginRequestError(.cancelled, "plugin probe was stopped before it answered"))])
        #expect(probe.journal
            == "create,start,stop,dtor:subscription,dtor:command,dtor:timer,destroy")
        let record = probe.bus.record.withLock { $0 }
        #expect(record.commands.isEmpty)
        #expect(record.unregisteredCommands.count == 12)
        #expect(record.hooks.isEmpty)
        #expect(record.unregisteredHooks.count == 1)
        #expect(probe.host.instance("probe")?.state == .stopped)
    }

    @Test(arguments: Mode.allCases) func hooksAnswerAllowOrDeny(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        let hook = try probe.bus.wait(for: "the hook") { $0.hooks.first }
        #expect(hook.hookName == "before_start")
        #expect(hook.watcherPattern == "web*")
        for (watcher, expected) in [("web1", true), ("web_denied", false)] {
            let outcome = Outcomes<Result<Bool, PluginRequestError>>()
            probe.host.invokeHook(
                hook.id, request: ["watcher": .string(watcher), "hook": "before_start", "time": 1.5],
                deadline: .seconds(10)) { outcome.put($0) }
            #expect(try outcome.first("the hook's answer").get() == expected)
        }
    }

    @Test(arguments: Mode.allCases) func aPluginCallsDaemonCommandsAndGetsTheReplyOnItsQueue(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        let reply = try probe.host.call("probe.call_daemon").get()
        #expect(reply == ["st": 0, "reply": ["status": "active"]])
        let call = try #require(probe.bus.record.withLock { $0.calls.first })
        #expect(call.name == "status" && call.arguments == ["name": "web"] && call.instance == "probe")
    }

    @Test(arguments: Mode.allCases) func aSecondReplyIsRefusedAndThePluginsErrorReachesTheRequester(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        #expect(try probe.host.call("probe.reply_twice").get() == ["first": true])
        let second = try probe.bus.wait(for: "the second reply's status") { r in
            r.events.first { $0.topic == "plugin.probe.second_reply" }
        }
        #expect(second.payload == ["rc": .int(Int64(-2))])  // CIRCUS_E_NOT_FOUND
        #expect(try probe.host.call("probe.fail") == .failure(PluginRequestError(.invalid, "probe refuses")))
    }

    @Test(arguments: Mode.allCases) func aCreateFailureReportsThePluginsReason(_ mode: Mode) throws {
        let probe = try Probe(mode, start: false)
        defer { probe.close() }
        let outcome = Outcomes<Result<Void, PluginInstanceError>>()
        try probe.host.startInstance("probe", of: probe.library, config: ["fail_create": true],
                                     stateDirectory: probe.directory.path) { outcome.put($0) }
        let result = try outcome.first("create to fail")
        #expect(throws: PluginInstanceError(instance: "probe", status: -1, message: "fail_create: the probe was asked to fail")) {
            try result.get()
        }
        #expect(probe.host.instance("probe")?.state == .failed)
        #expect(probe.host.instance("probe")?.failure == "fail_create: the probe was asked to fail")
    }

    @Test(arguments: Mode.allCases) func instanceNamesAreChecked(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        let bad = #expect(throws: PluginLoadError.self) {
            try probe.host.startInstance("Bad-Name", of: probe.library, config: [:], stateDirectory: probe.directory.path) { _ in }
        }
        #expect(bad?.message == "cannot start plugin instance Bad-Name of \(probe.path): its name is not made of [a-z0-9_] only")
        let taken = #expect(throws: PluginLoadError.self) {
            try probe.host.startInstance("probe", of: probe.library, config: [:], stateDirectory: probe.directory.path) { _ in }
        }
        #expect(taken?.message == "cannot start plugin instance probe of \(probe.path): an instance of that name is already running")
    }

    @Test(arguments: Mode.allCases) func aWatchedDescriptorCallsThePluginWhenReadable(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        let fifo = try FIFO(in: directory.path, named: "watch")
        defer { fifo.close() }
        let probe = try Probe(mode, config: ["watch_path": .string(fifo.path)], directory: directory)
        defer { probe.close() }
        for byte: UInt8 in [65, 66] {
            fifo.write(byte)
            let readable = try probe.bus.wait(for: "byte \(byte)") { r in
                r.events.first { $0.topic == "plugin.probe.readable" && $0.payload["byte"] == .int(Int64(byte)) }
            }
            #expect(readable.payload == ["byte": .int(Int64(byte))])
        }
    }

    @Test(arguments: Mode.allCases) func aTaskPostedFromAPluginThreadRunsOnTheQueueAndItsDtorFollows(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        #expect(try probe.host.call("probe.post_from_thread").get() == ["posted": true])
        // The dtor runs right after the task, before anything queued later.
        #expect(try probe.host.call("probe.count").get() == ["count": 0])
        #expect(probe.journal == "create,start,dtor:task")
    }

    @Test(arguments: Mode.allCases) func theTimerFiresOnTheInstancesQueue(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        _ = try probe.bus.wait(for: "the probe's timer") { r in r.events.first { $0.topic == "plugin.probe.timer" } }
    }

    @Test(arguments: Mode.allCases) func reconfigureCallsThePluginInPlace(_ mode: Mode) throws {
        let probe = try Probe(mode)
        defer { probe.close() }
        let outcome = Outcomes<Result<Void, PluginInstanceError>>()
        probe.host.reconfigureInstance("probe", config: ["x": 1], stateDirectory: probe.directory.path) { outcome.put($0) }
        try outcome.first("reconfigure").get()
        #expect(probe.journal == "create,start,reconfigure")
    }

    @Test(arguments: Mode.allCases) func reconfigureWithoutTheSlotRecreatesTheInstance(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.probe, into: directory.path, as: "old.so", defines: ["-DPROBE_OLD_VTABLE"])
        let bus = RecordingBus()
        let host = try PluginHost(bus: bus)
        defer { host.shutdown() }
        let library = try host.load(path, mode)
        try host.startAndWait("old", of: library, stateDirectory: directory.path, mode: mode)
        #expect(try host.call("old.publish_inside").get() == ["rc": 0])
        let outcome = Outcomes<Result<Void, PluginInstanceError>>()
        host.reconfigureInstance("old", config: ["x": 1], stateDirectory: directory.path) { outcome.put($0) }
        try outcome.first("reconfigure").get()
        #expect(try probeJournal(directory.path)
            == "create,start,stop,dtor:subscription,dtor:command,dtor:timer,destroy,create,start")
        // The new instance serves, from scratch.
        #expect(try host.call("old.count").get() == ["count": 0])
        #expect(host.instance("old")?.state == .started)
        try host.stopAndWait("old")
    }

    @Test(arguments: Mode.allCases) func aBurstLongerThanABatchIsHandledWhole(_ mode: Mode) throws {
        // The queue runs in batches (timers and descriptors get turns in between): every
        // event of a long burst is still handled, and the request behind them answered.
        let probe = try Probe(mode)
        defer { probe.close() }
        for i in 1...1000 { probe.host.deliver(EventMessage(topic: "watcher.burst.e\(i)", payload: [:])) }
        #expect(try probe.host.call("probe.count").get() == ["count": 1000])
        #expect(probe.host.instance("probe")?.droppedEvents == 0)
    }

    /// The C example plugin started as `counter` (ticking every 5 ms) on a fresh host.
    private func startCounter(_ mode: Mode) throws -> (TemporaryDirectory, RecordingBus, PluginHost) {
        let directory = try TemporaryDirectory()
        let bus = RecordingBus()
        let host = try PluginHost(bus: bus)
        do {
            let library = try host.load(try Build.plugin(Build.example, into: directory.path, as: "example.so"), mode)
            try host.startAndWait("counter", of: library, config: ["interval_ms": 5], stateDirectory: directory.path, mode: mode)
        } catch {
            host.shutdown()
            directory.remove()
            throw error
        }
        return (directory, bus, host)
    }
}
