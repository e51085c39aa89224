// `set` and `add` with hooks, as Circus serves them: `hooks.<name>` gives a watcher a new
// hook (a library's symbol, a declared signature, or a Python callable whose module is
// imported anew, as Circus reloads it), `add` takes a `hooks` object. What cannot be opened
// or parsed is refused with errno 3 naming the hook, and nothing changes.

import CircusProtocol
import Foundation
import Testing

@Suite("Hooks changed by set and add") struct HookSetTests {
    @Test func setGivesAWatcherANativeHookCheckedFirst() async throws {
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            autostart = false
            """ + markerWatcher) { h, library in
            expectOK(try await h.call("set", ["name": "w", "waiting": true,
                                              "options": ["hooks.before_start": .string("\(library.path):deny")]]))
            expectError(try await h.call("start", ["name": "w", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'w' refused the start")

            // Refused, each naming the hook; the hook stays `deny`.
            expectError(try await h.call("set", ["name": "w", "options": ["hooks.before_start": "/nonexistent/libx.so:f"]]),
                        errno: 3, reasonContains: "'hooks.before_start': cannot open /nonexistent/libx.so: ")
            expectError(try await h.call("set", ["name": "w", "options": ["hooks.before_start": .string("\(library.path):nope")]]),
                        errno: 3, reasonContains: "'hooks.before_start': ")
            expectError(try await h.call("set", ["name": "w", "options": [
                "hooks.after_spawn": .string("\(library.path):typed_signal(pid: pid_tt) -> bool")]]),
                        errno: 3, reasonContains: "'hooks.after_spawn': ")
            expectError(try await h.call("set", ["name": "w", "options": ["hooks.bogus": .string("\(library.path):allow")]]),
                        errno: 3, reason: "'hooks.bogus': unknown hook 'bogus': hooks are before_start, after_start, "
                            + "before_spawn, after_spawn, before_stop, after_stop, before_signal, after_signal, "
                            + "before_reap, after_reap, extended_stats")
            expectError(try await h.call("set", ["name": "w", "options": ["hooks.before_start": 5]]),
                        errno: 3, reason: "'hooks.before_start' must be \"target[, ignore_failure]\" or [target, ignore_failure]")
            expectError(try await h.call("start", ["name": "w", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'w' refused the start")

            // A failing hook whose failure is ignored (`, true`, as in the file) lets it start.
            expectOK(try await h.call("set", ["name": "w", "waiting": true,
                                              "options": ["hooks.before_start": .string("\(library.path):fail, true")]]))
            // Past every event of the refused starts and the sets (the SUB reader may lag
            // behind the replies: a mark taken now could come before some of them).
            let mark = try await h.eventBarrier(on: "w") + 1
            expectOK(try await h.call("start", ["name": "w", "waiting": true]), keys: ["info"])
            #expect(try await h.waitWatcherEvents("w", since: mark, through: "start")
                == ["hook_failure before_start", "spawn", "start"])
        }
    }

    @Test func addTakesAHooksObject() async throws {
        try await withHookDaemon(markerWatcher) { h, library in
            let mark = h.mark
            expectOK(try await h.call("add", [
                "name": "a", "cmd": "sleep 100", "start": true, "waiting": true,
                "options": ["hooks": ["after_start": .string("\(library.path):allow"),
                                      "before_spawn": [.string("\(library.path):fail"), true]]],
            ]), keys: ["started", "kept"])
            #expect(try await h.waitWatcherEvents("a", since: mark, through: "hook_success after_start")
                == ["add", "hook_failure before_spawn", "spawn", "hook_success after_start", "start"])
            expectError(try await h.call("add", ["name": "b", "cmd": "sleep 100",
                                                 "options": ["hooks": ["before_start": "/nonexistent/libx.so:f"]]]),
                        errno: 3, reasonContains: "'hooks.before_start': cannot open /nonexistent/libx.so: ")
            #expect(try await h.call("list")["watchers"] == ["a", "marker"])
        }
    }
}
