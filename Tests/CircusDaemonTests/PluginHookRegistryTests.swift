@testable import CircusDaemon
@testable import CircusPluginHost
import Testing

@Suite("Plugin hook registry")
struct PluginHookRegistryTests {
    func hook(_ instance: String, _ serial: UInt64, _ pattern: String, _ name: String) -> PluginHook {
        PluginHook(id: PluginHookID(instance: instance, serial: serial), watcherPattern: pattern, hookName: name)
    }

    @Test func matchesByHookNameAndWatcherPatternInRegistrationOrder() {
        let registry = PluginHookRegistry()
        let web = hook("a", 1, "web*", "before_start")
        let all = hook("b", 2, "*", "before_start")
        let spawn = hook("b", 3, "*", "after_spawn")
        for h in [web, all, spawn] { registry.add(h) }
        #expect(registry.matching(watcher: "web1", hookName: "before_start") == [web, all])
        #expect(registry.matching(watcher: "db", hookName: "before_start") == [all])
        #expect(registry.matching(watcher: "db", hookName: "after_spawn") == [spawn])
        #expect(registry.matching(watcher: "db", hookName: "before_stop").isEmpty)
    }

    @Test func removeForgetsOneRegistrationAndRemoveAllAnInstancesRegistrations() {
        let registry = PluginHookRegistry()
        registry.add(hook("a", 1, "*", "before_start"))
        registry.add(hook("a", 2, "*", "after_start"))
        registry.add(hook("b", 3, "*", "before_start"))
        registry.remove(PluginHookID(instance: "b", serial: 3))
        #expect(registry.matching(watcher: "w", hookName: "before_start").map(\.id.serial) == [1])
        registry.removeAll(of: "a")
        #expect(registry.count == 0)
    }
}
