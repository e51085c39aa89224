import CircusConfig
import OrderedCollections
import Testing

@Suite("output stream configuration")
struct StreamConfigTests {
    @Test("every Circus class, by bare and dotted name", arguments: StreamClass.builtIn)
    func classNames(_ kind: StreamClass) throws {
        let extra: OrderedDictionary<String, String> = kind == .timedRotatingFile ? ["rotate_when": "H"] : [:]
        for name in [kind.name, "circus.stream." + kind.name] {
            var keys: OrderedDictionary<String, String> = ["class": name]
            for (k, v) in extra { keys[k] = v }
            #expect(try StreamConfig.parse(keys)?.kind == kind)
        }
    }

    @Test("a dotted path outside circus.stream is a Python class that gets every other key")
    func pythonClass() throws {
        let config = try #require(try StreamConfig.parse(
            ["class": "myapp.streams.Syslog", "address": "/dev/log", "max_bytes": "10"]))
        #expect(config.kind == .python("myapp.streams.Syslog"))
        #expect(config.pythonOptions == ["address": "/dev/log", "max_bytes": "10"])
        #expect(try StreamConfig.parse(["class": "myapp.streams:Syslog"])?.kind == .python("myapp.streams:Syslog"))
    }

    @Test("no keys: no stream; a filename without class is a FileStream with Circus's defaults")
    func defaults() throws {
        #expect(try StreamConfig.parse([:]) == nil)
        let file = try #require(try StreamConfig.parse(["filename": "/var/log/x.log"]))
        #expect(file.kind == .file)
        #expect(file.filename == "/var/log/x.log")
        #expect(file.maxBytes == 0 && file.backupCount == 0 && file.timeFormat == nil)
        let fancy = try #require(try StreamConfig.parse(["class": "FancyStdoutStream"]))
        #expect(fancy.timeFormat == "%Y-%m-%d %H:%M:%S")
        #expect(fancy.color == nil)
        // Circus's `time_format or default`: an empty format is the default too.
        #expect(try StreamConfig.parse(["class": "FancyStdoutStream", "time_format": ""])?.timeFormat == "%Y-%m-%d %H:%M:%S")
        #expect(try StreamConfig.parse(["class": "FileStream", "time_format": ""])?.timeFormat == "")
    }

    @Test("each class's options are converted")
    func options() throws {
        let file = try #require(try StreamConfig.parse([
            "class": "FileStream", "filename": "o.log", "max_bytes": " 1_000 ", "backup_count": "3", "time_format": "%Y",
        ]))
        #expect(file.maxBytes == 1000 && file.backupCount == 3 && file.timeFormat == "%Y")
        let timed = try #require(try StreamConfig.parse([
            "class": "TimedRotatingFileStream", "filename": "t.log", "rotate_when": "W6", "rotate_interval": "2",
            "utc": "true", "backup_count": "4",
        ]))
        #expect(timed.rotateWhen == .weekday(6) && timed.rotateInterval == 2 && timed.utc && timed.backupCount == 4)
        #expect(try StreamConfig.parse(["class": "FancyStdoutStream", "color": "magenta"])?.color == 5)
        #expect(try StreamConfig.parse(["class": "FancyStdoutStream", "color": "red"])?.color == 1)
        for (when, unit) in [("S", RotationUnit.second), ("M", .minute), ("H", .hour), ("D", .day),
                             ("MIDNIGHT", .midnight), ("W0", .weekday(0))] {
            #expect(try StreamConfig.parse(["class": "TimedRotatingFileStream", "rotate_when": when])?.rotateWhen == unit)
        }
    }

    @Test("bad classes, options and values name the key", arguments: [
        (["class": "NoSuchStream"], "class", "unknown stream class 'NoSuchStream'"),
        (["class": "circus.stream.Nope"], "class", "circus.stream has no class 'Nope'"),
        (["class": "my-app.Stream"], "class", "'my-app.Stream' is not a Python dotted path"),
        (["class": "QueueStream"], "class", "QueueStream keeps the output in a Python queue"),
        (["class": "circus.stream.QueueStream"], "class", "QueueStream keeps the output in a Python queue"),
        (["class": "FileStream", "refresh_time": "1"], "refresh_time",
         "FileStream takes filename, max_bytes, backup_count, time_format"),
        (["class": "StdoutStream", "filename": "x"], "filename", "StdoutStream takes no option"),
        (["class": "WatchedFileStream", "max_bytes": "10"], "max_bytes", "WatchedFileStream takes filename, time_format"),
        (["class": "TimedRotatingFileStream", "rotate_when": "H", "max_bytes": "10"], "max_bytes",
         "it rotates by time; max_bytes is FileStream's"),
        (["class": "TimedRotatingFileStream"], "rotate_when", "TimedRotatingFileStream needs rotate_when"),
        (["class": "TimedRotatingFileStream", "rotate_when": "midnight"], "rotate_when",
         "'midnight' is not a rollover interval"),
        (["class": "TimedRotatingFileStream", "rotate_when": "d"], "rotate_when", "'d' is not a rollover interval"),
        (["class": "TimedRotatingFileStream", "rotate_when": "W7"], "rotate_when", "'W7' is not a rollover interval"),
        (["class": "TimedRotatingFileStream", "rotate_when": "S", "rotate_interval": "1.5"], "rotate_interval",
         "'1.5' is not an integer"),
        (["class": "TimedRotatingFileStream", "rotate_when": "S", "rotate_interval": "0"], "rotate_interval",
         "must be at least 1"),
        (["class": "TimedRotatingFileStream", "rotate_when": "S", "utc": "False!"], "utc", "is not a boolean"),
        (["class": "FileStream", "max_bytes": "10MB"], "max_bytes", "'10MB' is not an integer"),
        (["class": "FileStream", "backup_count": "-1"], "backup_count", "must not be negative"),
        (["class": "FancyStdoutStream", "color": "pink"], "color", "'pink' is not a colour"),
        (["time_format": "%Y"], "time_format", "stream configuration invalid"),
    ] as [([String: String], String, String)])
    func errors(_ keys: [String: String], key: String, message: String) {
        var ordered = OrderedDictionary<String, String>()
        for k in keys.keys.sorted(by: { $0 == "class" ? true : ($1 == "class" ? false : $0 < $1) }) { ordered[k] = keys[k] }
        let error = #expect(throws: StreamConfigError.self) { try StreamConfig.parse(ordered) }
        #expect(error?.key == key)
        #expect(error?.message.contains(message) == true, "\(String(describing: error?.message))")
    }

    @Test("the loader keeps the keys (expanded with the watcher's env) and checks them with file, line and option")
    func loader() throws {
        let w = try loadWatcher("""
            [watcher:w]
            cmd = x
            stdout_stream.class = FileStream
            stdout_stream.filename = $(circus.env.LOGDIR)/out.log
            stderr_stream.filename = err.log

            [env:w]
            LOGDIR = /var/log/w
            """)
        #expect(w.stdoutStream == ["class": "FileStream", "filename": "/var/log/w/out.log"])
        #expect(w.stderrStream == ["filename": "err.log"])
        #expect(w.extraOptions.isEmpty)

        #expect(loadError("[watcher:w]\ncmd = x\nstdout_stream.class = TimedRotatingFileStream\nstdout_stream.rotate_when = midnight\n")?
            .description == "circus.ini:4: [watcher:w] stdout_stream.rotate_when: 'midnight' is not a rollover interval: "
            + "S, M, H, D, MIDNIGHT or W0-W6 (upper case, as Circus reads them)")
        #expect(loadError("[watcher:w]\ncmd = x\nstderr_stream.class = circus.stream.Nope\n")?.description
            == "circus.ini:3: [watcher:w] stderr_stream.class: circus.stream has no class 'Nope': use one of FileStream, "
            + "WatchedFileStream, TimedRotatingFileStream, StdoutStream, FancyStdoutStream")
        #expect(loadError("[watcher:w]\ncmd = x\nstdout_stream.class = StdoutStream\nstdout_stream.colour = red\n")?
            .description == "circus.ini:4: [watcher:w] stdout_stream.colour: StdoutStream takes no option")
    }
}
