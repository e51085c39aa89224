// The watchdog plugin, loaded through the real plugin host: heartbeats sent over real UDP
// (Circus's protocol) and over a real AF_UNIX datagram socket (systemd's WATCHDOG=1) keep
// a process alive; silence gets it the `kill` command. The test plays circusd: it answers
// `list` and `kill` and records them (nothing is really killed).

import CircusPluginHost
import CircusProtocol
import CircusSystem
import Glibc
import OrderedCollections
import Testing

@Suite struct WatchdogPluginTests {
    /// circusd with the watchers `web` (pid 101 running) and `other` (pid 201).
    static func daemon(_ name: String, _ arguments: JSONObject) -> Result<JSONObject, CommandError> {
        switch (name, arguments["name"]?.stringValue) {
        case ("list", nil): return .success(["watchers": ["other", "web"]])
        case ("list", "web"): return .success(["pids": [101]])
        case ("list", "other"): return .success(["pids": [201]])
        case ("kill", _): return .success([:])
        default: return .failure(.unknownCommand(name))
        }
    }

    static func port(_ plugin: LoadedPlugin, _ instance: String) throws -> UInt16 {
        let status = try plugin.command("\(instance).status")
        let address = try #require(status["udp"]?.stringValue)
        return try #require(address.split(separator: ":").last.flatMap { UInt16($0) })
    }

    static func kills(_ plugin: LoadedPlugin) -> [String] {
        plugin.bus.calls.filter { $0.name == "kill" }.map { "\($0.arguments["name"]?.stringValue ?? "") \($0.arguments["pid"]?.intValue ?? 0)" }
    }

    @Test(arguments: [false, true]) func heartbeatsKeepAProcessAliveAndSilenceGetsItKilled(isolated: Bool) throws {
        let plugin = try LoadedPlugin(.watchdog, isolated: isolated)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon)
        try plugin.start("watchdog", [
            "use": "circus.plugins.watchdog.WatchDog", "ip": "127.0.0.1", "port": "0", "loop_rate": "0.2",
            "max_count": "3", "watchers_regex": "^web$", "watchers_stop_signal": "SIGKILL",
            "watchers_graceful_timeout": "2.5",
        ])
        let port = try Self.port(plugin, "watchdog")
        // 101 is found through `list` (only web's processes: `other` does not match).
        try plugin.bus.waitForCalls("the processes of web", count: 1) {
            $0.name == "list" && $0.arguments["name"] == "web"
        }
        plugin.event("web", "spawn", ["process_pid": 102])
        plugin.event("other", "spawn", ["process_pid": 202])

        let lastBeat = Slot<Double>()
        let beating = Repeater(every: 0.03) {
            lastBeat.put(EventLoop.monotonicNow())
            sendUDP("101;\(EventLoop.wallNow())\n", to: port)
        }
        // 102 never sends: killed after 3 loops of silence (0.6 s).
        let first = try plugin.bus.waitForCalls("the kill of 102", count: 1) { $0.name == "kill" }[0]
        #expect(first.arguments == ["name": "web", "pid": 102, "signum": 9, "graceful_timeout": 2.5])

        try beating.stop()
        let silentSince = try #require(lastBeat.get)
        let second = try plugin.bus.waitForCalls("the kill of 101", count: 2) { $0.name == "kill" }[1]
        #expect(second.arguments["pid"] == 101)
        #expect(second.at - silentSince >= 0.6)
        // 202 (watcher other) and 201 were never watched, else their kills would have come first.
        #expect(Self.kills(plugin) == ["web 102", "web 101"])
        #expect(!plugin.bus.calls.contains { $0.name == "list" && $0.arguments["name"] == "other" })
        try plugin.bus.waitForLog("watcher:web, pid:102 is not responding. Kill it !")
    }

    @Test(arguments: [false, true]) func aReapedProcessIsForgotten(isolated: Bool) throws {
        let plugin = try LoadedPlugin(.watchdog, isolated: isolated)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon)
        try plugin.start("watchdog", ["port": "0", "loop_rate": "0.05", "max_count": "2", "watchers_regex": "web"])
        plugin.event("web", "spawn", ["process_pid": 102])
        plugin.event("web", "reap", ["process_pid": 102, "exit_code": 0])
        plugin.event("web", "spawn", ["process_pid": 103])
        // 101 (listed) and 103 fall silent; 102 ended before 103 began, so had it been
        // kept, it would have been killed by the loop that kills 103, or an earlier one.
        try plugin.bus.waitForCalls("the kill of 103", count: 1) { $0.name == "kill" && $0.arguments["pid"] == 103 }
        _ = try plugin.command("watchdog.status")  // after that loop has finished
        #expect(Set(Self.kills(plugin)) == ["web 101", "web 103"])
        // The kill has no signum nor graceful_timeout: the watcher's own apply.
        #expect(plugin.bus.calls.first { $0.name == "kill" }?.arguments.keys.sorted() == ["name", "pid"])
    }

    @Test(arguments: [false, true]) func aCustomMessageFormatIsDecoded(isolated: Bool) throws {
        let plugin = try LoadedPlugin(.watchdog, isolated: isolated)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon)
        try plugin.start("watchdog", [
            "port": "0", "loop_rate": "0.1", "max_count": "3", "watchers_regex": "web",
            "msg_regex": #"^hb (?:from )?(?P<pid>\d+)\s*$"#,
        ])
        let port = try Self.port(plugin, "watchdog")
        plugin.event("web", "spawn", ["process_pid": 102])
        let beating = Repeater(every: 0.03) {
            sendUDP("hb from 101", to: port)
            sendUDP("102;\(EventLoop.wallNow())", to: port)  // the default format: no longer understood
        }
        defer { try? beating.stop() }
        let first = try plugin.bus.waitForCalls("the kill of 102", count: 1) { $0.name == "kill" }[0]
        #expect(first.arguments["pid"] == 102)
        let status = try plugin.command("watchdog.status")
        let silent = try #require(status["pids"]?["101"]?["silent"]?.doubleValue)
        #expect(silent < 0.3)
    }

    @Test(arguments: [false, true]) func systemdWatchdogNotificationsKeepAProcessAlive(isolated: Bool) throws {
        let plugin = try LoadedPlugin(.watchdog, isolated: isolated)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon)
        let path = plugin.directory + "/notify"
        try plugin.start("watchdog", [
            "port": "0", "loop_rate": "0.2", "max_count": "3", "watchers_regex": "web", "notify_socket": .string(path),
        ])
        #expect(try plugin.command("watchdog.status")["notify_socket"] == .string(path))
        // The sender is known from its credentials: this test process. Its parent is the
        // monitored one (a program's heartbeat counts for the wrapper that started it).
        let parent = Int64(getppid())
        plugin.event("web", "spawn", ["process_pid": .int(parent)])
        let lastBeat = Slot<Double>()
        let beating = Repeater(every: 0.03) {
            lastBeat.put(EventLoop.monotonicNow())
            sendNotify("READY=1\nWATCHDOG=1\n", to: path)
        }
        // 101 (listed) sends nothing.
        let first = try plugin.bus.waitForCalls("the kill of 101", count: 1) { $0.name == "kill" }[0]
        #expect(first.arguments["pid"] == 101)

        try beating.stop()
        let silentSince = try #require(lastBeat.get)
        let second = try plugin.bus.waitForCalls("the kill of the parent", count: 2) { $0.name == "kill" }[1]
        #expect(second.arguments["pid"] == .int(parent))
        #expect(second.at - silentSince >= 0.6)
    }

    @Test(arguments: [false, true]) func aBadOptionIsRefusedByName(isolated: Bool) throws {
        let plugin = try LoadedPlugin(.watchdog, isolated: isolated)
        defer { plugin.close() }
        #expect(try plugin.startFailure("w1", ["msg_regex": "^(?P<id>.*)$"])
            == "option msg_regex = \"^(?P<id>.*)$\": it needs a group named pid: (?P<pid>...)")
        #expect(try plugin.startFailure("w2", ["msg_regex": "(?=x)(?P<pid>.*)"])
            == "option msg_regex = \"(?=x)(?P<pid>.*)\": (?=...) is not supported (only (?P<name>...) and (?:...) groups)")
        #expect(try plugin.startFailure("w3", ["watchers_stop_signal": "SIGNOPE"])
            == "option watchers_stop_signal = \"SIGNOPE\": not a signal (a number, or a name like TERM)")
        #expect(try plugin.startFailure("w4", ["max_count": "often"]) == "option max_count = \"often\": not an integer")

        // A port already taken is a start error, naming the options.
        let taken = try UDPReceiver()
        let message = try plugin.startFailure("w5", ["ip": "127.0.0.1", "port": .string("\(taken.port)")])
        #expect(message == "options ip, port: cannot listen for heartbeats on 127.0.0.1:\(taken.port): Address already in use")
    }
}
