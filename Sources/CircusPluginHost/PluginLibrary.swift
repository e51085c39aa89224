// Loading one plugin library: trust check, dlopen, the describe() handshake and the
// checks on what it returned. A library is never unloaded (dlclose would leave timers,
// threads and atexit handlers pointing into unmapped code), so a loaded library lives as
// long as the process; to reload a plugin, destroy its instance and create another.

import CCircusPlugin
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

    /// Whether it must run in a separate plugin host process.
    public var requiresIsolation: Bool { flags & UInt64(CIRCUS_PLUGIN_F_REQUIRE_ISOLATION) != 0 }
    /// Whether several `[plugin:x]` sections may use it.
    public var allowsMultipleInstances: Bool { flags & UInt64(CIRCUS_PLUGIN_F_MULTI_INSTANCE) != 0 }
    /// Whether it implements `reconfigure` (otherwise a new config recreates the instance).
    public var canReconfigure: Bool { vtable.reconfigure != nil }

    /// The vtable slots, with those beyond the plugin's `struct_size` set to nil.
    let vtable: VTable

    struct VTable {
        var create: @convention(c) (UnsafePointer<circus_create_params>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, OpaquePointer?) -> circus_status
        var start: (@convention(c) (UnsafeMutableRawPointer?, OpaquePointer?) -> circus_status)?
        var stop: (@convention(c) (UnsafeMutableRawPointer?) -> Void)?
        var destroy: @convention(c) (UnsafeMutableRawPointer?) -> Void
        var reconfigure: (@convention(c) (UnsafeMutableRawPointer?, circus_str, OpaquePointer?) -> circus_status)?
    }

    private init(
        path: String, resolvedPath: String, descriptor: circus_plugin_descriptor, name: String, vtable: VTable
    ) {
        self.path = path
        self.resolvedPath = resolvedPath
        self.name = name
        version = descriptor.version.map { String(cString: $0) } ?? ""
        summary = descriptor.description.map { String(cString: $0) } ?? ""
        abiMajor = descriptor.abi_major
        abiMinor = descriptor.abi_minor
        flags = descriptor.flags
        self.vtable = vtable
    }

    /// The ABI version this host implements.
    public static let hostABI = (major: UInt32(CIRCUS_ABI_MAJOR), minor: UInt32(CIRCUS_ABI_MINOR))

    /// Checks, opens and validates the plugin library at `path`.
    ///
    /// - Throws: `PluginLoadError`, saying which check failed, with both values when
    ///   two disagree.
    static func open(_ path: String) throws(PluginLoadError) -> PluginLibrary {
        let resolved = try TrustCheck.verify(path)
        func fail(_ kind: PluginLoadError.Kind, _ why: String) -> PluginLoadError {
            PluginLoadError(kind, path: path, message: "cannot load plugin \(path): \(why)")
        }

        _ = dlerror()
        guard let handle = dlopen(resolved, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) else {
            let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
            throw fail(.openFailed, reason)
        }
        // Never dlclose: see the file comment.
        guard let entry = dlsym(handle, CIRCUS_PLUGIN_ENTRY) else {
            throw fail(.noEntryPoint, "it exports no \(CIRCUS_PLUGIN_ENTRY) function; is it a circus plugin? "
                + "(build it with -fvisibility=hidden and mark the entry point CIRCUS_EXPORT)")
        }
        typealias Describe = @convention(c) (UInt32, UInt32) -> UnsafePointer<circus_plugin_descriptor>?
        let describe = unsafeBitCast(entry, to: Describe.self)
        let (hostMajor, hostMinor) = hostABI
        guard let raw = describe(hostMajor, hostMinor) else {
            throw fail(.refusedHost, "\(CIRCUS_PLUGIN_ENTRY) returned NULL: the plugin does not support this host's "
                + "plugin ABI \(hostMajor).\(hostMinor); use a version of the plugin built for it")
        }

        // Read the fixed head first: magic and struct_size say how much more we may read.
        let magic = UnsafeRawPointer(raw).load(as: UInt32.self)
        guard magic == CIRCUS_PLUGIN_MAGIC else {
            throw fail(.badDescriptor, "its descriptor has magic 0x\(String(magic, radix: 16)), expected "
                + "0x\(String(CIRCUS_PLUGIN_MAGIC, radix: 16)); the library is corrupt or not a circus plugin")
        }
        let size = UnsafeRawPointer(raw).load(fromByteOffset: 4, as: UInt32.self)
        let major = UnsafeRawPointer(raw).load(fromByteOffset: 8, as: UInt32.self)
        let minor = UnsafeRawPointer(raw).load(fromByteOffset: 12, as: UInt32.self)
        guard major == hostMajor else {
            throw fail(.abiMismatch, "it was built for plugin ABI \(major).\(minor), and this circusd provides plugin "
                + "ABI \(hostMajor).\(hostMinor); the major versions must match: rebuild the plugin against this "
                + "circusd's circus/plugin.h")
        }
        let minimumDescriptor = MemoryLayout<circus_plugin_descriptor>.offset(of: \.vtable)!
            + MemoryLayout<UnsafeRawPointer>.size
        guard size >= minimumDescriptor else {
            throw fail(.badDescriptor, "its descriptor's struct_size is \(size) bytes, smaller than the "
                + "\(minimumDescriptor) of ABI \(hostMajor).0; set it to sizeof(circus_plugin_descriptor)")
        }
        // Every field of the 1.0 descriptor is present; newer fields past them are ignored.
        let descriptor = raw.pointee

        guard let namePointer = descriptor.name else { throw fail(.badDescriptor, "its descriptor has no name") }
        let name = String(cString: namePointer)
        guard isValidName(name) else {
            throw fail(.badDescriptor, "its name \"\(name)\" is not made of [a-z0-9_] only")
        }
        guard let vtablePointer = descriptor.vtable else {
            throw fail(.badDescriptor, "plugin \(name)'s descriptor has no vtable")
        }
        let vtable = try readVTable(vtablePointer, plugin: name, fail: fail)
        return PluginLibrary(path: path, resolvedPath: resolved, descriptor: descriptor, name: name, vtable: vtable)
    }

    /// Reads the slots the plugin's vtable has; slots past its `struct_size` (a plugin built
    /// against an older minor version) count as NULL.
    private static func readVTable(
        _ table: UnsafePointer<circus_plugin_vtable>, plugin: String,
        fail: (PluginLoadError.Kind, String) -> PluginLoadError
    ) throws(PluginLoadError) -> VTable {
        let size = Int(UnsafeRawPointer(table).load(as: UInt32.self))
        func has<T>(_ member: KeyPath<circus_plugin_vtable, T>) -> Bool {
            MemoryLayout<circus_plugin_vtable>.offset(of: member)! + MemoryLayout<T>.size <= size
        }
        func slot<T>(_ member: KeyPath<circus_plugin_vtable, T?>) -> T? {
            guard has(member) else { return nil }
            let offset = MemoryLayout<circus_plugin_vtable>.offset(of: member)!
            return UnsafeRawPointer(table).load(fromByteOffset: offset, as: T?.self)
        }
        guard has(\.destroy) else {
            let needed = MemoryLayout<circus_plugin_vtable>.offset(of: \.destroy)! + MemoryLayout<UnsafeRawPointer>.size
            throw fail(.badDescriptor, "plugin \(plugin)'s vtable struct_size is \(size) bytes, smaller than the "
                + "\(needed) that reach its required create and destroy slots; set it to sizeof(circus_plugin_vtable)")
        }
        guard let create = slot(\.create) else {
            throw fail(.badDescriptor, "plugin \(plugin)'s vtable has no create function (a required slot)")
        }
        guard let destroy = slot(\.destroy) else {
            throw fail(.badDescriptor, "plugin \(plugin)'s vtable has no destroy function (a required slot)")
        }
        return VTable(
            create: create, start: slot(\.start), stop: slot(\.stop), destroy: destroy,
            reconfigure: slot(\.reconfigure))
    }

    /// Whether `name` is a valid plugin or instance name: `[a-z0-9_]+`.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
    }

    static func isValidName(_ name: Substring) -> Bool { isValidName(String(name)) }
}
