// CCircusSys: the few Linux system calls that Swift must not (or cannot conveniently) make
// itself. The child's side of spawning lives here because nothing written in Swift may run
// between clone and exec (the child shares the parent's memory until it execs); the rest are fixed-argument wrappers around calls
// that glibc exposes only as varargs, packed structs or not at all.

#ifndef CIRCUS_SYS_H
#define CIRCUS_SYS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __linux__
// Not part of Swift's Glibc module; re-exported here so CircusSystem sees epoll, eventfd and
// signalfd declarations and constants.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#endif

#if !defined(__clang__)
// Nullability qualifiers are for Swift's importer (clang); other compilers ignore them.
#define _Nonnull
#define _Nullable
#endif

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Spawning

/// `circus_spawn_attr.stdio[i]`: leave the descriptor the daemon has at 0/1/2 as it is.
#define CIRCUS_STDIO_INHERIT (-1)
/// `circus_spawn_attr.stdio[i]`: open `/dev/null` (read-write) at 0/1/2.
#define CIRCUS_STDIO_DEVNULL (-2)

/// `circus_spawn_attr.flags`: make the child a session (and process-group) leader, as Circus
/// does for every worker, so a signal to its group never reaches the daemon.
#define CIRCUS_SPAWN_SETSID 0x1u
/// `circus_spawn_attr.flags`, for the tests only: the child sends itself SIGUSR1 right
/// before exec, once its signals are unblocked (it must die of it: no handler of the
/// daemon may run in a child that shares the daemon's memory).
#define CIRCUS_SPAWN_TEST_RAISE_BEFORE_EXEC 0x2u

/// The step that failed, written to `*error_stage_out` as `stage | (index << 8)`; `index` is
/// the position in the list the step walks (rlimit, stdio slot, keep fd, exec candidate) so
/// the caller can name the exact item in its message.
enum circus_spawn_stage {
    CIRCUS_STAGE_NONE = 0,
    CIRCUS_STAGE_CLONE = 1,      ///< in the parent: clone() itself (EAGAIN, ENOMEM, ...)
    CIRCUS_STAGE_SIGNALS = 2,    ///< resetting dispositions or the mask
    CIRCUS_STAGE_STDIO = 3,      ///< index = 0, 1, 2: dup2 of the given fd, or opening /dev/null
    CIRCUS_STAGE_CHDIR = 4,
    CIRCUS_STAGE_SETSID = 5,
    CIRCUS_STAGE_RLIMIT = 6,     ///< index = position in `rlimits`
    CIRCUS_STAGE_SETGROUPS = 7,
    CIRCUS_STAGE_SETGID = 8,
    CIRCUS_STAGE_SETUID = 9,
    CIRCUS_STAGE_KEEP_FD = 10,   ///< index = position in `keep_fds` (the fd was not open)
    CIRCUS_STAGE_CLOSE_FDS = 11,
    CIRCUS_STAGE_EXEC = 12,      ///< index = the candidate path whose error is reported
};

/// Extracts the stage from an `error_stage_out` value.
static inline int circus_spawn_stage_of(int value) { return value & 0xff; }
/// Extracts the list index from an `error_stage_out` value.
static inline int circus_spawn_index_of(int value) { return (int)((unsigned)value >> 8); }

/// One resource limit, applied as soft = hard = `value` (RLIM_INFINITY for unlimited).
struct circus_rlimit {
    int resource;    ///< RLIMIT_* number
    uint64_t value;  ///< the limit, or UINT64_MAX (RLIM_INFINITY)
};

/// Everything the child needs, prepared by the caller before the call: the child only reads
/// this memory (it shares the parent's address space until exec), allocates nothing, and
/// makes only raw system calls.
struct circus_spawn_attr {
    /// Paths to try with execve, in order (execvpe semantics: EACCES is remembered, ENOENT
    /// and ENOTDIR move on to the next). At least one.
    const char *_Nonnull const *_Nonnull paths;
    size_t path_count;
    /// NULL-terminated argument and environment vectors.
    const char *_Nullable const *_Nonnull argv;
    const char *_Nullable const *_Nonnull envp;
    /// Working directory, or NULL to keep the daemon's.
    const char *_Nullable cwd;
    const struct circus_rlimit *_Nullable rlimits;
    size_t rlimit_count;
    /// Supplementary groups, applied when `set_groups` is non-zero (possibly an empty list).
    const uint32_t *_Nullable groups;
    size_t group_count;
    int set_groups;
    /// New real/effective ids, or -1 to keep. Order in the child: groups, gid, uid.
    int64_t gid;
    int64_t uid;
    /// New umask, or -1 to keep the daemon's.
    int umask_value;
    /// For 0, 1, 2: CIRCUS_STDIO_INHERIT, CIRCUS_STDIO_DEVNULL, or an open fd to dup2 there.
    int stdio[3];
    /// Fds kept open at the same number in the child: ascending, unique, each >= 3. Every
    /// other fd >= 3 is closed.
    const int *_Nullable keep_fds;
    size_t keep_fd_count;
    unsigned flags;
};

/// Starts a child as described by `attr` and reports the outcome of its exec synchronously.
///
/// Like glibc's posix_spawn: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` on a private stack
/// (with CLONE_FILES where the kernel has close_range: the child then copies only the fds it
/// needs, not the daemon's whole table),
/// so the parent resumes only once the child has exec'd or failed; a failure is written by the
/// child into shared memory, the failed child is reaped here and its pidfd closed, so a failed
/// spawn leaves neither a zombie nor a descriptor behind. All signals are blocked in the
/// parent around the clone.
///
/// - Parameters:
///   - attr: the prepared description (see `struct circus_spawn_attr`).
///   - pidfd_out: receives the child's pidfd (close-on-exec) on success, -1 on failure.
///   - error_stage_out: receives `stage | (index << 8)` on failure, 0 on success.
/// - Returns: the child's pid, or a negative errno.
int circus_spawn(const struct circus_spawn_attr *_Nonnull attr, int *_Nonnull pidfd_out,
                 int *_Nonnull error_stage_out);

// MARK: - pidfd

/// pidfd_open(2): a pidfd for an existing process (for processes we did not spawn, such as
/// grandchildren found in /proc). Returns the fd or a negative errno.
int circus_pidfd_open(int pid);

/// pidfd_send_signal(2) with no siginfo: signals exactly the process the pidfd refers to,
/// never a recycled pid. Returns 0 or a negative errno (ESRCH once the process was reaped).
int circus_pidfd_send_signal(int pidfd, int signo);

/// waitid(P_PIDFD) for the process behind `pidfd`.
///
/// - Parameters:
///   - nohang: non-zero for WNOHANG.
///   - code_out: CLD_EXITED, CLD_KILLED or CLD_DUMPED.
///   - status_out: the exit status or the signal number.
/// - Returns: 1 when reaped, 0 when still running (nohang only), or a negative errno.
int circus_pidfd_wait(int pidfd, int nohang, int *_Nonnull code_out, int *_Nonnull status_out);

/// waitid(P_PIDFD, WEXITED | WNOHANG | WNOWAIT): the exit status of the process behind
/// `pidfd` without reaping it (it stays a zombie). Returns 1 when it has ended, 0 when it
/// still runs, or a negative errno; `code_out` and `status_out` as for circus_pidfd_wait.
int circus_pidfd_peek(int pidfd, int *_Nonnull code_out, int *_Nonnull status_out);

// MARK: - Subreaper and re-parented children

/// Names the calling thread (prctl PR_SET_NAME; the kernel keeps 15 bytes). Returns 0 or a
/// negative errno.
int circus_set_thread_name(const char *name);

/// prctl(PR_SET_CHILD_SUBREAPER, on): while set, descendants orphaned by the death of their
/// parent are re-parented to this process instead of init. Returns 0 or a negative errno.
int circus_set_child_subreaper(int on);

/// prctl(PR_GET_CHILD_SUBREAPER): 1 when this process is a child subreaper, 0 when not, or
/// a negative errno.
int circus_is_child_subreaper(void);

/// waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT): names an ended child without reaping it, so
/// the caller can decide who reaps it.
///
/// - Parameters:
///   - pid_out: the child's pid.
///   - code_out: CLD_EXITED, CLD_KILLED or CLD_DUMPED.
///   - status_out: the exit status or the signal number.
/// - Returns: 1 when a child has ended, 0 when none has (or there are no children), or a
///   negative errno.
int circus_wait_peek(int *_Nonnull pid_out, int *_Nonnull code_out, int *_Nonnull status_out);

/// waitid(P_PID, pid, WEXITED | WNOHANG): reaps one ended child. Returns 1 when reaped, 0
/// when it is still running, or a negative errno (ECHILD: not our child, or already reaped).
int circus_wait_reap(int pid, int *_Nonnull code_out, int *_Nonnull status_out);

// MARK: - epoll

/// An epoll event without glibc's packed layout, which Swift imports awkwardly.
struct circus_epoll_event {
    uint32_t events;
    uint64_t data;
};

/// epoll_ctl(2) with `data.u64` as the token. Returns 0 or a negative errno.
int circus_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);

/// epoll_wait(2) into `out` (at most 256 events per call). Returns the count or a negative
/// errno (-EINTR included).
int circus_epoll_wait(int epfd, struct circus_epoll_event *_Nonnull out, int max_events,
                      int timeout_ms);

/// A non-blocking, close-on-exec CLOCK_MONOTONIC timerfd. Returns it or a negative errno.
int circus_timerfd_create(void);

/// Arms `fd` to expire once, `nanoseconds` from now (at least 1). Returns 0 or a negative
/// errno.
int circus_timerfd_arm(int fd, int64_t nanoseconds);

/// Disarms `fd`. Returns 0 or a negative errno.
int circus_timerfd_disarm(int fd);

// MARK: - Daemonizing

/// Circus's `daemonize()`: fork, setsid, fork (the session leader exits 0), close every
/// fd, `/dev/null` on 0, 1, 2. No chdir, no umask change. Unlike Circus, the original
/// process does not exit at once: it returns with the read end of a pipe whose write end
/// the daemon holds, so that it can learn whether the daemon started.
///
/// Call it before any thread exists: fork copies only the calling thread.
/// - Returns: 0 in the daemon (`*report_fd`: the pipe's write end, close-on-exec, above 2),
///   1 in the original process (`*report_fd`: the read end), or a negative errno (in the
///   original process, nothing forked).
int circus_daemonize(int *_Nonnull report_fd);

// MARK: - Peer of a TCP connection

/// Both ends of one TCP connection, reduced to one family (a v4-mapped IPv6 peer is
/// IPv4, since a client that connected with an IPv4 socket is in the IPv4 table).
/// Addresses in network byte order, as the kernel stores them; ports in host order.
struct circus_tcp_tuple {
    int family;
    uint32_t peer_addr[4], local_addr[4];
    uint16_t peer_port, local_port;
};

/// Reads the addresses of the connected TCP socket `fd` (getsockname/getpeername: never
/// blocks). `*is_loopback` tells whether the peer address is 127.0.0.0/8 or ::1;
/// `peer_text` receives it as `127.0.0.1:40312` or `[::1]:40312`.
/// - Returns: 0, or a negative errno.
int circus_tcp_tuple_of(int fd, struct circus_tcp_tuple *_Nonnull tuple, int *_Nonnull is_loopback,
                        char *_Nonnull peer_text, size_t peer_size);

/// The uid owning the peer's socket of `tuple`, asked of NETLINK_SOCK_DIAG (one request
/// for exactly that socket; the kernel answers before sendto returns, so it never waits).
/// - Returns: 0 (`*uid` set), 1 when no socket of this host has the peer's address and
///   port (the peer is on another host or network namespace), 2 when the peer's socket
///   is there but no process holds it any more (its owner closed it; the kernel shows
///   such remnants with uid 0, so their uid means nothing), or a negative errno (netlink
///   unavailable: use `circus_tcp_owner_proc`).
int circus_tcp_owner_netlink(const struct circus_tcp_tuple *_Nonnull tuple, uint32_t *_Nonnull uid);

/// Like `circus_tcp_owner_netlink`, from the text tables /proc/net/tcp and tcp6. Reads the
/// whole table: slow with many sockets, so not for the event loop thread.
int circus_tcp_owner_proc(const struct circus_tcp_tuple *_Nonnull tuple, uint32_t *_Nonnull uid);

/// Returns the free memory of every malloc arena to the system (glibc's `malloc_trim(0)`,
/// declared in <malloc.h>, which Swift's Glibc module does not import).
/// - Returns: 1 when some memory was returned, 0 otherwise.
int circus_release_free_memory(void);

#ifdef __cplusplus
}
#endif

#endif  // CIRCUS_SYS_H
