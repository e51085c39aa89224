// A circusd plugin in Swift, the twin of Plugins/example-c: it counts watcher events
// (it subscribes to the topic prefix "watcher.") and answers the command
// "<instance>.count" with {"count": n}.
//
// What a Swift plugin must take care of:
//  - The one export, circus_plugin_describe, is a @_cdecl function returning a pointer to
//    a descriptor that lives as long as the process (the host never unloads a library).
//  - Callbacks are @convention(c) closures that capture nothing; the instance travels as
//    the `ud` pointer (Unmanaged), retained from create() until destroy().
//  - Nothing may unwind across the ABI: catch Swift errors inside the callback that
//    throws them; a trap (a failed force-unwrap) stops the whole daemon, so check what
//    the host hands over instead.
//  - Every callback of one instance runs on that instance's own queue, one at a time, so
//    the instance needs no locks.

import CCircusPlugin

/// One instance of the plugin: what a `[plugin:NAME]` section creates.
private final class Counter {
    let api: UnsafePointer<circus_host_api>
    let host: OpaquePointer
    let name: String
    var events: UInt64 = 0

    init(api: UnsafePointer<circus_host_api>, host: OpaquePointer, name: String) {
        self.api = api
        self.host = host
        self.name = name
    }

    /// The instance behind a callback's `ud`.
    static func from(_ ud: UnsafeMutableRawPointer?) -> Counter? {
        ud.map { Unmanaged<Counter>.fromOpaque($0).takeUnretainedValue() }
    }

    func log(_ level: circus_log_level, _ message: String) {
        withCircusStr(message) { api.pointee.log?(host, level, $0) }
    }
}

// MARK: Strings across the ABI

/// Calls `body` with `text` as a circus_str, valid during the call (the host copies it).
private func withCircusStr<T>(_ text: String, _ body: (circus_str) -> T) -> T {
    var text = text
    return text.withUTF8 { bytes in
        bytes.withMemoryRebound(to: CChar.self) { body(circus_str(ptr: $0.baseAddress, len: $0.count)) }
    }
}

/// A circus_str from the host as a Swift String (a copy: the host's bytes are borrowed).
private func string(_ value: circus_str) -> String {
    String(decoding: UnsafeRawBufferPointer(start: value.ptr, count: value.len), as: UTF8.self)
}

// MARK: Callbacks (each runs on the instance's queue)

private let onWatcherEvent: circus_event_fn = { ud, _, _ in
    Counter.from(ud)?.events += 1
}

private let onCount: circus_request_fn = { ud, _, _, reply in
    guard let counter = Counter.from(ud) else { return }
    withCircusStr("{\"count\": \(counter.events)}") { _ = counter.api.pointee.reply?(reply, CIRCUS_OK, $0) }
}

// MARK: Lifecycle

private let create: @convention(c) (
    UnsafePointer<circus_create_params>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, OpaquePointer?
) -> circus_status = { params, out, err in
    guard let params, let out, let api = params.pointee.api, let host = params.pointee.host else {
        return CIRCUS_E_INVALID
    }
    let name = string(params.pointee.instance_name)
    let counter = Counter(api: api, host: host, name: name)
    out.pointee = Unmanaged.passRetained(counter).toOpaque()  // released in destroy
    _ = err
    return CIRCUS_OK
}

private let start: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?) -> circus_status = { instance, err in
    guard let counter = Counter.from(instance) else { return CIRCUS_E_INVALID }
    let api = counter.api.pointee
    // No dtors: the instance outlives every registration (the host ends them before destroy).
    var status = withCircusStr("watcher.") { api.subscribe?(counter.host, $0, onWatcherEvent, instance, nil, nil) }
        ?? CIRCUS_E_UNSUPPORTED
    if status == CIRCUS_OK {
        let meta = "{\"help\": \"how many watcher events this instance has seen\", \"args\": {}}"
        status = withCircusStr("\(counter.name).count") { command in
            withCircusStr(meta) { meta in
                api.register_command?(counter.host, command, meta, UInt64(1) /* CIRCUS_COMMAND_F_READ_ONLY */,
                                      onCount, instance, nil, nil)
            }
        } ?? CIRCUS_E_UNSUPPORTED
    }
    if status != CIRCUS_OK {
        withCircusStr("could not register with the host") { api.set_error?(err, status, $0) }
        return status
    }
    counter.log(CIRCUS_LOG_INFO, "counting watcher events (Swift)")
    return CIRCUS_OK
}

private let destroy: @convention(c) (UnsafeMutableRawPointer?) -> Void = { instance in
    if let instance { Unmanaged<Counter>.fromOpaque(instance).release() }
}

// MARK: The descriptor and the entry point

/// Swift has no static C data with pointers in it, so the descriptor is built on the
/// first call (Swift's globals are initialized once, thread-safely) and lives forever.
nonisolated(unsafe) private let descriptor: UnsafeMutablePointer<circus_plugin_descriptor> = {
    func cString(_ text: StaticString) -> UnsafePointer<CChar> {
        // Swift's string literals are stored NUL-terminated, for the life of the process.
        UnsafeRawPointer(text.utf8Start).assumingMemoryBound(to: CChar.self)
    }
    let vtable = UnsafeMutablePointer<circus_plugin_vtable>.allocate(capacity: 1)
    vtable.initialize(to: circus_plugin_vtable(
        struct_size: UInt32(MemoryLayout<circus_plugin_vtable>.size), reserved0: 0,
        create: create, start: start, stop: nil, destroy: destroy, reconfigure: nil))
    let descriptor = UnsafeMutablePointer<circus_plugin_descriptor>.allocate(capacity: 1)
    descriptor.initialize(to: circus_plugin_descriptor(
        magic: CIRCUS_PLUGIN_MAGIC, struct_size: UInt32(MemoryLayout<circus_plugin_descriptor>.size),
        abi_major: CIRCUS_ABI_MAJOR, abi_minor: CIRCUS_ABI_MINOR,
        name: cString("example_swift"), version: cString("1.0.0"),
        description: cString("counts watcher events; a template for plugins in Swift"),
        flags: UInt64(2) /* CIRCUS_PLUGIN_F_MULTI_INSTANCE */, vtable: vtable))
    return descriptor
}()

/// The plugin's one entry point, looked up by circusd with dlsym.
@_cdecl("circus_plugin_describe")
public func circusPluginDescribe(_ hostMajor: UInt32, _ hostMinor: UInt32) -> UnsafePointer<circus_plugin_descriptor>? {
    // Nothing newer than 1.0 is used, so any 1.x host will do.
    hostMajor == CIRCUS_ABI_MAJOR ? UnsafePointer(descriptor) : nil
}
