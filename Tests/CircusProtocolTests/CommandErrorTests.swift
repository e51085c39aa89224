// Every reason text and errno, byte for byte with Circus 0.19's `raise` statements.

import CircusProtocol
import Testing

@Suite("Command errors")
struct CommandErrorTests {
    @Test(
        "reasons and error numbers",
        arguments: [
            (CommandError.invalidJSON, 1, "json invalid"),
            (.unknownCommand("nope"), 2, "unknown command: 'nope'"),
            (.unknownCommand("it's"), 2, #"unknown command: "it's""#),
            (.unknownCommand(#"a'b"c"#), 2, #"unknown command: 'a\'b"c'"#),
            (.missingProperty("name"), 3, "message invalid 'name' is missing"),
            (.programNotFound("ghost"), 3, "program ghost not found"),
            (.programNotFound("web app"), 3, "program web app not found"),
            (.programNotFound(JSON.int(5)), 3, "program 5 not found"),
            (.unknownMatchMethod("fuzzy"), 3, "unknown match method fuzzy"),
            (.unknownMatchMethod(nil), 3, "unknown match method None"),
            (.processNotFound(process: 16115, name: "web app"), 3, "process 16115 not found in 'web app'"),
            (.processNotFound(process: "16115", name: "web app"), 3, "process '16115' not found in 'web app'"),
            (.optionNotFound("__nope__"), 3, "'__nope__' option not found"),
            (.notAnExistingOption("umask"), 3, "'umask' not an existing option"),
            (.usePubSubSocket, 3, "invalid message. use a pub/sub socket"),
            (.uidDoesNotMatchEndpointOwner, 3, "uid does not match endpoint_owner"),
            (.signalInvalid, 3, "signal invalid"),
            (.optionsNotAnObject, 3, "'options' property should be an object"),
            (.unknownKey("bogus"), 3, "unknown key 'bogus'"),
            (.notAnInteger("numprocesses"), 3, "'numprocesses' isn't an integer"),
            (.notANumber("warmup_delay"), 3, "'warmup_delay' isn't a number"),
            (.notAnIntegerOrString("uid"), 3, "'uid' isn't an integer or string"),
            (.notABoolean("shell"), 3, "'shell' isn't a valid boolean"),
            (.notAnObject("env"), 3, "'env' isn't a valid object"),
            (.notAString("A"), 3, "'A' isn't a string"),
            (.notAList("keys"), 3, "'keys' isn't a list"),
            (.notAHookDict("x"), 3, "'x' isn't a valid hook dict"),
            (.unknownHook(["bogus": "x"]), 3, "Unknown hook {'bogus': 'x'}"),
            (.streamNeedsClass("stdout_stream"), 3, "'stdout_stream' must have a 'class' key"),
            (.invalidRlimit("rlimit_bogus"), 3, "'rlimit_bogus' isn't a valid rlimit setting"),
            (.invalidRlimitValue("10"), 3, "'10' rlimit value isn't a valid int"),
            (.osError("[Errno 2] No such file or directory: 'x'"), 4, "[Errno 2] No such file or directory: 'x'"),
            (.alreadyRunning("watcher_stop"), 5, "arbiter is already running watcher_stop command"),
            (.arbiterRestarting, 5, "arbiter is restarting..."),
            (.serverError, 6, "server error"),
            (
                .unexpected(
                    rawRequest: Array(#"{"id":"k7","command":"signal","properties":{"name":"sleeper","signum":"USR1","childpid":5}}"#.utf8),
                    CommandError.Text.cannotSpecifyChildpidWithoutPid),
                5,
                #"command b'{"id":"k7","command":"signal","properties":{"name":"sleeper","signum":"USR1","childpid":5}}': cannot specify childpid without pid"#
            ),
            (.unexpected(rawRequest: Array("x".utf8), CommandError.Text.alreadyExist("ALPHA")), 5, "command b'x': 'ALPHA' already exist"),
            (.unexpected(rawRequest: Array("x".utf8), CommandError.Text.singletonHasSingleProcess), 5,
             "command b'x': Singleton watcher has a single process"),
        ] as [(CommandError, Int, String)]
    )
    func reason(error: CommandError, errno: Int, reason: String) {
        #expect(error.code.rawValue == errno)
        #expect(error.reason == reason)
        #expect(error.traceback == nil)
    }

    @Test("error codes")
    func codes() {
        #expect(
            [ErrorCode.notSpecified, .invalidJSON, .unknownCommand, .messageError, .osError, .commandError, .badMessageData]
                .map(\.rawValue) == [0, 1, 2, 3, 4, 5, 6]
        )
    }
}
