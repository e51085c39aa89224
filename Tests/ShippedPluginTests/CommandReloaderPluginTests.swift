// The command_reloader plugin, loaded through the real plugin host, watching real files:
// the test answers `list` and `get` as circusd does, changes the file a watcher's cmd
// names, and records the plugin's `restart`.

import CircusPluginHost
import CircusProtocol
import Foundation
import Glibc
import OrderedCollections
import Testing

@Suite struct CommandReloaderPluginTests {
    /// Plays circusd: watchers `app` (with `cmd` and `working_dir`) and a plugin watcher.
    static func daemon(cmd: String, workingDir: String) -> DaemonBus.Answer {
        { command, arguments in
            switch command {
            case "list":
                return .success(["watchers": ["app", "plugin:other"]])
            case "get" where arguments["name"] == "app":
                return .success(["options": ["cmd": .string(cmd), "working_dir": .string(workingDir)]])
            case "restart" where arguments["name"] == "app":
                return .success([:])
            default:
                return .failure(.programNotFound(arguments["name"]?.stringValue ?? ""))
            }
        }
    }

    static func write(_ path: String, _ text: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o755)
    }

    static func modificationTime(_ path: String) throws -> timespec {
        var info = stat()
        guard stat(path, &info) == 0 else { throw TestFailure("stat \(path): errno \(errno)") }
        return info.st_mtim
    }

    static func inode(_ path: String) throws -> UInt {
        var info = stat()
        guard stat(path, &info) == 0 else { throw TestFailure("stat \(path): errno \(errno)") }
        return info.st_ino
    }

    static func setModificationTime(_ path: String, _ time: timespec) throws {
        var times = [time, time]
        guard utimensat(AT_FDCWD, path, &times, 0) == 0 else { throw TestFailure("utimensat: errno \(errno)") }
    }

    /// Waits until `rounds` rounds have started (a round starts once the previous one is
    /// over, so every earlier round has been compared and recorded).
    static func waitForRounds(_ plugin: LoadedPlugin, _ rounds: Int) throws {
        try plugin.bus.waitForCalls("round \(rounds)", count: rounds) { $0.name == "list" }
    }

    @Test func aNewModificationTimeRestartsTheWatcher() throws {
        let plugin = try LoadedPlugin(.commandReloader)
        defer { plugin.close() }
        let path = "\(plugin.directory)/app.sh"
        try Self.write(path, "#!/bin/sh\nexec sleep 100\n")
        plugin.bus.answer(Self.daemon(cmd: path, workingDir: "/"))
        try plugin.start("reloader", ["use": "circus.plugins.command_reloader.CommandReloader", "loop_rate": "0.05"])

        try Self.waitForRounds(plugin, 3)
        #expect(!plugin.bus.calls.contains { $0.name == "restart" }, "an unchanged file restarts nothing")
        #expect(plugin.bus.calls.filter { $0.name == "get" }.allSatisfy {
            $0.arguments == ["name": "app", "keys": ["cmd", "working_dir"]]
        })

        var later = try Self.modificationTime(path)
        later.tv_sec += 10
        try Self.setModificationTime(path, later)
        let restart = try plugin.bus.waitForCalls("the restart", count: 1) { $0.name == "restart" }[0]
        #expect(restart.arguments == ["name": "app"])
        let real = try #require(realpath(path, nil))
        defer { free(real) }
        #expect(plugin.bus.logs.contains("\(String(cString: real)) modified. Restarting."))

        // Recorded again: the next rounds do not restart it a second time.
        let seen = plugin.bus.calls.filter { $0.name == "list" }.count
        try Self.waitForRounds(plugin, seen + 2)
        #expect(plugin.bus.calls.filter { $0.name == "restart" }.count == 1)
    }

    @Test func aFileReplacedWithTheSameTimeCountsAndArgumentsAreNotPartOfThePath() throws {
        let plugin = try LoadedPlugin(.commandReloader)
        defer { plugin.close() }
        let path = "\(plugin.directory)/app.sh"
        try Self.write(path, "#!/bin/sh\nexec sleep 100\n")
        // A relative command with arguments, from the watcher's working_dir.
        plugin.bus.answer(Self.daemon(cmd: "./app.sh --port 8080", workingDir: plugin.directory))
        try plugin.start("reloader", ["loop_rate": "0.05"])
        try Self.waitForRounds(plugin, 3)

        // A new build moved into place, carrying the old file's time (as `cp -p` would).
        let replacement = "\(plugin.directory)/app.new"
        try Self.write(replacement, "#!/bin/sh\nexec sleep 200\n")
        try Self.setModificationTime(replacement, try Self.modificationTime(path))
        let oldInode = try Self.inode(path)
        guard rename(replacement, path) == 0 else { throw TestFailure("rename: errno \(errno)") }
        #expect(try Self.inode(path) != oldInode)

        let restart = try plugin.bus.waitForCalls("the restart", count: 1) { $0.name == "restart" }[0]
        #expect(restart.arguments == ["name": "app"])
    }

    @Test func aMissingFileIsLoggedOnceAndRestartsNothing() throws {
        let plugin = try LoadedPlugin(.commandReloader)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon(cmd: "/nonexistent/app --flag", workingDir: "/"))
        try plugin.start("reloader", ["loop_rate": "0.05"])
        try Self.waitForRounds(plugin, 4)
        #expect(plugin.bus.logs.filter { $0.contains("cannot find") } == [
            "app: cannot find the file of its command \"/nonexistent/app --flag\": No such file or directory",
        ])
        #expect(!plugin.bus.calls.contains { $0.name == "restart" })
    }

    @Test func aBadLoopRateIsRefusedByName() throws {
        let plugin = try LoadedPlugin(.commandReloader)
        defer { plugin.close() }
        #expect(try plugin.startFailure("r1", ["loop_rate": "often"]) == "option loop_rate = \"often\": not a number")
        #expect(try plugin.startFailure("r2", ["loop_rate": "0"]) == "option loop_rate = \"0\": must be at least 0.001")
    }
}
