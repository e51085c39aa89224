// The example plugins in Swift and Rust, each built with its own toolchain from its own
// directory (Plugins/example-swift with SwiftPM, Plugins/example-rust with Cargo), then
// loaded by the real plugin host with dlopen and driven with events and a command.

import CircusPluginHost
import CircusProtocol
import Foundation
import Glibc
import OrderedCollections
import Testing

@Suite struct ExamplePluginTests {
    /// Delivers three watcher events and one other, then asks the count: the command is
    /// queued behind the events, so it sees all of them.
    static func countsWatcherEvents(_ plugin: LoadedPlugin, name: String) throws {
        try plugin.start("counter", [:])
        let info = try #require(plugin.host.instance("counter"))
        #expect(info.plugin == name)
        #expect(info.version == "1.0.0")

        plugin.event("web", "spawn", ["process_pid": 10])
        plugin.event("web", "reap", ["process_pid": 10, "exit_code": 0])
        plugin.host.deliver(EventMessage(topic: "plugin.other.tick", payload: [:]))
        plugin.event("db", "stop")
        #expect(try plugin.command("counter.count") == ["count": 3])
    }

    @Test func theSwiftExampleCountsWatcherEvents() throws {
        let plugin = try LoadedPlugin(building: { directory in
            // A package of its own, in a build directory of its own.
            try runTool("swift", ["build", "--package-path", "\(ShippedPlugin.root)/Plugins/example-swift",
                                  "--scratch-path", "\(directory)/build"])
            return "\(directory)/build/debug/libexample_swift.so"
        })
        defer { plugin.close() }
        try Self.countsWatcherEvents(plugin, name: "example_swift")
        #expect(plugin.bus.logs.contains("counting watcher events (Swift)"))
    }

    /// Cargo from PATH or rustup's default place; nil when Rust is not installed.
    static let cargo: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        let candidates = path.split(separator: ":").map { "\($0)/cargo" } + ["\(home)/.cargo/bin/cargo"]
        return candidates.first { access($0, X_OK) == 0 }
    }()

    @Test(.enabled(if: cargo != nil, "cargo is not installed (rustup.rs): the Rust example plugin is not built"))
    func theRustExampleCountsWatcherEvents() throws {
        let cargo = try #require(Self.cargo)
        let plugin = try LoadedPlugin(building: { directory in
            // std only: no crate to fetch, so it builds offline.
            try runTool(cargo, ["build", "--offline", "--release",
                                "--manifest-path", "\(ShippedPlugin.root)/Plugins/example-rust/Cargo.toml",
                                "--target-dir", "\(directory)/target"])
            return "\(directory)/target/release/libexample_rust.so"
        })
        defer { plugin.close() }
        try Self.countsWatcherEvents(plugin, name: "example_rust")
        #expect(plugin.bus.logs.contains("counting watcher events (Rust)"))
    }
}

/// `active = false` is served, not ignored: the plugin starts and says it does nothing.
@Suite struct InactivePluginTests {
    @Test(arguments: [
        (ShippedPlugin.resourceWatcher, "inactive (active = false): web is not looked after"),
        (ShippedPlugin.commandReloader, "inactive (active = false): no command is watched"),
        (ShippedPlugin.httpObserver, "inactive (active = false): nothing is fetched"),
        (ShippedPlugin.redisObserver, "inactive (active = false): nothing is read"),
    ])
    func anInactivePluginSaysSo(plugin kind: ShippedPlugin, message: String) throws {
        let plugin = try LoadedPlugin(kind)
        defer { plugin.close() }
        try plugin.start("off", ["watcher": "web", "active": "false"])
        #expect(plugin.bus.logs.contains(message))
        #expect(try plugin.startFailure("bad", ["watcher": "web", "active": "maybe"])
            == "option active = \"maybe\": not a boolean (use true/false, yes/no, on/off or 1/0)")
    }
}
