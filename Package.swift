// swift-tools-version:6.1
// Circus for Swift: a Circus-compatible process supervisor.

import PackageDescription

let upcoming: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// What is written in C and loaded into processes that may hold another Swift runtime
/// (the plugin libraries, the isolated plugins' host) is linked without ours. SwiftPM
/// links every product through the Swift driver, which adds libswiftCore (and swiftrt.o
/// unless -nostartfiles) even to C code; scripts/link-without-swift-runtime keeps only
/// the libraries the code uses and no rpath into a Swift toolchain.
let withoutSwiftRuntime: [LinkerSetting] = [.unsafeFlags([
    "-nostartfiles", "-ld-path=\(Context.packageDirectory)/scripts/link-without-swift-runtime",
])]

let package = Package(
    name: "circus-swift",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "circusd", targets: ["circusd"]),
        // Runs one plugin instance out of circusd's process (`isolate = true`).
        .executable(name: "circus-plugin-host", targets: ["circus-plugin-host"]),
        // Runs a plugin against a running daemon, over its endpoints.
        .executable(name: "circus-plugin", targets: ["circus-plugin"]),
        .library(name: "CircusClient", targets: ["CircusClient"]),
        // The shipped plugins: lib<name>.so next to circusd, each built against
        // include/circus/plugin.h alone.
        .library(name: "flapping", type: .dynamic, targets: ["FlappingPlugin"]),
        .library(name: "statsd", type: .dynamic, targets: ["StatsdPlugin"]),
        .library(name: "watchdog", type: .dynamic, targets: ["WatchdogPlugin"]),
        .library(name: "resource_watcher", type: .dynamic, targets: ["ResourceWatcherPlugin"]),
        .library(name: "command_reloader", type: .dynamic, targets: ["CommandReloaderPlugin"]),
        .library(name: "http_observer", type: .dynamic, targets: ["HttpObserverPlugin"]),
        .library(name: "redis_observer", type: .dynamic, targets: ["RedisObserverPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // System libraries and C shims.
        // No pkgConfig: libzmq's .pc pulls in krb5-gssapi, whose flags (-isystem
        // /usr/include/mit-krb5) SwiftPM prohibits and warns about on every build. The
        // header is in /usr/include and the module map links zmq, which is all we need.
        .systemLibrary(
            name: "CZeroMQ",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .systemLibrary(
            name: "CFFI",
            pkgConfig: "libffi",
            providers: [.apt(["libffi-dev"])]
        ),
        .target(name: "CCircusSys"),
        // The plugin ABI header (include/circus/plugin.h) as a Clang module, for the host.
        .systemLibrary(name: "CCircusPlugin"),

        // Pure layers: no processes, no sockets.
        .target(
            name: "CircusConfig",
            dependencies: [.product(name: "OrderedCollections", package: "swift-collections")],
            swiftSettings: upcoming
        ),
        .target(
            name: "CircusProtocol",
            dependencies: ["CircusConfig", .product(name: "OrderedCollections", package: "swift-collections")],
            swiftSettings: upcoming
        ),
        .target(
            name: "CircusCore",
            dependencies: [
                "CircusConfig",
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),

        // Operating-system and wire layers.
        .target(
            name: "CircusSystem",
            dependencies: ["CCircusSys"],
            swiftSettings: upcoming
        ),
        // Output streams: a writer thread per watcher moving its processes' pipes to files
        // or circusd's stdout in Circus's formats.
        .target(name: "CCircusStreams"),
        .target(
            name: "CircusStreams",
            dependencies: [
                "CCircusStreams", "CircusConfig", "CircusProtocol", "CircusSystem",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),
        .target(
            name: "CircusBus",
            dependencies: ["CZeroMQ"],
            swiftSettings: upcoming
        ),
        .target(
            name: "CircusClient",
            dependencies: ["CircusBus", "CircusProtocol"],
            swiftSettings: upcoming
        ),

        // What the in-process host and the isolated host process share, in C: loading and
        // checking a plugin library, the ABI's name rules, JSON object checks, the frames.
        .target(name: "CCircusPluginLoader", cSettings: [.headerSearchPath("../../include")]),
        // The isolated plugin host process, in C so that no Swift runtime of ours is in it:
        // SwiftPM links executables through the Swift driver, which would add one, so it
        // is linked without the Swift start-up files and with a linker that keeps only the
        // libraries the program uses (scripts/link-without-swift-runtime).
        .executableTarget(
            name: "circus-plugin-host", dependencies: ["CCircusPluginLoader"],
            cSettings: [.headerSearchPath("../../include")],
            linkerSettings: withoutSwiftRuntime
        ),
        // The in-process bus: the command registry and the event bus the supervisor, the
        // control and pub/sub sockets and plugins meet on.
        .target(
            name: "CircusMessageBus",
            dependencies: ["CircusProtocol", .product(name: "OrderedCollections", package: "swift-collections")],
            swiftSettings: upcoming
        ),

        // Plugins: loader, ABI checks, host function table, one executor per instance.
        .target(
            name: "CircusPluginHost",
            dependencies: [
                "CCircusPlugin", "CCircusPluginLoader", "CircusProtocol", "CircusSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),

        // Hooks named in a watcher's configuration: a library symbol with the fixed hook
        // signature, or any C function with a declared signature, called through libffi.
        .target(
            name: "CircusHooks",
            dependencies: [
                "CFFI", "CCircusPlugin", "CircusConfig",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),

        // The supervisor and the executable.
        .target(
            name: "CircusDaemon",
            dependencies: [
                "CircusConfig", "CircusProtocol", "CircusCore", "CircusSystem", "CircusBus", "CircusMessageBus", "CircusHooks",
                "CircusPluginHost", "CircusStreams",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "circus-plugin",
            dependencies: [
                "CircusPluginHost", "CircusClient", "CircusBus", "CircusConfig", "CircusProtocol", "CircusSystem",
                "CircusDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),
        .executableTarget(
            name: "circusd",
            dependencies: [
                "CircusDaemon", "CircusHooks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: upcoming
        ),

        // What isolation costs (Benchmarks/plugin-host/main.swift).
        .executableTarget(
            name: "plugin-host-bench", dependencies: [
                "CircusPluginHost", "CircusProtocol", "CircusSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            path: "Benchmarks/plugin-host", swiftSettings: upcoming
        ),

        // Tests.
        .testTarget(name: "CircusConfigTests", dependencies: ["CircusConfig"], swiftSettings: upcoming),
        .testTarget(name: "CircusProtocolTests", dependencies: ["CircusProtocol"], swiftSettings: upcoming),
        .testTarget(
            name: "CircusCoreTests",
            dependencies: ["CircusCore", "CircusConfig", .product(name: "OrderedCollections", package: "swift-collections")],
            swiftSettings: upcoming
        ),
        .testTarget(name: "CircusSystemTests", dependencies: ["CircusSystem"], swiftSettings: upcoming),
        .testTarget(name: "CircusStreamsTests", dependencies: ["CircusStreams", "CircusConfig"], swiftSettings: upcoming),
        .testTarget(name: "CircusBusTests", dependencies: ["CircusBus", "CircusClient"], swiftSettings: upcoming),
        .testTarget(
            name: "CircusMessageBusTests",
            dependencies: [
                "CircusMessageBus", "CircusProtocol",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CircusDaemonTests",
            dependencies: [
                "CircusConfig", "CircusDaemon", "CircusHooks", "CircusProtocol", "CircusPluginHost", "CircusStreams",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CircusPluginHostTests",
            dependencies: [
                "CircusPluginHost", "CircusProtocol", "CircusSystem", "circus-plugin-host",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: upcoming
        ),
        .testTarget(
            name: "CircusdIntegrationTests",
            dependencies: ["CircusClient", "CircusProtocol"],
            exclude: ["Fixtures"],
            swiftSettings: upcoming
        ),

        // The shipped plugins (Plugins/*): C, with the plugin ABI header and a small shared
        // toolbox (JSON reading, Circus's option parsing, the statsd client, a worker
        // thread for blocking I/O) compiled into each library.
        // (publicHeadersPath "." because a C target without an include directory is refused
        // when it lives outside Sources.)
        .target(
            name: "CircusPluginSupport", path: "Plugins/support",
            cSettings: [.headerSearchPath("../../include")],
            linkerSettings: [.linkedLibrary("pthread")]
        ),
        .target(
            name: "FlappingPlugin", dependencies: ["CircusPluginSupport"], path: "Plugins/flapping",
            exclude: ["Makefile"], publicHeadersPath: ".", cSettings: [.headerSearchPath("../../include")],
            linkerSettings: withoutSwiftRuntime
        ),
        .target(
            name: "StatsdPlugin", dependencies: ["CircusPluginSupport"], path: "Plugins/statsd",
            exclude: ["Makefile"], publicHeadersPath: ".", cSettings: [.headerSearchPath("../../include")],
            linkerSettings: withoutSwiftRuntime
        ),
        .target(
            name: "WatchdogPlugin", dependencies: ["CircusPluginSupport"], path: "Plugins/watchdog",
            exclude: ["Makefile"], publicHeadersPath: ".", cSettings: [.headerSearchPath("../../include")],
            linkerSettings: withoutSwiftRuntime
        ),
        .target(
            name: "ResourceWatcherPlugin", dependencies: ["CircusPluginSupport"], path: "Plugins/resource_watcher",
            exclude: ["Makefile"], publicHeadersPath: ".", cSettings: [.headerSearchPath("../../include")],
            linkerSettings: withoutSwiftRuntime
        ),
        .target(
            name: "CommandReloaderPlugin", dependencies: ["CircusPluginSupport"], path: "Plugins/command_reloader",
            exclude: ["Makefile"], publicHeadersPath: ".", cSettings: [.headerSearchPath("../../include")],
            linkerSettings: withoutSwiftRuntime
        ),
        .target(
            name: "HttpObserverPlugin", dependencies: ["CircusPluginSupport"], path: "Plugins/http_observer",
            exclude: ["Makefile"], publicHeadersPath: ".", cSettings: [.headerSearchPath("../../include")],
            linkerSettings: [.linkedLibrary("curl")] + withoutSwiftRuntime
        ),
        .target(
            name: "RedisObserverPlugin", dependencies: ["CircusPluginSupport"], path: "Plugins/redis_observer",
            exclude: ["Makefile"], publicHeadersPath: ".", cSettings: [.headerSearchPath("../../include")],
            linkerSettings: [.linkedLibrary("hiredis")] + withoutSwiftRuntime
        ),
        .testTarget(
            name: "ShippedPluginTests",
            dependencies: [
                "CircusPluginHost", "CircusProtocol", "CircusSystem", "circus-plugin-host",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            swiftSettings: upcoming
        ),
    ]
)
