// The child's side of spawning, between clone and exec.
//
// The child shares the parent's memory (CLONE_VM) until it execs, so it must not allocate,
// take a lock, touch errno or call any glibc function that keeps process-wide state (glibc's
// setuid would even broadcast to the *parent's* threads). Everything here is therefore a raw
// system call on the prepared `circus_spawn_attr`.

#define _GNU_SOURCE
#include "circus_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

// MARK: - Raw system calls (no errno: results in [-4095, -1] are -errno)

#if defined(__x86_64__)
static inline long raw6(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
static inline long raw6(long n, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory", "cc");
    return x0;
}
#else
// Other architectures: glibc's syscall() writes errno, which the vfork child shares with the
// suspended parent thread; harmless (the parent does not read errno after a success), but
// noted.
static inline long raw6(long n, long a, long b, long c, long d, long e, long f) {
    long r = syscall(n, a, b, c, d, e, f);
    return r == -1 ? -errno : r;
}
#endif

#define RAW0(n) raw6((n), 0, 0, 0, 0, 0, 0)
#define RAW1(n, a) raw6((n), (long)(a), 0, 0, 0, 0, 0)
#define RAW2(n, a, b) raw6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define RAW3(n, a, b, c) raw6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define RAW4(n, a, b, c, d) raw6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define RAW5(n, a, b, c, d, e) raw6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/// The kernel's `struct sigaction` on x86-64 and arm64 (handler, flags, restorer, 64-bit
/// mask); with padding so a differently laid-out arch cannot overflow it.
struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
    uint64_t pad[4];
};

#define KSIGSET_SIZE 8  // the kernel's sigset: 64 signals

// MARK: - Shared state between parent and child

/// Lives on the parent's stack; the child writes the failure here before exiting, and the
/// parent reads it once CLONE_VFORK lets it resume.
struct child_context {
    const struct circus_spawn_attr *attr;
    /// Non-zero when the child was cloned sharing the parent's descriptor table
    /// (CLONE_FILES): the first fd it does not need; it takes its own table first.
    unsigned int unshare_from;
    volatile int error;  // errno, 0 on success
    volatile int stage;  // stage | (index << 8)
};

__attribute__((noreturn)) static void child_fail(struct child_context *ctx, long err, int stage,
                                                 size_t index) {
    ctx->error = (int)-err;
    ctx->stage = stage | (int)(index << 8);
    for (;;) RAW1(SYS_exit_group, 127);
}

/// dup2 that also works on arm64 (no dup2 syscall) and for `from == to`, where dup3 refuses
/// and what we want is only to clear close-on-exec.
static long child_dup_to(int from, int to) {
    if (from == to) return RAW3(SYS_fcntl, to, F_SETFD, 0);
    return RAW3(SYS_dup3, from, to, 0);
}

static int is_kept(const struct circus_spawn_attr *a, long fd) {
    for (size_t i = 0; i < a->keep_fd_count; i++)
        if (a->keep_fds[i] == fd) return 1;
    return 0;
}

/// Closes every fd >= 3 that is not kept. close_range over the gaps between kept fds; where
/// the kernel lacks it (< 5.9), list /proc/self/fd with getdents64; without /proc, close up
/// to the NOFILE limit.
static long child_close_fds(const struct circus_spawn_attr *a) {
    unsigned int from = 3;
    long r = 0;
    for (size_t i = 0; i <= a->keep_fd_count; i++) {
        unsigned int to = i < a->keep_fd_count ? (unsigned int)a->keep_fds[i] - 1 : ~0u;
        if (to >= from) {
            r = RAW3(SYS_close_range, from, to, 0);
            if (r == -ENOSYS) break;
            if (r < 0) return r;
        }
        if (i < a->keep_fd_count) from = (unsigned int)a->keep_fds[i] + 1;
    }
    if (r != -ENOSYS) return 0;

    long dir = RAW4(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (dir >= 0) {
        char buf[1024] __attribute__((aligned(8)));
        for (;;) {
            long n = RAW3(SYS_getdents64, dir, buf, sizeof buf);
            if (n <= 0) break;
            for (long off = 0; off < n;) {
                // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name
                unsigned short reclen;
                memcpy(&reclen, buf + off + 16, sizeof reclen);
                const char *name = buf + off + 19;
                long fd = 0;
                int digits = 0;
                for (; *name >= '0' && *name <= '9'; name++, digits++) fd = fd * 10 + (*name - '0');
                if (digits && *name == 0 && fd >= 3 && fd != dir && !is_kept(a, fd)) RAW1(SYS_close, fd);
                off += reclen;
            }
        }
        RAW1(SYS_close, dir);
        return 0;
    }
    struct rlimit lim;
    long max = 65536;
    if (RAW4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
        max = (long)lim.rlim_cur;
    for (long fd = 3; fd < max; fd++)
        if (!is_kept(a, fd)) RAW1(SYS_close, fd);
    return 0;
}

static int child_main(void *arg) {
    struct child_context *ctx = arg;
    const struct circus_spawn_attr *a = ctx->attr;
    long r;

    // 0. Its own descriptor table, holding only the fds below unshare_from (stdio, the
    // fds it keeps or dup2s): close_range with CLOSE_RANGE_UNSHARE copies no more than
    // that, where a plain clone copies (and the exec'ing child then closes) every fd the
    // daemon has open, one pidfd per supervised process among them. Nothing before this
    // point touches a descriptor, and until it the table is the parent's.
    if (ctx->unshare_from) {
        r = RAW3(SYS_close_range, ctx->unshare_from, ~0u, CLOSE_RANGE_UNSHARE);
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_CLOSE_FDS, 0);
    }

    // 1. Signal dispositions. The parent blocked every signal before clone, so no handler of
    // the daemon can run here; reset every handled signal to SIG_DFL before unblocking. SIGPIPE
    // and SIGXFSZ are also reset when ignored (the daemon ignores SIGPIPE; its children must
    // not inherit that, as Python's restore_signals ensures for Circus's children).
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct kernel_sigaction old;
        memset(&old, 0, sizeof old);
        if (RAW4(SYS_rt_sigaction, sig, 0, &old, KSIGSET_SIZE) != 0) continue;
        int handled = old.handler != (void *)SIG_DFL && old.handler != (void *)SIG_IGN;
        int restore = old.handler == (void *)SIG_IGN && (sig == SIGPIPE || sig == SIGXFSZ);
        if (handled || restore) {
            struct kernel_sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            r = RAW4(SYS_rt_sigaction, sig, &dfl, 0, KSIGSET_SIZE);
            if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_SIGNALS, (size_t)sig);
        }
    }

    // 2. stdio. A source fd below 3 could be overwritten by an earlier dup2, so move those up
    // first; /dev/null is opened (close-on-exec) above 2 for the same reason.
    int src[3];
    for (int i = 0; i < 3; i++) {
        src[i] = a->stdio[i];
        if (src[i] >= 0 && src[i] < 3 && src[i] != i) {
            r = RAW3(SYS_fcntl, src[i], F_DUPFD_CLOEXEC, 3);
            if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_STDIO, (size_t)i);
            src[i] = (int)r;
        }
    }
    int devnull = -1;
    for (int i = 0; i < 3; i++) {
        if (src[i] != CIRCUS_STDIO_DEVNULL) continue;
        if (devnull < 0) {
            r = RAW4(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC, 0);
            if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_STDIO, (size_t)i);
            if (r < 3) {
                long high = RAW3(SYS_fcntl, r, F_DUPFD_CLOEXEC, 3);
                RAW1(SYS_close, r);
                if (high < 0) child_fail(ctx, high, CIRCUS_STAGE_STDIO, (size_t)i);
                r = high;
            }
            devnull = (int)r;
        }
        src[i] = devnull;
    }
    for (int i = 0; i < 3; i++) {
        if (src[i] < 0) continue;  // inherit
        r = child_dup_to(src[i], i);
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_STDIO, (size_t)i);
    }

    // 3. Working directory, before the uid change (as Python's Popen does it), so a directory
    // only the daemon's user can enter still works.
    if (a->cwd) {
        r = RAW1(SYS_chdir, a->cwd);
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_CHDIR, 0);
    }

    // 4. umask.
    if (a->umask_value >= 0) RAW1(SYS_umask, a->umask_value);

    // 5. New session.
    if (a->flags & CIRCUS_SPAWN_SETSID) {
        r = RAW0(SYS_setsid);
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_SETSID, 0);
    }

    // 6. rlimits, soft = hard. An unlimited NOFILE is refused above fs.nr_open: fall back to
    // the current hard limit, as Circus does.
    for (size_t i = 0; i < a->rlimit_count; i++) {
        struct rlimit lim = {a->rlimits[i].value, a->rlimits[i].value};
        r = RAW4(SYS_prlimit64, 0, a->rlimits[i].resource, &lim, 0);
        if (r < 0 && a->rlimits[i].resource == RLIMIT_NOFILE && a->rlimits[i].value == RLIM_INFINITY) {
            struct rlimit cur;
            if (RAW4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, &cur) == 0) {
                lim.rlim_cur = lim.rlim_max = cur.rlim_max;
                r = RAW4(SYS_prlimit64, 0, RLIMIT_NOFILE, &lim, 0);
            }
        }
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_RLIMIT, i);
    }

    // 7. Credentials: groups, then gid, then uid (after setuid we could no longer change the
    // others). Raw syscalls set them for this process only.
    if (a->set_groups) {
        r = RAW2(SYS_setgroups, a->group_count, a->groups);
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_SETGROUPS, 0);
    }
    if (a->gid >= 0) {
        r = RAW1(SYS_setgid, a->gid);
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_SETGID, 0);
    }
    if (a->uid >= 0) {
        r = RAW1(SYS_setuid, a->uid);
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_SETUID, 0);
    }

    // 8. Descriptors: kept fds stay at their number and lose close-on-exec; every other fd
    // >= 3 is closed (including /dev/null and the moved stdio sources, which were above 2).
    for (size_t i = 0; i < a->keep_fd_count; i++) {
        r = RAW3(SYS_fcntl, a->keep_fds[i], F_SETFD, 0);
        if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_KEEP_FD, i);
    }
    r = child_close_fds(a);
    if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_CLOSE_FDS, 0);

    // 9. Empty signal mask (it survives exec), then exec.
    uint64_t empty = 0;
    r = RAW4(SYS_rt_sigprocmask, SIG_SETMASK, &empty, 0, KSIGSET_SIZE);
    if (r < 0) child_fail(ctx, r, CIRCUS_STAGE_SIGNALS, 0);
    // For the tests only: a signal in the last window before exec, which must meet the
    // default disposition and not a handler of the daemon.
    if (a->flags & CIRCUS_SPAWN_TEST_RAISE_BEFORE_EXEC) RAW2(SYS_kill, RAW0(SYS_getpid), SIGUSR1);

    long saved = 0;
    size_t saved_index = 0;
    long last = -ENOENT;
    size_t last_index = 0;
    for (size_t i = 0; i < a->path_count; i++) {
        r = RAW3(SYS_execve, a->paths[i], a->argv, a->envp);
        last = r;
        last_index = i;
        if (r == -EACCES) {
            if (!saved) { saved = r; saved_index = i; }
            continue;
        }
        if (r == -ENOENT || r == -ENOTDIR || r == -ESTALE || r == -ENODEV || r == -ETIMEDOUT) continue;
        break;  // any other error is final (execvpe)
    }
    if (saved && (last == -ENOENT || last == -ENOTDIR || last == -ESTALE || last == -ENODEV ||
                  last == -ETIMEDOUT || last == -EACCES))
        child_fail(ctx, saved, CIRCUS_STAGE_EXEC, saved_index);
    child_fail(ctx, last, CIRCUS_STAGE_EXEC, last_index);
}

// MARK: - Parent side

#define CHILD_STACK_SIZE (64 * 1024)

/// One child stack per spawning thread, kept for the thread's life: after CLONE_VFORK returns
/// the child has exec'd or exited, so it no longer uses it, and reusing it saves an
/// mmap/munmap pair per spawn. The lowest page is a guard.
static __thread void *cached_stack;

static void *child_stack_top(void) {
    if (!cached_stack) {
        long page = sysconf(_SC_PAGESIZE);
        void *p = mmap(NULL, CHILD_STACK_SIZE + (size_t)page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (p == MAP_FAILED) return NULL;
        mprotect(p, (size_t)page, PROT_NONE);
        cached_stack = p;
    }
    long page = sysconf(_SC_PAGESIZE);
    // Stacks grow down on every architecture we build for; keep 16-byte alignment.
    uintptr_t top = (uintptr_t)cached_stack + (uintptr_t)page + CHILD_STACK_SIZE;
    return (void *)(top & ~(uintptr_t)15);
}

/// Whether the kernel has close_range (5.9, with CLOSE_RANGE_UNSHARE): probed once, on a
/// range that holds no fd, so the probe closes nothing. 1 yes, 0 no, -1 not probed yet.
static int close_range_works = -1;

/// The first descriptor a child of `attr` does not take from the parent.
static unsigned int first_unneeded_fd(const struct circus_spawn_attr *attr) {
    int highest = 2;
    for (int i = 0; i < 3; i++)
        if (attr->stdio[i] > highest) highest = attr->stdio[i];
    for (size_t i = 0; i < attr->keep_fd_count; i++)
        if (attr->keep_fds[i] > highest) highest = attr->keep_fds[i];
    return (unsigned int)highest + 1;
}

int circus_spawn(const struct circus_spawn_attr *attr, int *pidfd_out, int *error_stage_out) {
    *pidfd_out = -1;
    *error_stage_out = 0;
    if (attr->path_count == 0) {
        *error_stage_out = CIRCUS_STAGE_EXEC;
        return -ENOENT;
    }
    void *stack = child_stack_top();
    if (!stack) {
        *error_stage_out = CIRCUS_STAGE_CLONE;
        return -ENOMEM;
    }

    // Any thread may spawn: the flag is read and set atomically (every prober writes the
    // same answer).
    int works = __atomic_load_n(&close_range_works, __ATOMIC_RELAXED);
    if (works < 0) {
        works = syscall(SYS_close_range, ~0u, ~0u, 0) == 0;
        __atomic_store_n(&close_range_works, works, __ATOMIC_RELAXED);
    }
    struct child_context ctx = {.attr = attr, .unshare_from = 0, .error = 0, .stage = 0};
    int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD;
    if (works) {
        flags |= CLONE_FILES;
        ctx.unshare_from = first_unneeded_fd(attr);
    }
    int pidfd = -1;

    // Block everything (glibc's internal signals too, hence the raw call) so that no handler
    // of ours runs in the child before it has reset the dispositions.
    uint64_t all = ~(uint64_t)0, old = 0;
    RAW4(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, KSIGSET_SIZE);
    int pid = clone(child_main, stack, flags, &ctx, &pidfd);
    int clone_errno = errno;
    RAW4(SYS_rt_sigprocmask, SIG_SETMASK, &old, 0, KSIGSET_SIZE);

    if (pid < 0) {
        *error_stage_out = CIRCUS_STAGE_CLONE;
        return -clone_errno;
    }
    if (ctx.error) {
        // The child has already called exit_group (that is what released us); reap it now so a
        // failed spawn leaves no zombie, and give the pidfd back.
        int code, status;
        int w;
        do {
            w = circus_pidfd_wait(pidfd, 0, &code, &status);
        } while (w == -EINTR);
        close(pidfd);
        *error_stage_out = ctx.stage;
        return -ctx.error;
    }
    *pidfd_out = pidfd;
    return pid;
}

// MARK: - pidfd helpers

int circus_pidfd_open(int pid) {
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r < 0 ? -errno : (int)r;
}

int circus_pidfd_send_signal(int pidfd, int signo) {
    long r = syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0);
    return r < 0 ? -errno : 0;
}

/* waitid(P_PIDFD) with `options`; 1 when the child has ended, 0 when it runs (WNOHANG). */
static int pidfd_waitid(int pidfd, int options, int *code_out, int *status_out) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    long r = syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | options, NULL);
    if (r < 0) return -errno;
    if (info.si_pid == 0) return 0;
    *code_out = info.si_code;
    *status_out = info.si_status;
    return 1;
}

int circus_pidfd_peek(int pidfd, int *code_out, int *status_out) {
    return pidfd_waitid(pidfd, WNOHANG | WNOWAIT, code_out, status_out);
}

int circus_pidfd_wait(int pidfd, int nohang, int *code_out, int *status_out) {
    return pidfd_waitid(pidfd, nohang ? WNOHANG : 0, code_out, status_out);
}
