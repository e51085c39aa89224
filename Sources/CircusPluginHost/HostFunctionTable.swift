// The host's side of the ABI: the circus_host_api table every plugin receives. Each entry
// is a C function that captures nothing; it finds its instance through the opaque
// `circus_host *` (a `HostContext`) and checks and copies every argument before doing
// anything. All entries are thread-safe.

import CCircusPlugin
import CircusProtocol
import OrderedCollections
import Logging

enum HostFunctionTable {
    /// The table, built once and never freed.
    nonisolated(unsafe) static let pointer: UnsafePointer<circus_host_api> = {
        let table = UnsafeMutablePointer<circus_host_api>.allocate(capacity: 1)
        table.initialize(to: make())
        return UnsafePointer(table)
    }()

    private static func make() -> circus_host_api {
        var api = circus_host_api()
        api.struct_size = UInt32(MemoryLayout<circus_host_api>.size)
        api.abi_major = UInt32(CIRCUS_ABI_MAJOR)
        api.abi_minor = UInt32(CIRCUS_ABI_MINOR)
        api.reserved0 = 0

        api.log = { h, level, msg in
            guard let instance = HostContext.instance(h) else { return }
            instance.host.bus.log(circusLogLevel(level), instance: instance.name, message: msg.string)
        }
        api.set_error = { err, code, msg in
            ErrorSink.from(err)?.set(code, msg.string)
        }
        api.publish = { h, topic, json in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            guard let payload = json.jsonObject else { return CIRCUS_E_INVALID }
            return instance.publish(topic: topic.string, payload: payload)
        }
        api.subscribe = { h, prefix, fn, ud, dtor, out in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            guard let fn else { return CIRCUS_E_INVALID }
            return giveHandle(instance.subscribe(prefix: prefix.string, fn: fn, ud: ud, dtor: dtor), out)
        }
        api.unsubscribe = { h, handle in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            return instance.cancel(handle, onlySubscriptions: true)
        }
        api.register_command = { h, name, meta, flags, fn, ud, dtor, out in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            guard let fn, let metaObject = meta.jsonObject else { return CIRCUS_E_INVALID }
            let readOnly = flags & UInt64(CIRCUS_COMMAND_F_READ_ONLY) != 0
            return giveHandle(instance.registerCommand(
                name: name.string, meta: metaObject, readOnly: readOnly, fn: fn, ud: ud, dtor: dtor), out)
        }
        api.reply = { reply, status, json in
            let token = PendingRequests.token(reply)
            guard token != 0 else { return CIRCUS_E_NOT_FOUND }
            if status == CIRCUS_OK {
                guard let object = json.jsonObject else { return CIRCUS_E_INVALID }
                return PendingRequests.answer(token, .answered(status: status, json: object))
            }
            guard status < 0 else { return CIRCUS_E_INVALID }
            // An error's JSON is optional; a malformed one just carries no reason.
            return PendingRequests.answer(token, .answered(status: status, json: json.jsonObject ?? [:]))
        }
        api.call = { h, command, args, done, ud in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            guard let done, command.len > 0, let arguments = args.jsonObject else { return CIRCUS_E_INVALID }
            return instance.call(command: command.string, arguments: arguments, done: done, ud: ud)
        }
        api.register_hook = { h, pattern, hookName, fn, ud, dtor, out in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            guard let fn else { return CIRCUS_E_INVALID }
            return giveHandle(instance.registerHook(
                watcherPattern: pattern.string, hookName: hookName.string, fn: fn, ud: ud, dtor: dtor), out)
        }
        api.add_timer = { h, delay, repeatEvery, fn, ud, dtor, out in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            guard let fn else { return CIRCUS_E_INVALID }
            return giveHandle(instance.addTimer(delay: delay, repeatEvery: repeatEvery, fn: fn, ud: ud, dtor: dtor), out)
        }
        api.watch_fd = { h, fd, events, fn, ud, dtor, out in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            guard let fn else { return CIRCUS_E_INVALID }
            return giveHandle(instance.watch(fd: fd, events: events, fn: fn, ud: ud, dtor: dtor), out)
        }
        api.cancel = { h, handle in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            return instance.cancel(handle)
        }
        api.post = { h, fn, ud, dtor in
            guard let instance = HostContext.instance(h) else { return CIRCUS_E_CANCELLED }
            guard let fn else { return CIRCUS_E_INVALID }
            return instance.post(fn, ud: ud, dtor: dtor)
        }
        return api
    }
}

/// Stores a new registration's handle in `*out` when the call succeeded.
private func giveHandle(_ result: (circus_status, UInt64), _ out: UnsafeMutablePointer<circus_handle>?) -> circus_status {
    if result.0 == CIRCUS_OK { out?.pointee = result.1 }
    return result.0
}

/// A `CIRCUS_LOG_*` level as a swift-log level (out-of-range values are clamped).
func circusLogLevel(_ level: circus_log_level) -> Logger.Level {
    switch level {
    case ...CIRCUS_LOG_TRACE: .trace
    case CIRCUS_LOG_DEBUG: .debug
    case CIRCUS_LOG_INFO: .info
    case CIRCUS_LOG_NOTICE: .notice
    case CIRCUS_LOG_WARNING: .warning
    case CIRCUS_LOG_ERROR: .error
    default: .critical
    }
}
