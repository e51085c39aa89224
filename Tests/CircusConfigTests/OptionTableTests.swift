import CircusConfig
import OrderedCollections
import Testing

@Suite("the table of watcher options")
struct OptionTableTests {
    @Test("one row per name; the shown names are Circus's optnames")
    func names() {
        let names = WatcherOptions.all.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(WatcherOptions.shownNames == [
            "numprocesses", "warmup_delay", "working_dir", "uid", "gid", "send_hup", "stop_signal",
            "stop_children", "shell", "shell_args", "env", "max_retry", "cmd", "args", "respawn",
            "graceful_timeout", "executable", "use_sockets", "priority", "copy_env", "singleton",
            "stdout_stream_conf", "on_demand", "stderr_stream_conf", "max_age", "max_age_variance",
            "close_child_stdin", "close_child_stdout", "close_child_stderr",
        ])
    }

    @Test("every row reads back what it writes")
    func roundTrip() {
        var config = WatcherConfig(name: "w", cmd: "x")
        let samples: [OptionType: OptionValue] = [
            .count: .int(4), .int: .int(-1), .delay: .float(0.5), .seconds: .float(2.5), .bool: .bool(true),
            .signal: .int(9), .text: .string("/srv"), .user: .string("nobody"), .command: .string("sleep 1"),
            .arguments: .list(["a", "b"]), .object: .dictionary(["A": "1"]),
        ]
        for option in WatcherOptions.all where option.name != "name" {
            let sample = samples[option.type]!
            option.write(&config, sample)
            #expect(option.read(config) == sample, "\(option.name)")
        }
    }

    @Test("an INI watcher shows every option's default")
    func defaults() throws {
        let w = try loadWatcher("[watcher:w]\ncmd = x\n")
        for option in WatcherOptions.all where option.shown && !["cmd", "working_dir"].contains(option.name) {
            #expect(option.read(w) == option.defaultValue, "\(option.name)")
        }
    }

    @Test("the INI loader converts through the table", arguments: [
        ("numprocesses = 3", "numprocesses", OptionValue.int(3)),
        ("warmup_delay = 2", "warmup_delay", .int(2)),
        ("graceful_timeout = 1.5", "graceful_timeout", .float(1.5)),
        ("stop_signal = KILL", "stop_signal", .int(9)),
        ("send_hup = yes", "send_hup", .bool(true)),
        ("max_age = $(circus.env.PORT)", "max_age", .int(8000)),
        ("uid = $(circus.env.USER)", "uid", .string("tester")),
    ])
    func loaderUsesTable(line: String, name: String, value: OptionValue) throws {
        let w = try loadWatcher("[watcher:w]\ncmd = x\n\(line)\n")
        #expect(WatcherOptions.option(name)?.read(w) == value)
    }

    @Test("rlimit names: one table, Python's names on Linux")
    func rlimits() {
        #expect(ResourceLimits.names == [
            "as", "core", "cpu", "data", "fsize", "memlock", "msgqueue", "nice", "nofile", "nproc", "ofile", "rss",
            "rtprio", "rttime", "sigpending", "stack",
        ])
    }
}

@Suite("misspelled watcher options")
struct MisspelledOptionTests {
    @Test("edit distance")
    func distance() {
        #expect(WatcherOptions.editDistance("numproceses", "numprocesses") == 1)
        #expect(WatcherOptions.editDistance("", "abc") == 3)
        #expect(WatcherOptions.editDistance("graceful_timout", "graceful_timeout") == 1)
        #expect(WatcherOptions.editDistance("kitten", "sitting") == 3)
    }

    @Test("a misspelled option stays free-form and is warned about once, with file, line and the closest option")
    func warning() throws {
        let result = try loadINI("[watcher:w]\ncmd = x\nnumproceses = 3\nflapping.max_retry = 2\n")
        let w = result.configuration.watchers[0]
        #expect(w.numprocesses == 1)
        #expect(w.extraOptions["numproceses"] == "3")
        #expect(result.warnings == [
            "circus.ini:3: [watcher:w] unknown option 'numproceses' is kept as a free-form option: did you mean numprocesses?",
        ])
    }

    @Test("suggestions", arguments: [
        ("graceful_timout", "graceful_timeout"), ("stop_sginal", "stop_signal"), ("respwan", "respawn"),
        ("check_flaping", "check_flapping"), ("autostrat", "autostart"),
    ])
    func suggestions(_ typo: String, _ expected: String) {
        #expect(WatcherOptions.suggestion(for: typo) == expected)
    }

    @Test("free-form names far from every option get no suggestion", arguments: ["flapping.attempts", "port", "app_name", "foo"])
    func noSuggestion(_ name: String) {
        #expect(WatcherOptions.suggestion(for: name) == nil)
    }
}

@Suite("served or refused")
struct ServedOrRefusedTests {
    @Test("features not served yet are refused at load with file, line and option", arguments: [
        ("[watcher:w]\ncmd = x\ncopy_env = true\ncopy_path = true\n", "circus.ini:4: [watcher:w] copy_path: is not supported yet by this version of circusd: circusd has no Python sys.path to copy; set PYTHONPATH in an [env:NAME] section instead"),
        ("[circus]\nstatsd = true\n", "circus.ini:2: [circus] statsd: is not supported yet"),
        ("[circus]\nstats_endpoint = tcp://127.0.0.1:5557\n", "circus.ini:2: [circus] stats_endpoint: is not supported yet"),
        ("[circus]\nhttpd = true\n", "circus.ini:2: [circus] httpd: is not supported yet"),
        ("[circus]\nmulticast_endpoint = udp://237.219.251.97:12027\n", "circus.ini:2: [circus] multicast_endpoint: is not supported yet"),
        ("[circus]\nloggerconfig = /etc/log.ini\n", "circus.ini:2: [circus] loggerconfig: is not supported yet"),
    ])
    func refused(text: String, prefix: String) {
        let error = loadError(text)
        #expect(error?.description.hasPrefix(prefix) == true, "\(error?.description ?? "no error")")
    }

    @Test("their defaults ask for nothing and load", arguments: [
        "[watcher:w]\ncmd = x\nuse_sockets = false\non_demand = no\ncopy_path = false\n",
        "[circus]\nstatsd = false\nhttpd = false\nmulticast_endpoint =\n[watcher:w]\ncmd = x\n",
        "[socket:empty]\n[plugin:empty]\n[watcher:w]\ncmd = x\n",
    ])
    func defaultsLoad(text: String) throws {
        #expect(try loadConfiguration(text).watchers.count == 1)
    }

    @Test("options without effect in this daemon still load", arguments: [
        "check_flapping = false", "check_flapping = true",
    ])
    func withoutEffect(line: String) throws {
        let w = try loadWatcher("[watcher:w]\ncmd = x\n\(line)\n")
        #expect(w.extraOptions["check_flapping"] != nil)
    }
}

@Suite("virtualenv")
struct VirtualenvTests {
    /// A venv's layout on disk: lib/pythonX.Y/site-packages with a .pth file, and bin.
    func makeVenv(_ dir: TempDirectory, version: String = "3.11") throws -> String {
        try dir.write("venv/lib/python\(version)/site-packages/extra.pth", "# comment\nimport site\n../../../pkgs\nmissing\n")
        try dir.write("venv/pkgs/mod.py", "")
        try dir.write("venv/bin/python", "")
        return dir.path + "/venv"
    }

    @Test("bin first in PATH; .pth entries, PYTHONPATH and site-packages in PYTHONPATH")
    func environment() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let venv = try makeVenv(dir)
        let w = try loadWatcher(
            "[watcher:w]\ncmd = x\ncopy_env = true\nvirtualenv = \(venv)\n[env:w]\nPYTHONPATH = /opt/lib\n",
            environment: ["PATH": "/usr/bin:/bin"])
        #expect(w.env["PATH"] == "\(venv)/bin:/usr/bin:/bin")
        #expect(w.env["PYTHONPATH"] == "\(venv)/pkgs:/opt/lib:\(venv)/lib/python3.11/site-packages")
    }

    @Test("virtualenv_py_ver picks that Python's site-packages")
    func pythonVersion() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let venv = try makeVenv(dir)
        _ = try dir.write("venv/lib/python3.9/site-packages/.keep", "")
        let w = try loadWatcher(
            "[watcher:w]\ncmd = x\ncopy_env = true\nvirtualenv = \(venv)\nvirtualenv_py_ver = 3.9\n", environment: [:])
        #expect(w.env["PYTHONPATH"] == "\(venv)/lib/python3.9/site-packages")
        let error = loadError(
            "[watcher:w]\ncmd = x\ncopy_env = true\nvirtualenv = \(venv)\nvirtualenv_py_ver = 2.7\n", environment: [:])
        #expect(error?.description == "circus.ini:4: [watcher:w] virtualenv: \(venv)/lib/python2.7/site-packages,"
            + "\(venv)/lib/pypy2.7/site-packages does not exist: '\(venv)' is not a virtualenv for Python 2.7 (virtualenv_py_ver)")
    }

    @Test("a missing virtualenv is a clear error")
    func missing() {
        let error = loadError("[watcher:w]\ncmd = x\ncopy_env = true\nvirtualenv = /nonexistent/venv\n")
        #expect(error?.description == "circus.ini:4: [watcher:w] virtualenv: /nonexistent/venv/lib/python<version>/site-packages,"
            + "/nonexistent/venv/lib/pypy<version>/site-packages does not exist: '/nonexistent/venv' is not a virtualenv")
    }

    @Test("virtualenv needs copy_env, as in Circus")
    func needsCopyEnv() {
        #expect(loadError("[watcher:w]\ncmd = x\nvirtualenv = /v\n")?.description
            == "circus.ini:3: [watcher:w] virtualenv: virtualenv needs copy_env = true")
    }
}

@Suite("the example configuration")
struct ExampleConfigurationTests {
    @Test("examples/circus.ini loads with nothing refused and no warning")
    func exampleLoads() throws {
        let root = String(#filePath.split(separator: "/Tests/").first!)
        let result = try ConfigLoader.load(path: root + "/examples/circus.ini", environment: [:], currentDirectory: "/", accounts: testAccounts)
        #expect(result.configuration.watchers.map(\.name) == ["greeter", "web", "workers"])
        #expect(result.configuration.sockets.map(\.name) == ["web"])
        #expect(result.warnings.isEmpty)
    }
}
