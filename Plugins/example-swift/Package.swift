// swift-tools-version:6.0
// A circusd plugin written in Swift: a package of its own, built against the plugin
// header alone (include/circus/plugin.h) and linking nothing of circusd.
//
//   swift build -c release      # -> .build/release/libexample_swift.so

import PackageDescription

let package = Package(
    name: "example-swift",
    products: [
        // The library circusd loads: [plugin:counter] use = /path/libexample_swift.so
        .library(name: "example_swift", type: .dynamic, targets: ["ExampleSwift"])
    ],
    targets: [
        // The header as a Clang module (see its module.modulemap).
        .systemLibrary(name: "CCircusPlugin"),
        .target(name: "ExampleSwift", dependencies: ["CCircusPlugin"]),
    ]
)
