// A hook named in a watcher's configuration, resolved once when the configuration is
// loaded: its library opened (RTLD_NOW | RTLD_LOCAL, never closed), its symbol found, and
// for a declared signature a libffi call interface prepared. `call` then runs on a worker
// thread of the daemon, never on the loop.

import CCircusPlugin
import CFFI
public import CircusConfig
import Glibc

/// What one hook call receives: Circus's keyword arguments, and the same as a JSON
/// request for hooks with the fixed signature.
public struct HookInvocation: Sendable {
    public var point: HookPoint
    public var watcher: String
    public var pid: Int32?
    public var signum: Int32?
    public var time: Double?
    public var exitCode: Int32?
    /// nil for Circus's None (passed as -1 to a declared `process_status`).
    public var processStatus: Int?
    /// The process's stats as JSON text (`extended_stats`).
    public var stats: String?
    /// Makes the request JSON, when a hook takes it (the fixed signature does; a declared
    /// signature binds the arguments alone, so a libffi hook never pays for it).
    private let makeRequest: @Sendable () -> String

    /// `{"watcher": ..., "hook": ..., "time": ..., "pid": ...}`, as plugins get it; made
    /// at each read.
    public var requestJSON: String { makeRequest() }

    /// - Parameter request: makes ``requestJSON``; called on the hook's thread, only for a
    ///   hook that takes it.
    public init(point: HookPoint, watcher: String, pid: Int32? = nil, signum: Int32? = nil, time: Double? = nil,
                exitCode: Int32? = nil, processStatus: Int? = nil, stats: String? = nil,
                request: @escaping @Sendable () -> String) {
        self.point = point
        self.watcher = watcher
        self.pid = pid
        self.signum = signum
        self.time = time
        self.exitCode = exitCode
        self.processStatus = processStatus
        self.stats = stats
        makeRequest = request
    }
}

/// How a hook call ended.
public enum HookOutcome: Hashable, Sendable {
    /// It returned; false for a refusal (and for a `void` function: Circus counts None as false).
    case returned(Bool)
    /// It failed; the text becomes the `error` of the `hook_failure` event.
    case failed(String)
}

/// A hook's library or symbol could not be found.
public struct HookResolveError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// A resolved hook function.
public final class HookFunction: @unchecked Sendable {
    // Immutable after init: the symbol and (for a declared signature) the libffi call
    // interface, which libffi only reads during calls, from any thread.
    private enum Form {
        case fixed(circus_hook_fn)
        case declared(FFICall)
    }

    private let form: Form
    /// The spec this function was resolved from.
    public let spec: HookSpec

    /// Opens the library and looks up the symbol.
    ///
    /// A library named with a `/` is opened at that path (relative to circusd's working
    /// directory); a bare name is searched as `dlopen` searches (`LD_LIBRARY_PATH`, the
    /// system's library directories). Blocking: not for the loop thread.
    /// - Throws: ``HookResolveError`` with `dlerror()`'s text.
    public init(resolving spec: HookSpec) throws(HookResolveError) {
        self.spec = spec
        let target = spec.target
        guard let handle = dlopen(target.library, RTLD_NOW | RTLD_LOCAL) else {
            throw HookResolveError(description: "cannot open \(target.library): \(Self.dlError())")
        }
        // Never dlclose'd: a hook may be running on an abandoned thread at any time.
        _ = dlerror()
        guard let symbol = dlsym(handle, target.symbol) else {
            throw HookResolveError(description: "\(target.library) has no symbol \(target.symbol)")
        }
        if let signature = spec.signature {
            guard let call = FFICall(signature: signature, function: symbol) else {
                throw HookResolveError(description: "libffi cannot prepare a call to \(target.symbol)")
            }
            form = .declared(call)
        } else {
            form = .fixed(unsafeBitCast(symbol, to: circus_hook_fn.self))
        }
    }

    private static func dlError() -> String {
        dlerror().map { String(cString: $0) } ?? "unknown error"
    }

    /// Calls the hook on the calling thread and returns what it answered.
    ///
    /// - Parameter log: receives what the hook logs through `api->log` (fixed signature).
    public func call(_ invocation: HookInvocation, log: @escaping @Sendable (HookLogLevel, String) -> Void) -> HookOutcome {
        switch form {
        case .fixed(let function):
            return HookHost.callFixed(function, invocation, log: log)
        case .declared(let ffi):
            return ffi.call(invocation)
        }
    }
}
