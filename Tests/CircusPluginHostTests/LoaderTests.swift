// Loading: the header compiles on its own, plugins built with plain `cc -shared` load,
// another ABI major is refused naming both versions and the file, older and newer minors
// load, and files others could have written are refused before dlopen. In process and
// isolated alike: there the circus-plugin-host process makes the same checks, and the
// library is never opened in this process.

import CircusPluginHost
import CircusProtocol
import Foundation
import OrderedCollections
import Glibc
import Testing

@Suite struct PluginLoaderTests {
    @Test func headerCompilesAsStrictC99AndAsCxx() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let unit = directory.path + "/unit"
        let text = "#include <circus/plugin.h>\nint probe_size(void) { return (int)sizeof(circus_host_api); }\n"
        try text.write(toFile: unit + ".c", atomically: true, encoding: .utf8)
        try text.write(toFile: unit + ".cpp", atomically: true, encoding: .utf8)
        let strict = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-I", Build.include, "-c"]
        try Build.run("cc", ["-std=c99"] + strict + ["-o", unit + ".o", unit + ".c"])
        try Build.run("c++", ["-std=c++11"] + strict + ["-o", unit + "-cpp.o", unit + ".cpp"])
    }

    @Test(arguments: Mode.allCases) func theExamplePluginLoadsAndDescribesItself(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.example, into: directory.path, as: "example.so")
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let library = try host.load(path, mode)
        #expect(library.name == "example")
        #expect(library.version == "1.0.0")
        #expect(library.abiMajor == 1 && library.abiMinor == 0)
        #expect(library.allowsMultipleInstances)
        #expect(!library.requiresIsolation)
        #expect(!library.canReconfigure)
        // The same file again is the same library.
        #expect(try host.load(path, mode) === library)
        // Isolated, none of its code ran here.
        #expect(library.isIsolatedOnly == mode.isolated)
        #expect((dlopen(path, RTLD_NOW | RTLD_NOLOAD) != nil) == !mode.isolated)
    }

    @Test(arguments: Mode.allCases) func aPluginBuiltForAnotherMajorIsRefusedNamingBothVersionsAndTheFile(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.probe, into: directory.path, as: "probe2.so", defines: ["-DPROBE_MAJOR=2"])
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let error = #expect(throws: PluginLoadError.self) { try host.load(path, mode) }
        #expect(error?.kind == .abiMismatch)
        #expect(error?.message == "cannot load plugin \(path): it was built for plugin ABI 2.0, and this circusd "
            + "provides plugin ABI 1.0; the major versions must match: rebuild the plugin against this circusd's "
            + "circus/plugin.h")
    }

    @Test(arguments: Mode.allCases) func aPluginBuiltAgainstAnOlderMinorLoadsWithTheMissingSlotsAsNull(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.probe, into: directory.path, as: "old.so", defines: ["-DPROBE_OLD_VTABLE"])
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let library = try host.load(path, mode)
        #expect(!library.canReconfigure)
        try host.startAndWait("old", of: library, stateDirectory: directory.path, mode: mode)
        #expect(try host.call("old.count").get() == ["count": 0])
        try host.stopAndWait("old")
    }

    @Test(arguments: Mode.allCases) func aPluginBuiltAgainstANewerMinorWithALargerDescriptorLoads(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.probe, into: directory.path, as: "new.so", defines: ["-DPROBE_NEWER_MINOR"])
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let library = try host.load(path, mode)
        #expect(library.abiMajor == 1 && library.abiMinor == 3)
        try host.startAndWait("new", of: library, stateDirectory: directory.path, mode: mode)
        #expect(try host.call("new.count").get() == ["count": 0])
        try host.stopAndWait("new")
    }

    @Test(arguments: Mode.allCases) func aLibraryWithoutTheEntryPointIsRefused(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let source = directory.path + "/empty.c"
        try "int not_a_plugin(void) { return 1; }\n".write(toFile: source, atomically: true, encoding: .utf8)
        let path = try Build.plugin(source, into: directory.path, as: "empty.so")
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let error = #expect(throws: PluginLoadError.self) { try host.load(path, mode) }
        #expect(error?.kind == .noEntryPoint)
        #expect(error?.message.hasPrefix("cannot load plugin \(path): it exports no circus_plugin_describe function") == true)
    }

    @Test(arguments: Mode.allCases) func aWorldWritableLibraryIsRefused(_ mode: Mode) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.example, into: directory.path, as: "example.so")
        chmod(path, 0o777)
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let error = #expect(throws: PluginLoadError.self) { try host.load(path, mode) }
        #expect(error?.kind == .untrusted)
        #expect(error?.message == "refusing to load plugin \(path): it is writable by group or others (mode 0777); "
            + "a plugin runs with the daemon's privileges, so only its owner may write it (chmod go-w \(path))")
        // Fixed, it loads.
        chmod(path, 0o755)
        #expect(try host.load(path, mode).name == "example")
    }

    @Test func aLibraryInAGroupWritableDirectoryIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.example, into: directory.path, as: "example.so")
        chmod(directory.path, 0o770)
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let error = #expect(throws: PluginLoadError.self) { try host.load(path) }
        #expect(error?.kind == .untrusted)
        #expect(error?.message.contains("its directory \(directory.path) is writable by group or others (mode 0770)") == true)
    }

    @Test(.enabled(if: geteuid() == 0, "only root can give a file to another user"))
    func aLibraryOwnedBySomeoneElseIsRefused() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.example, into: directory.path, as: "example.so")
        #expect(chown(path, 65534, 65534) == 0)
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let error = #expect(throws: PluginLoadError.self) { try host.load(path) }
        #expect(error?.kind == .untrusted)
        #expect(error?.message.hasPrefix("refusing to load plugin \(path): it is owned by uid 65534, not by root;") == true)
    }

    @Test func aMissingFileIsReportedWithItsPath() throws {
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let error = #expect(throws: PluginLoadError.self) { try host.load("/nonexistent/libnothing.so") }
        #expect(error?.kind == .openFailed)
        #expect(error?.message == "cannot load plugin /nonexistent/libnothing.so: No such file or directory")
    }
}
