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
            let thread = try OSThread.start {
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
    }
}
