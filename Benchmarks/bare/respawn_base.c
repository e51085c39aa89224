/*
 * respawn_base: bare limit for "a child died, replace it".  An event loop
 * (epoll + signalfd for SIGCHLD) keeps one child of PROGRAM ARGS... alive.
 * COUNT times: t0, SIGKILL the child, epoll_wait wakes on the signalfd,
 * waitpid() reaps it, posix_spawn() a replacement, t1.  A short pause (PAUSE_MS,
 * default 5) separates samples so each kill hits a settled child.
 *
 * With HOOK_THREAD=1 the replacement is spawned on a worker thread, which then calls an
 * empty hook and hands its answer back through an eventfd the loop waits for (t1 when
 * the loop has read it): a respawn of a watcher with a native spawn hook, whose hook
 * thread spawns and calls the hook, without anything else.
 *
 *   respawn_base COUNT PROGRAM [ARGS...]
 *
 * Prints {"count": ..., "p50_us": ..., "p99_us": ..., "mean_us": ..., "max_us": ...,
 *         "reap_p50_us": ..., "spawn_p50_us": ...}  (reap = kill -> waitpid done,
 *         spawn = the posix_spawn call alone).  If LAT_OUT is set, the kill ->
 *         replacement latencies are also written there as native uint64 ns.
 */
#include "spawn_common.h"
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* HOOK_THREAD: the worker that spawns and calls the hook, woken as circusd's hook thread
 * is (a mutex and a condition variable), answering through an eventfd. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int pending = 0;
static int answer_fd;
static char **spawn_argv;
static pid_t spawned;

static int __attribute__((noinline)) hook(pid_t pid) { return pid > 0; }

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!pending) pthread_cond_wait(&wake, &lock);
        pending = 0;
        pthread_mutex_unlock(&lock);
        int e = posix_spawn(&spawned, spawn_argv[0], &g_fa, &g_attr, spawn_argv, g_env);
        if (e) { fprintf(stderr, "posix_spawn: %s\n", strerror(e)); exit(1); }
        volatile int allowed = hook(spawned);
        (void)allowed;
        uint64_t one = 1;
        if (write(answer_fd, &one, sizeof one) != sizeof one) abort();
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s COUNT PROGRAM [ARGS...]\n", argv[0]); return 2; }
    int count = atoi(argv[1]);
    if (count < 1) return 2;
    const char *pm = getenv("PAUSE_MS");
    int pause_ms = pm ? atoi(pm) : 5;
    spawn_setup();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sfd};
    if (sfd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0) { perror("setup"); return 1; }
    const char *ht = getenv("HOOK_THREAD");
    int via_thread = ht && atoi(ht) == 1;
    if (via_thread) {
        spawn_argv = argv + 2;
        answer_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event aev = {.events = EPOLLIN, .data.fd = answer_fd};
        pthread_t t;
        if (answer_fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, answer_fd, &aev) != 0 ||
            pthread_create(&t, NULL, worker, NULL) != 0) { perror("setup"); return 1; }
    }

    pid_t child;
    int e = posix_spawn(&child, argv[2], &g_fa, &g_attr, argv + 2, g_env);
    if (e) { fprintf(stderr, "posix_spawn: %s\n", strerror(e)); return 1; }
    uint64_t *lat = calloc((size_t)count, sizeof(uint64_t));
    uint64_t *lreap = calloc((size_t)count, sizeof(uint64_t));
    uint64_t *lspawn = calloc((size_t)count, sizeof(uint64_t));
    for (int i = 0; i < count; i++) {
        usleep((useconds_t)pause_ms * 1000);
        uint64_t t0 = now_ns();
        kill(child, SIGKILL);
        int reaped = 0;
        while (!reaped) {
            struct epoll_event out;
            int r = epoll_wait(ep, &out, 1, 5000);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) { fprintf(stderr, "timeout waiting for SIGCHLD\n"); return 1; }
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {}
            pid_t p;
            int st;
            while ((p = waitpid(-1, &st, WNOHANG)) > 0)
                if (p == child) reaped = 1;
        }
        uint64_t tr = now_ns();
        if (via_thread) {
            pthread_mutex_lock(&lock);
            pending = 1;
            pthread_cond_signal(&wake);
            pthread_mutex_unlock(&lock);
            for (;;) {
                struct epoll_event out;
                int r = epoll_wait(ep, &out, 1, 5000);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) { fprintf(stderr, "timeout waiting for the worker\n"); return 1; }
                if (out.data.fd != answer_fd) continue;  /* a SIGCHLD of nothing: read later */
                uint64_t n;
                if (read(answer_fd, &n, sizeof n) == sizeof n) break;
            }
            child = spawned;
        } else {
            e = posix_spawn(&child, argv[2], &g_fa, &g_attr, argv + 2, g_env);
            if (e) { fprintf(stderr, "posix_spawn: %s\n", strerror(e)); return 1; }
        }
        uint64_t t1 = now_ns();
        lat[i] = t1 - t0;
        lreap[i] = tr - t0;
        lspawn[i] = t1 - tr;
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    const char *lo = getenv("LAT_OUT");
    if (lo && *lo) {
        FILE *f = fopen(lo, "wb");
        if (!f || fwrite(lat, sizeof(uint64_t), (size_t)count, f) != (size_t)count) { perror(lo); return 1; }
        fclose(f);
    }
    double sum = 0;
    for (int i = 0; i < count; i++) sum += (double)lat[i];
    qsort(lat, (size_t)count, sizeof(uint64_t), cmp_u64);
    qsort(lreap, (size_t)count, sizeof(uint64_t), cmp_u64);
    qsort(lspawn, (size_t)count, sizeof(uint64_t), cmp_u64);
    printf("{\"count\": %d, \"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, \"max_us\": %.2f, "
           "\"reap_p50_us\": %.2f, \"spawn_p50_us\": %.2f}\n",
           count, pct(lat, (size_t)count, 0.5) / 1e3, pct(lat, (size_t)count, 0.99) / 1e3,
           sum / count / 1e3, (double)lat[count - 1] / 1e3,
           pct(lreap, (size_t)count, 0.5) / 1e3, pct(lspawn, (size_t)count, 0.5) / 1e3);
    return 0;
}
