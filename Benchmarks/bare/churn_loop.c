/* The machine's limit for a churning watcher: keep N children of `<sleep> <arg>`
 * running, and replace each one the moment it is reaped, for S seconds. Prints the
 * spawns per second as JSON. What a supervisor does for a watcher of N short-lived
 * processes, without anything else (no events, no bookkeeping).
 *
 *   churn_loop SLEEP ARG N SECONDS */
#include "spawn_common.h" /* first: it sets _GNU_SOURCE */

#include <errno.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SLEEP ARG N SECONDS\n", argv[0]);
        return 2;
    }
    char *child_argv[] = {argv[1], argv[2], NULL};
    int n = atoi(argv[3]);
    double seconds = atof(argv[4]);
    spawn_setup();
    for (int i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, argv[1], &g_fa, &g_attr, child_argv, g_env) != 0) {
            perror("posix_spawn");
            return 1;
        }
    }
    uint64_t start = now_ns();
    uint64_t end = start + (uint64_t)(seconds * 1e9);
    uint64_t spawned = 0;
    while (now_ns() < end) {
        int status;
        pid_t dead = waitpid(-1, &status, 0);
        if (dead < 0) {
            if (errno == EINTR) continue;
            perror("waitpid");
            return 1;
        }
        pid_t pid;
        if (posix_spawn(&pid, argv[1], &g_fa, &g_attr, child_argv, g_env) != 0) {
            perror("posix_spawn");
            return 1;
        }
        spawned++;
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    while (waitpid(-1, NULL, 0) > 0) {
    }
    /* The loop's own CPU (its children's is not in RUSAGE_SELF): the part of a supervisor's
     * work per respawn that no supervisor can avoid. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf("{\"spawns_per_second\": %.1f, \"loop_cpu_per_spawn_us\": %.1f}\n", (double)spawned / elapsed,
           cpu / (double)(spawned + (uint64_t)n) * 1e6);
    return 0;
}
