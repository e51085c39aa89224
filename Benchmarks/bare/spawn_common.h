/* Shared child set-up for the bare spawn baselines: what any supervisor must
 * do at minimum for a Circus-like child (setsid, default signal mask and
 * dispositions, stdin on /dev/null, an explicit environment). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static posix_spawnattr_t g_attr;
static posix_spawn_file_actions_t g_fa;
static char *g_env[2];

static void spawn_setup(void) {
    static char tag[256];
    const char *t = getenv("BENCH_TAG");
    snprintf(tag, sizeof tag, "BENCH_TAG=%s", t ? t : "");
    g_env[0] = tag;
    g_env[1] = NULL;
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_init(&g_attr);
    posix_spawnattr_setflags(&g_attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                          POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&g_attr, &empty);
    posix_spawnattr_setsigdefault(&g_attr, &all);
    posix_spawn_file_actions_init(&g_fa);
    posix_spawn_file_actions_addopen(&g_fa, 0, "/dev/null", O_RDONLY, 0);
}

__attribute__((unused)) static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

__attribute__((unused)) static double pct(const uint64_t *s, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)s[i];
}
