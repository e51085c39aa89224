// Our threads write to the pipes and sockets of helper processes that may die at any time:
// such a write must be an EPIPE the caller handles, whatever SIGPIPE's disposition in the
// process that uses these modules (circusd ignores it; a test process does not).

import CircusSystem
import Glibc
import Synchronization
import Testing

extension CircusSystemTests {
    @Suite struct OSThreadTests {
        @Test func aWriteToAClosedPipeIsEPIPEOnTheThreadAndNoSignalReachesTheProcess() throws {
            var fds: [Int32] = [-1, -1]
            #expect(pipe(&fds) == 0)
            defer { Glibc.close(fds[1]) }
            Glibc.close(fds[0])
            let observed = Mutex<(blocked: Bool, result: Int, error: Int32)?>(nil)
            let writer = fds[1]
            let thread = try OSThread.start(name: "test") {
                var mask = sigset_t()
                pthread_sigmask(SIG_SETMASK, nil, &mask)
                var byte: UInt8 = 1
                let n = write(writer, &byte, 1)
                let error = errno
                observed.withLock { $0 = (sigismember(&mask, SIGPIPE) == 1, n, error) }
            }
            thread.join()
            let seen = try #require(observed.withLock { $0 })
            #expect(seen.blocked)
            #expect(seen.result == -1)
            #expect(seen.error == EPIPE)
            // The signal was raised for that thread only, and went with it.
            var pending = sigset_t()
            sigpending(&pending)
            #expect(sigismember(&pending, SIGPIPE) == 0)
        }

        /// `top -H`, `ps -L` and `perf` tell circusd's threads apart by name; the kernel keeps
        /// 15 bytes of it, so a longer name is cut, never between the bytes of a character.
        @Test(arguments: [("hooks:web", "hooks:web"), ("plugin:resource_watcher", "plugin:resource"),
                          ("hooks:caf\u{E9}-watcher", "hooks:caf\u{E9}-wat"), ("out:\u{E9}\u{E9}\u{E9}\u{E9}\u{E9}\u{E9}\u{E9}", "out:\u{E9}\u{E9}\u{E9}\u{E9}\u{E9}")])
        func theThreadCarriesItsName(given: String, shown: String) throws {
            let seen = Mutex<String?>(nil)
            let thread = try OSThread.start(name: given) {
                let fd = open("/proc/thread-self/comm", O_RDONLY)
                var bytes = [UInt8](repeating: 0, count: 64)
                let n = fd < 0 ? -1 : read(fd, &bytes, bytes.count)
                if fd >= 0 { close(fd) }
                // The file holds the name and a newline.
                let text = n > 0 ? String(decoding: bytes[..<(n - 1)], as: UTF8.self) : "unreadable"
                seen.withLock { $0 = text }
            }
            thread.join()
            #expect(seen.withLock { $0 } == shown)
        }
    }
}
