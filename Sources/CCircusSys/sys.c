// Fixed-argument wrappers for the event loop and for daemonizing.

#define _GNU_SOURCE
#include "circus_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

int circus_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int circus_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL) < 0 ? -errno : 0;
}

int circus_timerfd_create(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int circus_timerfd_arm(int fd, int64_t nanoseconds) {
    if (nanoseconds < 1) nanoseconds = 1;
    struct itimerspec spec = {
        .it_interval = {0, 0},
        .it_value = {(time_t)(nanoseconds / 1000000000), (long)(nanoseconds % 1000000000)},
    };
    return timerfd_settime(fd, 0, &spec, NULL) < 0 ? -errno : 0;
}

int circus_timerfd_disarm(int fd) {
    struct itimerspec spec = {{0, 0}, {0, 0}};
    return timerfd_settime(fd, 0, &spec, NULL) < 0 ? -errno : 0;
}

int circus_epoll_wait(int epfd, struct circus_epoll_event *out, int max_events, int timeout_ms) {
    struct epoll_event evs[256];
    if (max_events > 256) max_events = 256;
    if (max_events < 1) max_events = 1;
    int n = epoll_wait(epfd, evs, max_events, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        out[i].events = evs[i].events;
        out[i].data = evs[i].data.u64;
    }
    return n;
}

int circus_set_child_subreaper(int on) {
    return prctl(PR_SET_CHILD_SUBREAPER, on ? 1UL : 0UL, 0UL, 0UL, 0UL) < 0 ? -errno : 0;
}

int circus_is_child_subreaper(void) {
    int value = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, (unsigned long)&value, 0UL, 0UL, 0UL) < 0) return -errno;
    return value != 0;
}

static int wait_one(idtype_t type, id_t id, int options, int *pid_out, int *code_out, int *status_out) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(type, id, &info, WEXITED | WNOHANG | options) < 0) return errno == ECHILD && type == P_ALL ? 0 : -errno;
    if (info.si_pid == 0) return 0;
    if (pid_out) *pid_out = info.si_pid;
    *code_out = info.si_code;
    *status_out = info.si_status;
    return 1;
}

int circus_wait_peek(int *pid_out, int *code_out, int *status_out) {
    return wait_one(P_ALL, 0, WNOWAIT, pid_out, code_out, status_out);
}

int circus_wait_reap(int pid, int *code_out, int *status_out) {
    return wait_one(P_PID, (id_t)pid, 0, NULL, code_out, status_out);
}

int circus_daemonize(int *report_fd) {
    // The pipe on which the daemon tells the original process how its start-up went.
    // Its write end is kept above 2 so that /dev/null can take 0, 1 and 2.
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    int writer = fds[1];
    if (writer <= 2) {
        writer = fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
        int saved = errno;
        close(fds[1]);
        if (writer < 0) {
            close(fds[0]);
            return -saved;
        }
    }
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(fds[0]);
        close(writer);
        return -saved;
    }
    if (pid > 0) {
        // The original process: wait for the session leader (it exits at once) and read.
        close(writer);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *report_fd = fds[0];
        return 1;
    }
    close(fds[0]);
    if (setsid() < 0) _exit(1);  // cannot fail in a fresh child; do not return twice
    pid = fork();
    if (pid < 0) _exit(1);  // the original process reads EOF and says so
    if (pid > 0) _exit(0);

    // Close everything but the report pipe.
    int closed = writer > 0 ? syscall(SYS_close_range, 0u, (unsigned)writer - 1, 0) : 0;
    if (closed == 0) closed = syscall(SYS_close_range, (unsigned)writer + 1, ~0u, 0);
    if (closed < 0) {
        // Kernels before 5.9: close up to the hard NOFILE limit, as Circus does (1024 when
        // unlimited).
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0) max = 1024;
        for (long fd = 0; fd < max; fd++) {
            if (fd != writer) close((int)fd);
        }
    }
    *report_fd = writer;
    int fd = open("/dev/null", O_RDWR);  // lowest free fd: 0
    if (fd != 0) {
        if (fd < 0) return 0;  // nothing sensible to report to: fds 0-2 stay closed
        dup2(fd, 0);
        close(fd);
    }
    dup2(0, 1);
    dup2(0, 2);
    return 0;
}

int circus_release_free_memory(void) {
    return malloc_trim(0);
}
