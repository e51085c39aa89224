// The host side of a hook with the fixed signature (`circus_hook_fn`): the call record it
// reads, and the function table it may use. Only log() and set_error() work there; every
// other entry answers CIRCUS_E_UNSUPPORTED, as the header promises.

import CCircusPlugin
import CircusConfig
import Synchronization

/// Severity of a line a hook logs.
public enum HookLogLevel: Sendable {
    case debug, info, warning, error

    init(_ level: circus_log_level) {
        switch level {
        case ...CIRCUS_LOG_DEBUG: self = .debug
        case CIRCUS_LOG_INFO, CIRCUS_LOG_NOTICE: self = .info
        case CIRCUS_LOG_WARNING: self = .warning
        default: self = .error
        }
    }
}

enum HookHost {
    /// What `call->host` points at during one call.
    final class Context {
        let log: @Sendable (HookLogLevel, String) -> Void
        init(log: @escaping @Sendable (HookLogLevel, String) -> Void) { self.log = log }
    }

    /// What `err` points at during one call.
    final class ErrorText {
        let text = Mutex<String?>(nil)
    }

    nonisolated(unsafe) static let api: UnsafePointer<circus_host_api> = {
        var api = circus_host_api()
        api.struct_size = UInt32(MemoryLayout<circus_host_api>.size)
        api.abi_major = UInt32(CIRCUS_ABI_MAJOR)
        api.abi_minor = UInt32(CIRCUS_ABI_MINOR)
        api.log = { h, level, msg in
            guard let h else { return }
            let context = Unmanaged<Context>.fromOpaque(UnsafeRawPointer(h)).takeUnretainedValue()
            context.log(HookLogLevel(level), text(msg))
        }
        api.set_error = { err, _, msg in
            guard let err else { return }
            let sink = Unmanaged<ErrorText>.fromOpaque(UnsafeRawPointer(err)).takeUnretainedValue()
            let message = text(msg)
            sink.text.withLock { $0 = message }
        }
        api.publish = { _, _, _ in CIRCUS_E_UNSUPPORTED }
        api.subscribe = { _, _, _, _, _, _ in CIRCUS_E_UNSUPPORTED }
        api.unsubscribe = { _, _ in CIRCUS_E_UNSUPPORTED }
        api.register_command = { _, _, _, _, _, _, _, _ in CIRCUS_E_UNSUPPORTED }
        api.reply = { _, _, _ in CIRCUS_E_UNSUPPORTED }
        api.call = { _, _, _, _, _ in CIRCUS_E_UNSUPPORTED }
        api.register_hook = { _, _, _, _, _, _, _ in CIRCUS_E_UNSUPPORTED }
        api.add_timer = { _, _, _, _, _, _, _ in CIRCUS_E_UNSUPPORTED }
        api.watch_fd = { _, _, _, _, _, _, _ in CIRCUS_E_UNSUPPORTED }
        api.cancel = { _, _ in CIRCUS_E_UNSUPPORTED }
        api.post = { _, _, _, _ in CIRCUS_E_UNSUPPORTED }
        let table = UnsafeMutablePointer<circus_host_api>.allocate(capacity: 1)
        table.initialize(to: api)
        return UnsafePointer(table)
    }()

    private static func text(_ s: circus_str) -> String {
        guard let ptr = s.ptr, s.len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: ptr, count: s.len), as: UTF8.self)
    }

    static func callFixed(
        _ function: circus_hook_fn, _ invocation: HookInvocation, log: @escaping @Sendable (HookLogLevel, String) -> Void
    ) -> HookOutcome {
        let context = Context(log: log)
        let sink = ErrorText()
        let request = invocation.requestJSON
        let status: Int32 = withExtendedLifetime((context, sink)) {
            // withCString lends a native string's own bytes: no copy per call.
            invocation.point.rawValue.withCString { hook in
                invocation.watcher.withCString { watcher in
                    request.withCString { json in
                        var call = circus_hook_call()
                        call.struct_size = UInt32(MemoryLayout<circus_hook_call>.size)
                        call.api = api
                        call.host = OpaquePointer(Unmanaged.passUnretained(context).toOpaque())
                        call.hook_name = circus_str(ptr: hook, len: invocation.point.rawValue.utf8.count)
                        call.watcher_name = circus_str(ptr: watcher, len: invocation.watcher.utf8.count)
                        call.request_json = circus_str(ptr: json, len: request.utf8.count)
                        return function(&call, OpaquePointer(Unmanaged.passUnretained(sink).toOpaque()))
                    }
                }
            }
        }
        if status < 0 {
            let reason = sink.text.withLock { $0 } ?? "status \(status)"
            return .failed("hook \(invocation.point.rawValue) failed: \(reason)")
        }
        return .returned(status != CIRCUS_HOOK_DENY)
    }
}
