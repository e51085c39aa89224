// `validate_option` of Circus's commands/util.py: every check and its text.

import CircusProtocol
import OrderedCollections
import Testing

@Suite("Option validation")
struct OptionValidationTests {
    @Test(
        "accepted options",
        arguments: [
            ("numprocesses", 3 as JSON), ("numprocesses", true), ("max_retry", -1), ("max_age", 0), ("max_age_variance", 30),
            ("stop_signal", 15), ("warmup_delay", 0.5), ("warmup_delay", 1), ("retry_in", 2), ("graceful_timeout", 30.0),
            ("uid", "nobody"), ("uid", 1000), ("gid", "root"), ("send_hup", true), ("shell", false), ("copy_env", true),
            ("respawn", false), ("stop_children", true), ("close_child_stdin", false), ("close_child_stdout", true),
            ("close_child_stderr", true), ("env", ["A": "1"]), ("env", [:]), ("hooks", ["before_start": "x.y"]),
            ("hooks", [:]), ("stdout_stream", ["class": "FileStream", "refresh_time": 1]), ("stderr_stream", ["class": nil]),
            ("rlimit_nofile", 1024), ("rlimit_core", nil), ("rlimit_NoFile", 5), ("rlimit_ofile", true),
            ("stdout_stream.filename", 5), ("stderr_stream.x", nil), ("hooks.anything", [1]), ("cmd", 5), ("args", nil),
            ("working_dir", "/tmp"), ("singleton", "not checked"),
        ] as [(String, JSON)]
    )
    func accepted(key: String, value: JSON) {
        #expect(throws: Never.self) { try OptionValidation.validate(key: key, value: value) }
    }

    @Test(
        "rejected options, with Circus's texts",
        arguments: [
            ("bogus", 1 as JSON, "unknown key 'bogus'"),
            ("priority", 3, "unknown key 'priority'"),
            ("stdout_stream_conf", [:], "unknown key 'stdout_stream_conf'"),
            ("numprocesses", "3", "'numprocesses' isn't an integer"),
            ("numprocesses", 3.0, "'numprocesses' isn't an integer"),
            ("stop_signal", "TERM", "'stop_signal' isn't an integer"),
            ("max_retry", nil, "'max_retry' isn't an integer"),
            ("max_age", [1], "'max_age' isn't an integer"),
            ("max_age_variance", "1", "'max_age_variance' isn't an integer"),
            ("warmup_delay", "1", "'warmup_delay' isn't a number"),
            ("retry_in", nil, "'retry_in' isn't a number"),
            ("graceful_timeout", [:], "'graceful_timeout' isn't a number"),
            ("uid", 1.5, "'uid' isn't an integer or string"),
            ("gid", nil, "'gid' isn't an integer or string"),
            ("send_hup", 1, "'send_hup' isn't a valid boolean"),
            ("shell", "true", "'shell' isn't a valid boolean"),
            ("copy_env", nil, "'copy_env' isn't a valid boolean"),
            ("respawn", 0, "'respawn' isn't a valid boolean"),
            ("stop_children", "yes", "'stop_children' isn't a valid boolean"),
            ("close_child_stdin", 1, "'close_child_stdin' isn't a valid boolean"),
            ("close_child_stdout", nil, "'close_child_stdout' isn't a valid boolean"),
            ("close_child_stderr", "no", "'close_child_stderr' isn't a valid boolean"),
            ("env", "A=1", "'env' isn't a valid object"),
            ("env", ["A": 1], "'A' isn't a string"),
            ("env", ["OK": "1", "it's": nil], #""it's" isn't a string"#),
            ("hooks", "x", "'x' isn't a valid hook dict"),
            ("hooks", [1], "[1] isn't a valid hook dict"),
            ("hooks", ["bogus": "x"], "Unknown hook {'bogus': 'x'}"),
            ("hooks", ["before_start": "a.b", "nope": ["c", true]], "Unknown hook {'before_start': 'a.b', 'nope': ['c', True]}"),
            ("stdout_stream", "x", "'stdout_stream' isn't a valid object"),
            ("stderr_stream", ["filename": "x"], "'stderr_stream' must have a 'class' key"),
            ("rlimit_bogus", nil, "'rlimit_bogus' isn't a valid rlimit setting"),
            ("rlimit_", 1, "'rlimit_' isn't a valid rlimit setting"),
            ("rlimit_nofile", "10", "'10' rlimit value isn't a valid int"),
            ("rlimit_nofile", 1.5, "1.5 rlimit value isn't a valid int"),
        ] as [(String, JSON, String)]
    )
    func rejected(key: String, value: JSON, reason: String) {
        #expect(throws: CommandError.message(reason)) { try OptionValidation.validate(key: key, value: value) }
    }

    @Test("every INI-only watcher option is rejected by add")
    func rejectedByAdd() {
        for key in OptionValidation.rejectedByAdd {
            #expect(throws: CommandError.unknownKey(key)) { try OptionValidation.validate(key: key, value: 1) }
        }
        #expect(Set(OptionValidation.rejectedByAdd).isSuperset(of: [
            "priority", "use_sockets", "on_demand", "autostart", "copy_path", "virtualenv", "stdin_socket", "shell_args",
        ]))
    }

    @Test("the options object")
    func optionsObject() throws {
        #expect(throws: CommandError.optionsNotAnObject) { try OptionValidation.validate(options: "x") }
        #expect(throws: CommandError.optionsNotAnObject) { try OptionValidation.validate(options: nil) }
        // The first failing key, in order, is reported.
        #expect(throws: CommandError.unknownKey("b")) {
            try OptionValidation.validate(options: ["numprocesses": 2, "b": 1, "shell": "x"])
        }
        let options = try OptionValidation.validate(options: ["numprocesses": 2, "env": ["A": "x"]])
        #expect(options.keys.elements == ["numprocesses", "env"])
    }

    @Test("endpoint owner")
    func endpointOwner() {
        #expect(throws: Never.self) {
            try OptionValidation.checkEndpointOwner(options: ["uid": "nobody"], owner: "nobody")
        }
        #expect(throws: CommandError.uidDoesNotMatchEndpointOwner) {
            try OptionValidation.checkEndpointOwner(options: ["uid": "root"], owner: "nobody")
        }
        #expect(throws: CommandError.uidDoesNotMatchEndpointOwner) {
            try OptionValidation.checkEndpointOwner(options: ["uid": 1000], owner: "1000")
        }
    }

    @Test("watcher option names")
    func optionNames() {
        let names = Set(OptionValidation.watcherOptionNames)
        #expect(names.count == 29)
        for absent in ["autostart", "copy_path", "hooks", "virtualenv", "stdin_socket", "rlimits"] {
            #expect(!names.contains(absent))
        }
        #expect(names.isSuperset(of: ["stdout_stream_conf", "stderr_stream_conf", "shell_args", "executable"]))
    }
}
