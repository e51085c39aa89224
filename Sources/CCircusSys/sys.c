// Fixed-argument wrappers for the event loop and for daemonizing.

#define _GNU_SOURCE
#include "circus_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
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

int circus_daemonize(void) {
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid > 0) _exit(0);
    if (setsid() < 0) _exit(1);  // cannot fail in a fresh child; do not return twice
    pid = fork();
    if (pid < 0) _exit(1);
    if (pid > 0) _exit(0);

    if (syscall(SYS_close_range, 0u, ~0u, 0) < 0) {
        // Kernels before 5.9: close up to the hard NOFILE limit, as Circus does (1024 when
        // unlimited).
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0) max = 1024;
        for (long fd = 0; fd < max; fd++) close((int)fd);
    }
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
