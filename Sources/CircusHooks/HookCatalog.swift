// Every hook the configuration names, resolved before anything starts (at start-up, and
// on the config thread for reloadconfig), so that a missing library or symbol is a
// configuration error with the file, line and option, never a surprise at run time.

public import CircusConfig
import OrderedCollections
import Synchronization

/// The resolved hook functions, by their configuration spec. Safe from any thread.
public final class HookCatalog: Sendable {
    private let functions = Mutex<[HookSpec: HookFunction]>([:])

    public init() {}

    /// Opens the library and finds the symbol of every hook of `configuration` not
    /// resolved yet. Blocking (dlopen reads files): call it off the loop thread.
    ///
    /// - Throws: ``ConfigError`` naming the hook's file, line and option.
    public func resolve(_ configuration: CircusConfiguration) throws(ConfigError) {
        for watcher in configuration.watchers {
            // Python hooks run in the Python helper, not here.
            for (_, spec) in watcher.hooks {
                do {
                    try resolve(spec)
                } catch {
                    let option = "hooks.\(spec.point.rawValue)"
                    throw ConfigError(
                        at: watcher.location(of: option), section: "watcher:\(watcher.name)", option: option,
                        message: error.description)
                }
            }
        }
    }

    /// Opens the library and finds the symbol of `spec` if that was not done yet (a Python
    /// hook is left to the Python helper). Blocking: call it off the loop thread.
    ///
    /// - Throws: ``HookResolveError`` with `dlerror()`'s text.
    public func resolve(_ spec: HookSpec) throws(HookResolveError) {
        guard spec.target.python == nil, function(for: spec) == nil else { return }
        let function = try HookFunction(resolving: spec)
        functions.withLock { $0[spec] = function }
    }

    /// The function resolved for `spec`, if `resolve` saw it.
    public func function(for spec: HookSpec) -> HookFunction? {
        functions.withLock { $0[spec] }
    }
}
