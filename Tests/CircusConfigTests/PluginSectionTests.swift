import CircusConfig
import OrderedCollections
import Testing

@Suite("[plugin:NAME] sections")
struct PluginSectionTests {
    @Test("use: Circus's classes map to the shipped plugin that replaces them", arguments: [
        ("circus.plugins.flapping.Flapping", "flapping"),
        ("circus.plugins.statsd.StatsdEmitter", "statsd"),
        ("circus.plugins.statsd.FullStats", "statsd"),
        ("circus.plugins.watchdog.WatchDog", "watchdog"),
        ("circus.plugins.resource_watcher.ResourceWatcher", "resource_watcher"),
        ("circus.plugins.command_reloader.CommandReloader", "command_reloader"),
        ("circus.plugins.http_observer.HttpObserver", "http_observer"),
        ("circus.plugins.redis_observer.RedisObserver", "redis_observer"),
        ("flapping", "flapping"),
        ("redis_observer", "redis_observer"),
    ])
    func circusClasses(use: String, shipped: String) throws {
        let plugin = try #require(try parseConfiguration("[plugin:p]\nuse = \(use)\n").plugins.first)
        #expect(plugin.source == .shipped(name: shipped))
        #expect(plugin.use == use)
    }

    @Test("use: a library path, relative to the configuration file's directory", arguments: [
        ("/opt/plugins/libmine.so", "/opt/plugins/libmine.so"),
        ("plugins/libmine.so", "DIR/plugins/libmine.so"),
        ("libmine.so.1", "DIR/libmine.so.1"),
    ])
    func library(use: String, path: String) throws {
        let configuration = try loadINI("[plugin:p]\nuse = \(use)\n", servedOnly: false).configuration
        let directory = String(configuration.path.dropLast("/circus.ini".count))
        let expected = path.hasPrefix("DIR/") ? directory + path.dropFirst(3) : path
        #expect(configuration.plugins.first?.source == .library(path: expected))
    }

    @Test("use: what names nothing we can run is an error at `use`", arguments: [
        ("circus.plugins.Nope", "circus.ini:2: [plugin:p] use: 'circus.plugins.Nope' is not one of Circus's plugins"),
        ("plain", "circus.ini:2: [plugin:p] use: 'plain' names no plugin"),
        ("pkg.mod:Class", "circus.ini:2: [plugin:p] use: 'pkg.mod:Class' names no plugin"),
        ("3rd.party", "circus.ini:2: [plugin:p] use: '3rd.party' names no plugin"),
    ])
    func unknown(use: String, prefix: String) {
        let error = parseError("[plugin:p]\nuse = \(use)\n")
        #expect(error?.description.hasPrefix(prefix) == true, "\(error?.description ?? "no error")")
    }

    @Test("active and isolate are read; python and isolate only where they mean something", arguments: [
        ("use = flapping\nactive = maybe\n", "circus.ini:3: [plugin:p] active: "),
        ("use = mine.Plugin\nisolate = true\n", "circus.ini:3: [plugin:p] isolate: applies to native plugins"),
        ("use = flapping\npython = python3\n", "circus.ini:3: [plugin:p] python: names the Python that runs a Python plugin"),
    ])
    func hostKeys(body: String, prefix: String) {
        let error = parseError("[plugin:p]\n\(body)")
        #expect(error?.description.hasPrefix(prefix) == true, "\(error?.description ?? "no error")")
    }

    @Test("a Python class becomes the watcher plugin:NAME running Circus's plugin runner")
    func pythonPluginWatcher() throws {
        let configuration = try loadConfiguration("""
            [circus]
            endpoint = ipc:///run/c.sock
            pubsub_endpoint = ipc:///run/p.sock
            loglevel = debug
            [plugin:rec]
            use = mypackage.plugins.Recorder
            python = /opt/venv/bin/python
            path = /var/log/events 1.txt
            max_retry = 2
            """)
        let plugin = try #require(configuration.plugins.first)
        #expect(plugin.source == .python(className: "mypackage.plugins.Recorder"))
        #expect(plugin.options == ["python": "/opt/venv/bin/python", "path": "/var/log/events 1.txt", "max_retry": "2"])
        let watcher = try #require(configuration.watchers.first { $0.name == "plugin:rec" })
        #expect(watcher.cmd == """
            /opt/venv/bin/python -c 'from circus import plugins;plugins.main()' --endpoint ipc:///run/c.sock \
            --pubsub ipc:///run/p.sock \
            --config '__name__:plugin:rec:::max_retry:2:::name:plugin:rec:::path:/var/log/events 1.txt' \
            --log-level debug mypackage.plugins.Recorder
            """)
        // Circus's plugin watcher options, and every other key of the section applied too.
        #expect(watcher.priority == 1)
        #expect(watcher.singleton)
        #expect(watcher.copyEnv)
        #expect(watcher.closeChildStdout && watcher.closeChildStderr)
        #expect(watcher.maxRetry == 2)
        #expect(watcher.extraOptions["path"] == "/var/log/events 1.txt")
        #expect(watcher.extraOptions["python"] == nil)
    }

    @Test("a plugin section's own watcher options win over the runner's defaults")
    func pythonPluginOverrides() throws {
        let configuration = try loadConfiguration("[plugin:rec]\nuse = mine.Plugin\npriority = 7\ncopy_env = false\n")
        let watcher = try #require(configuration.watchers.first { $0.name == "plugin:rec" })
        #expect(watcher.priority == 7)
        #expect(!watcher.copyEnv)
        #expect(watcher.cmd.hasPrefix("python3 -c "))
    }

    @Test("a Python plugin and a watcher of the same name clash")
    func clash() {
        let error = loadError("[watcher:plugin:rec]\ncmd = x\n[plugin:rec]\nuse = mine.Plugin\n")
        #expect(error?.description.hasPrefix("circus.ini:3:") == true, "\(error?.description ?? "no error")")
    }
}

/// Parses `text` (native plugins included), which must fail, and returns the error.
private func parseError(_ text: String) -> ConfigError? {
    do {
        _ = try parseConfiguration(text)
        return nil
    } catch let error as ConfigError {
        return error
    } catch {
        return nil
    }
}
