// The watcher hooks plugins asked to be consulted for. The supervisor asks it, at each
// hook point of a watcher, which plugin hooks to call.

import CircusConfig
import CircusPluginHost

/// Plugin hook registrations, in registration order.
///
/// - Important: Not thread-safe: owned by the daemon's loop thread (plugins' registrations
///   are posted to it).
final class PluginHookRegistry {
    private var hooks: [PluginHook] = []

    /// Records `hook`; a registration with the same id replaces the earlier one.
    func add(_ hook: PluginHook) {
        hooks.removeAll { $0.id == hook.id }
        hooks.append(hook)
    }

    /// Forgets the registration `id` (unknown ids are ignored).
    func remove(_ id: PluginHookID) {
        hooks.removeAll { $0.id == id }
    }

    /// Forgets every registration of the instance `instance` (it stopped).
    func removeAll(of instance: String) {
        hooks.removeAll { $0.id.instance == instance }
    }

    /// The hooks to call for `hookName` (`before_start`, ...) of the watcher `watcher`, in
    /// registration order: those whose pattern matches the watcher's name (fnmatch, as
    /// Circus matches watcher names).
    func matching(watcher: String, hookName: String) -> [PluginHook] {
        hooks.filter { $0.hookName == hookName && Fnmatch.matches(pattern: $0.watcherPattern, name: watcher) }
    }

    /// How many registrations there are.
    var count: Int { hooks.count }
}
