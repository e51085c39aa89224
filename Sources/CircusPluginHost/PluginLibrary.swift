// One plugin library: trust check, then the loader's dlopen, describe() handshake and
// checks (CCircusPluginLoader, shared with the isolated plugin host process), either in
// this process or, for a library that runs isolated, in a circus-plugin-host that
// describes it and exits. A library loaded here is never unloaded; to reload a plugin,
// destroy its instance and create another.

import CCircusPlugin
import CCircusPluginLoader
import Glibc

/// A validated plugin library: what its descriptor says, and its vtable.
public final class PluginLibrary: @unchecked Sendable {
    /// The path as given to `load`.
    public let path: String
    /// The path after resolving symbolic links (the file actually opened).
    public let resolvedPath: String
    /// The plugin's name (`[a-z0-9_]+`).
    public let name: String
    /// The plugin's own version string.
    public let version: String
    /// Its one-line description.
    public let summary: String
    /// The ABI version it was built against.
    public let abiMajor: UInt32, abiMinor: UInt32
    /// `CIRCUS_PLUGIN_F_*` bits.
    public let flags: UInt64
    /// Whether it implements `reconfigure` (otherwise a new config recreates the instance).
    public let canReconfigure: Bool

    /// Whether it must run in a separate plugin host process.
    public var requiresIsolation: Bool { flags & UInt64(CIRCUS_PLUGIN_F_REQUIRE_ISOLATION) != 0 }
    /// Whether several `[plugin:x]` sections may use it.
    public var allowsMultipleInstances: Bool { flags & UInt64(CIRCUS_PLUGIN_F_MULTI_INSTANCE) != 0 }
    /// Whether it was loaded only in a plugin host process (its instances always run
    /// isolated).
    public var isIsolatedOnly: Bool { vtable == nil }

    /// The vtable slots (those beyond the plugin's `struct_size` nil), when the library is
    /// loaded in this process.
    let vtable: VTable?

    struct VTable {
        var create: @convention(c) (UnsafePointer<circus_create_params>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, OpaquePointer?) -> circus_status
        var start: (@convention(c) (UnsafeMutableRawPointer?, OpaquePointer?) -> circus_status)?
        var stop: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?
        var destroy: @convention(c) (UnsafeMutableRawPointer?) -> Void
        var reconfigure: (@convention(c) (UnsafeMutableRawPointer?, circus_str, OpaquePointer?) -> circus_status)?
    }

    /// What a descriptor says, wherever it was read.
    struct Description {
        var name, version, summary: String
        var abiMajor, abiMinor: UInt32
        var flags: UInt64
        var canReconfigure: Bool
    }

    init(path: String, resolvedPath: String, description d: Description, vtable: VTable?) {
        self.path = path
        self.resolvedPath = resolvedPath
        name = d.name
        version = d.version
        summary = d.summary
        abiMajor = d.abiMajor
        abiMinor = d.abiMinor
        flags = d.flags
        canReconfigure = d.canReconfigure
        self.vtable = vtable
    }

    /// The ABI version this host implements.
    public static let hostABI = (major: circus_plugin_host_abi_major(), minor: circus_plugin_host_abi_minor())

    /// Checks, opens and validates the plugin library at `path` in this process.
    ///
    /// - Throws: `PluginLoadError`, saying which check failed, with both values when
    ///   two disagree.
    static func open(_ path: String) throws(PluginLoadError) -> PluginLibrary {
        let resolved = try TrustCheck.verify(path)
        var loaded = circus_loaded_plugin()
        if circus_plugin_load(path, resolved, &loaded) != 0 {
            let message = withUnsafeBytes(of: loaded.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw PluginLoadError(PluginLoadError.Kind(loaderFailure: loaded.failure), path: path, message: message)
        }
        typealias Create = @convention(c) (UnsafePointer<circus_create_params>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, OpaquePointer?) -> circus_status
        typealias Start = @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?) -> circus_status
        typealias Stop = @convention(c) (UnsafeMutableRawPointer?) -> Void
        typealias Reconfigure = @convention(c) (UnsafeMutableRawPointer?, circus_str, OpaquePointer?) -> circus_status
        let vtable = VTable(
            create: unsafeBitCast(loaded.create!, to: Create.self),
            start: loaded.start.map { unsafeBitCast($0, to: Start.self) },
            stop: loaded.stop.map { unsafeBitCast($0, to: Stop.self) },
            destroy: unsafeBitCast(loaded.destroy!, to: Stop.self),
            reconfigure: loaded.reconfigure.map { unsafeBitCast($0, to: Reconfigure.self) })
        let description = Description(
            name: String(cString: loaded.name), version: String(cString: loaded.version),
            summary: String(cString: loaded.description), abiMajor: loaded.abi_major, abiMinor: loaded.abi_minor,
            flags: loaded.flags, canReconfigure: loaded.reconfigure != nil)
        return PluginLibrary(path: path, resolvedPath: resolved, description: description, vtable: vtable)
    }

    /// Checks the library at `path` and has a plugin host process load and describe it,
    /// so that none of its code runs in this process.
    ///
    /// - Throws: `PluginLoadError` (the same checks and messages as `open`).
    static func describeIsolated(_ path: String, hostExecutable: String) throws(PluginLoadError) -> PluginLibrary {
        let resolved = try TrustCheck.verify(path)
        let description = try IsolatedHostProcess.describe(path: path, resolvedPath: resolved, executable: hostExecutable)
        return PluginLibrary(path: path, resolvedPath: resolved, description: description, vtable: nil)
    }

    /// Whether `name` is a valid plugin or instance name: `[a-z0-9_]+`.
    public static func isValidName(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { circus_name_is_valid($0.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, $0.count) != 0 }
    }

    static func isValidName(_ name: Substring) -> Bool { isValidName(String(name)) }
}

extension PluginLoadError.Kind {
    /// The kind of a `circus_load_failure`.
    init(loaderFailure: Int32) {
        switch UInt32(bitPattern: loaderFailure) {
        case CIRCUS_LOAD_NO_ENTRY_POINT.rawValue: self = .noEntryPoint
        case CIRCUS_LOAD_REFUSED_HOST.rawValue: self = .refusedHost
        case CIRCUS_LOAD_BAD_DESCRIPTOR.rawValue: self = .badDescriptor
        case CIRCUS_LOAD_ABI_MISMATCH.rawValue: self = .abiMismatch
        default: self = .openFailed
        }
    }
}
