/*
 * spawn_loop: bare limit for "start N processes".  posix_spawn()s N copies of
 * PROGRAM ARGS... back to back (glibc's posix_spawn returns once the child has
 * exec'd), then SIGKILLs and reaps them all.
 *
 *   spawn_loop N PROGRAM [ARGS...]
 *
 * Prints {"n": N, "spawn_s": ..., "teardown_s": ...}.
 */
#include "spawn_common.h"
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s N PROGRAM [ARGS...]\n", argv[0]); return 2; }
    int n = atoi(argv[1]);
    if (n < 1) return 2;
    spawn_setup();
    pid_t *pids = calloc((size_t)n, sizeof(pid_t));
    int spawned = 0, rc = 0;
    uint64_t t0 = now_ns();
    for (; spawned < n; spawned++) {
        int e = posix_spawn(&pids[spawned], argv[2], &g_fa, &g_attr, argv + 2, g_env);
        if (e != 0) { fprintf(stderr, "posix_spawn: %s\n", strerror(e)); rc = 1; break; }
    }
    uint64_t t1 = now_ns();
    for (int i = 0; i < spawned; i++) kill(pids[i], SIGKILL);
    for (int i = 0; i < spawned; i++) while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR) {}
    uint64_t t2 = now_ns();
    if (rc == 0)
        printf("{\"n\": %d, \"spawn_s\": %.6f, \"teardown_s\": %.6f}\n", n,
               (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9);
    return rc;
}
