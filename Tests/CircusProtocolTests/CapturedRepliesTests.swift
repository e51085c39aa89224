// Byte-for-byte comparison with the request/reply pairs captured from Circus 0.19
// by running it, with the captured `time` values reused.

import CircusProtocol
import OrderedCollections
import Testing

@Suite("Replies match the pairs captured from Circus 0.19")
struct CapturedRepliesTests {
    /// Success pairs: the payload is what the daemon would return; here it is read back
    /// from the capture, so the test checks the envelope (key order, `status` override,
    /// `id` echo, float `time`) and the serialisation of every value.
    static let okPairs: [(request: String, reply: String)] = [
        (#"{"id":"a1","command":"list"}"#,
         #"{"status": "ok", "time": 1795975971.675106, "watchers": ["circusd-stats", "sleeper", "web app"], "id": "a1"}"#),
        (#"{"command":"list"}"#,
         #"{"status": "ok", "time": 1795975971.7445235, "watchers": ["circusd-stats", "sleeper", "web app"], "id": null}"#),
        (#"{"id":"a2","command":"LIST","properties":{"name":"SLEEPER"}}"#,
         #"{"status": "ok", "time": 1795975971.8181398, "pids": [7023, 7024], "id": "a2"}"#),
        (#"{"id":"a6","command":"get","properties":{"name":"sleeper","keys":["cmd","numprocesses","env","stop_signal","graceful_timeout","stdout_stream_conf"]}}"#,
         #"{"status": "ok", "time": 1795975972.1827416, "options": {"cmd": "sleep 1000", "numprocesses": 2, "env": {"__name__": "env", "FOO": "bar"}, "stop_signal": 15, "graceful_timeout": 30.0, "stdout_stream_conf": {}}, "id": "a6"}"#),
        (#"{"id":"c1","command":"incr","properties":{"name":"sleeper"}}"#,
         #"{"status": "ok", "time": 1795975992.3925874, "id": "c1"}"#),
        (#"{"id":"c2","command":"incr","properties":{"name":"sleeper","nb":2,"waiting":true}}"#,
         #"{"status": "ok", "time": 1795975992.9823587, "numprocesses": 5, "id": "c2"}"#),
        (#"{"id":"c4","command":"numprocesses","properties":{"name":"sleeper"}}"#,
         #"{"status": "ok", "time": 1795975993.1407592, "numprocesses": 2, "watcher_name": "sleeper", "id": "c4"}"#),
        (#"{"id":"f2","command":"incr","properties":{"name":"single"}}"#,
         #"{"status": "ok", "time": 1795976171.2980566, "numprocesses": 1, "singleton": true, "id": "f2"}"#),
        (#"{"id":"k1","command":"kill","properties":{"name":"sleeper","pid":7687,"signum":"SIGINT","waiting":true}}"#,
         #"{"status": "ok", "time": 1795976009.970038, "id": "k1"}"#),
        (#"{"id":"s1","command":"stop","properties":{"name":"sleeper","waiting":true}}"#,
         #"{"status": "ok", "time": 1795976022.1376016, "info": null, "id": "s1"}"#),
        (#"{"id":"s2","command":"status","properties":{"name":"sleeper"}}"#,
         #"{"status": "stopped", "time": 1795976022.18506, "id": "s2"}"#),
        (#"{"id":"s4","command":"start","properties":{"name":"sleeper","waiting":true}}"#,
         #"{"status": "ok", "time": 1795976022.2919917, "info": {"started": [8402, 8403], "kept": []}, "id": "s4"}"#),
        (#"{"id":"s6","command":"restart","properties":{"name":"sleeper","waiting":true}}"#,
         #"{"status": "ok", "time": 1795976022.507974, "info": {"stopped": [8402, 8403], "started": [8410, 8411], "kept": []}, "id": "s6"}"#),
        (#"{"id":"s7","command":"reload","properties":{"name":"sleeper","waiting":true}}"#,
         #"{"status": "ok", "time": 1795976022.67083, "info": {"stopped": [8410, 8411], "started": [8415, 8416], "kept": []}, "id": "s7"}"#),
        (#"{"id":"u3","command":"add","properties":{"name":"dyn2","cmd":"sleep 500","options":{"numprocesses":2},"start":true,"waiting":true}}"#,
         #"{"status": "ok", "time": 1795976037.5873759, "started": [8709, 8710], "kept": [], "id": "u3"}"#),
        (#"{"id":"x2","command":"stats","properties":{"name":"web app","process":16115,"extended":true}}"#,
         #"{"status": "ok", "time": 1795976064.7532334, "process": 16115, "info": {"mem_info1": "8.55M", "mem_info2": "12.21M", "cpu": 0.0, "mem": 0.035, "ctime": "0:00.10", "pid": 16115, "username": "root", "nice": 0, "create_time": 1795976050.53, "age": 13.40932559967041, "cmdline": "python", "children": [], "started": 1795976051.3421025, "wid": 2}, "id": "x2"}"#),
        (#"{"id":"x5","command":"dstats"}"#,
         #"{"status": "ok", "time": 1795976064.9639525, "info": {"mem_info1": "25.84M", "mem_info2": "118.50M", "cpu": 0.0, "mem": 0.107, "ctime": "0:02.92", "pid": 7019, "username": "root", "nice": 0, "create_time": 1795975950.85, "age": 114.11394238471985, "cmdline": "python3", "children": []}, "id": "x5"}"#),
        (#"{"id":"x6","command":"listsockets"}"#,
         #"{"status": "ok", "time": 1795976065.0499604, "sockets": [{"fd": 8, "name": "web", "backlog": 2048, "host": "127.0.0.1", "port": 25580}], "id": "x6"}"#),
        (#"{"id":"x7","command":"globaloptions","properties":{"option":"check_delay"}}"#,
         #"{"status": "ok", "time": 1795976065.1127555, "options": {"check_delay": 5.0}, "id": "x7"}"#),
        (#"{"id":"x9","command":"numwatchers"}"#,
         #"{"status": "ok", "time": 1795976065.2262611, "numwatchers": 3, "id": "x9"}"#),
        (#"{"id":"i1","command":"ipython"}"#,
         #"{"status": "ok", "time": 1795976391.7326884, "shell": false, "msg": "No module named 'IPython'", "id": "i1"}"#),
        (#"{"id":"o5","command":"quit"}"#,
         #"{"status": "ok", "time": 1795976320.6785526, "id": "o5"}"#),
    ]

    @Test("success replies", arguments: okPairs)
    func okReply(request: String, reply: String) throws {
        guard case .request(let decoded) = Request.decode(Array(request.utf8)) else {
            Issue.record("request did not decode")
            return
        }
        #expect(CommandName(request: decoded.command) != nil)
        let captured = try #require(try JSONParser.parse(reply).objectValue)
        let time = try #require(captured["time"]?.doubleValue)
        var payload = JSONObject()
        for (key, value) in captured where key != "time" && key != "id" {
            if key == "status" && value == "ok" { continue }
            payload[key] = value
        }
        let bytes = try #require(decoded.okReply(payload, time: time))
        #expect(String(decoding: bytes, as: UTF8.self) == reply)
    }

    static let errorPairs: [(request: String, error: CommandError, reply: String)] = [
        (#"{"id":"a3","command":"nope"}"#, .unknownCommand("nope"),
         #"{"status": "error", "reason": "unknown command: 'nope'", "tb": null, "time": 1795975971.888743, "errno": 2, "id": "a3"}"#),
        (#"{"id":"a4","command":"get","properties":{"name":"sleeper"}}"#, .missingProperty("keys"),
         #"{"status": "error", "reason": "message invalid 'keys' is missing", "tb": null, "time": 1795975972.0381296, "errno": 3, "id": "a4"}"#),
        (#"{"id":"a7","command":"status","properties":{"name":"ghost"}}"#, .programNotFound("ghost"),
         #"{"status": "error", "reason": "program ghost not found", "tb": null, "time": 1795975972.2435722, "errno": 3, "id": "a7"}"#),
        (#"{"id":"k4","command":"signal","properties":{"name":"sleeper"}}"#, .missingProperty("signum"),
         #"{"status": "error", "reason": "message invalid 'signum' is missing", "tb": null, "time": 1795976010.146071, "errno": 3, "id": "k4"}"#),
        (#"{"id":"f11","command":"start","properties":{"name":"zzz*"}}"#, .programNotFound("zzz*"),
         #"{"status": "error", "reason": "program zzz* not found", "tb": null, "time": 1795976172.1146703, "errno": 3, "id": "f11"}"#),
        (#"{"id":"f12","command":"start","properties":{"name":"x","match":"fuzzy"}}"#, .unknownMatchMethod("fuzzy"),
         #"{"status": "error", "reason": "unknown match method fuzzy", "tb": null, "time": 1795976172.2109015, "errno": 3, "id": "f12"}"#),
        (#"{"id":"t2","command":"set","properties":{"name":"sleeper","options":{"numprocesses":"3"}}}"#, .notAnInteger("numprocesses"),
         #"{"status": "error", "reason": "'numprocesses' isn't an integer", "tb": null, "time": 1795976030.8473372, "errno": 3, "id": "t2"}"#),
        (#"{"id":"t3","command":"set","properties":{"name":"sleeper","options":{"bogus":1}}}"#, .unknownKey("bogus"),
         #"{"status": "error", "reason": "unknown key 'bogus'", "tb": null, "time": 1795976030.8937564, "errno": 3, "id": "t3"}"#),
        (#"{"id":"t6","command":"set","properties":{"name":"sleeper","options":"x"}}"#, .optionsNotAnObject,
         #"{"status": "error", "reason": "'options' property should be an object", "tb": null, "time": 1795976031.1513686, "errno": 3, "id": "t6"}"#),
        (#"{"id":"u4","command":"add","properties":{"name":"dyn3"}}"#, .missingProperty("cmd"),
         #"{"status": "error", "reason": "message invalid 'cmd' is missing", "tb": null, "time": 1795976037.6585436, "errno": 3, "id": "u4"}"#),
        (#"{"id":"j7","command":"add","properties":{"name":"o","cmd":"sleep 1","options":{"hooks":{"bogus":"x"}}}}"#, .unknownHook(["bogus": "x"]),
         #"{"status": "error", "reason": "Unknown hook {'bogus': 'x'}", "tb": null, "time": 1795976518.1714857, "errno": 3, "id": "j7"}"#),
        (#"{"id":"j8","command":"add","properties":{"name":"o","cmd":"sleep 1","options":{"stdout_stream":{"filename":"x"}}}}"#, .streamNeedsClass("stdout_stream"),
         #"{"status": "error", "reason": "'stdout_stream' must have a 'class' key", "tb": null, "time": 1795976518.2468052, "errno": 3, "id": "j8"}"#),
        (#"{"id":"j9","command":"add","properties":{"name":"o","cmd":"sleep 1","options":{"env":{"A":1}}}}"#, .notAString("A"),
         #"{"status": "error", "reason": "'A' isn't a string", "tb": null, "time": 1795976518.3116379, "errno": 3, "id": "j9"}"#),
        (#"{"id":"j10","command":"add","properties":{"name":"o","cmd":"sleep 1","options":{"rlimit_bogus":null}}}"#, .invalidRlimit("rlimit_bogus"),
         #"{"status": "error", "reason": "'rlimit_bogus' isn't a valid rlimit setting", "tb": null, "time": 1795976518.376878, "errno": 3, "id": "j10"}"#),
        (#"{"id":"j12","command":"add","properties":{"name":"o3","cmd":"sleep 1","options":{"priority": 3}}}"#, .unknownKey("priority"),
         #"{"status": "error", "reason": "unknown key 'priority'", "tb": null, "time": 1795976518.5079892, "errno": 3, "id": "j12"}"#),
        (#"{"id":"o1","command":"add","properties":{"name":"x","cmd":"sleep 681"}}"#, .uidDoesNotMatchEndpointOwner,
         #"{"status": "error", "reason": "uid does not match endpoint_owner", "tb": null, "time": 1795976320.4661136, "errno": 3, "id": "o1"}"#),
        (#"{"id":"j3","command":"rm","properties":{"name":"ghost"}}"#, .programNotFound("ghost"),
         #"{"status": "error", "reason": "program ghost not found", "tb": null, "time": 1795976517.8803816, "errno": 3, "id": "j3"}"#),
        (#"{"id":"v3","command":"incr","properties":{"name":"sleeper"}}"#, .alreadyRunning("watcher_stop"),
         #"{"status": "error", "reason": "arbiter is already running watcher_stop command", "tb": null, "time": 1795976044.4496114, "errno": 5, "id": "v3"}"#),
        (#"{"id":"x10","command":"listen"}"#, .usePubSubSocket,
         #"{"status": "error", "reason": "invalid message. use a pub/sub socket", "tb": null, "time": 1795976065.2972753, "errno": 3, "id": "x10"}"#),
        (#"{"id":"z4","command":"reloadconfig","properties":{"waiting":true}}"#, .serverError,
         #"{"status": "error", "reason": "server error", "tb": null, "time": 1795976088.9028072, "errno": 6, "id": "z4"}"#),
    ]

    @Test("error replies", arguments: errorPairs)
    func errorReply(request: String, error: CommandError, reply: String) throws {
        guard case .request(let decoded) = Request.decode(Array(request.utf8)) else {
            Issue.record("request did not decode")
            return
        }
        let time = try #require(try JSONParser.parse(reply)["time"]?.doubleValue)
        let bytes = try #require(decoded.errorReply(error, time: time))
        #expect(String(decoding: bytes, as: UTF8.self) == reply)
    }

    @Test("the validation errors of the captures come out of the validators themselves")
    func validatorsProduceCapturedErrors() throws {
        func decode(_ text: String) throws -> Request {
            guard case .request(let request) = Request.decode(Array(text.utf8)) else { throw CommandError.invalidJSON }
            return request
        }
        // a4, k4, u4: required properties.
        for (text, expected) in [
            (#"{"id":"a4","command":"get","properties":{"name":"sleeper"}}"#, CommandError.missingProperty("keys")),
            (#"{"id":"k4","command":"signal","properties":{"name":"sleeper"}}"#, .missingProperty("signum")),
            (#"{"id":"u4","command":"add","properties":{"name":"dyn3"}}"#, .missingProperty("cmd")),
        ] {
            let request = try decode(text)
            let command = try #require(CommandName(request: request.command))
            #expect(throws: expected) { try command.checkRequiredProperties(request.properties) }
        }
        // t2, t3, t6, j7-j12: option validation.
        for (text, expected) in [
            (#"{"command":"set","properties":{"name":"sleeper","options":{"numprocesses":"3"}}}"#, CommandError.notAnInteger("numprocesses")),
            (#"{"command":"set","properties":{"name":"sleeper","options":{"bogus":1}}}"#, .unknownKey("bogus")),
            (#"{"command":"set","properties":{"name":"sleeper","options":"x"}}"#, .optionsNotAnObject),
            (#"{"command":"add","properties":{"options":{"hooks":{"bogus":"x"}}}}"#, .message("Unknown hook {'bogus': 'x'}")),
            (#"{"command":"add","properties":{"options":{"stdout_stream":{"filename":"x"}}}}"#, .streamNeedsClass("stdout_stream")),
            (#"{"command":"add","properties":{"options":{"env":{"A":1}}}}"#, .notAString("A")),
            (#"{"command":"add","properties":{"options":{"rlimit_bogus":null}}}"#, .invalidRlimit("rlimit_bogus")),
            (#"{"command":"add","properties":{"options":{"priority": 3}}}"#, .unknownKey("priority")),
        ] {
            let request = try decode(text)
            let options = try request.properties.require("options")
            #expect(throws: expected) { _ = try OptionValidation.validate(options: options) }
        }
        // o1: endpoint-owner mode without options.
        #expect(throws: CommandError.uidDoesNotMatchEndpointOwner) {
            try OptionValidation.checkEndpointOwner(options: [:], owner: "nobody")
        }
    }

    @Test("json invalid is answered with a null id")
    func invalidJSON() {
        #expect(Request.decode(Array("not json".utf8)) == .invalidJSON)
        let reply = Reply.error(id: .null, time: 1795975971.9628637, error: .invalidJSON)
        #expect(
            String(decoding: reply, as: UTF8.self)
                == #"{"status": "error", "reason": "json invalid", "tb": null, "time": 1795975971.9628637, "errno": 1, "id": null}"#
        )
    }

    @Test("casts and malformed frames of the captures get no reply")
    func silentCases() {
        guard case .request(let cast) = Request.decode(Array(#"{"id":"a8","command":"list","msg_type":"cast"}"#.utf8)) else {
            Issue.record("cast did not decode")
            return
        }
        #expect(cast.isCast)
        #expect(cast.okReply(["watchers": []], time: 1) == nil)
        #expect(cast.errorReply(.unknownCommand("x"), time: 1) == nil)
        #expect(Request.decode([UInt8]()) == .noReply(.emptyBody))
        #expect(Request.decode(Array(#"{"id":"a9"}"#.utf8)) == .noReply(.missingCommand))
        #expect(Request.decode(Array("[1,2]".utf8)) == .noReply(.notAnObject))
    }
}
