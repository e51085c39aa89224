/* Hooks for the hook tests, built with `cc -shared` against circus/plugin.h alone.
 * Each call appends one line to the file named by $HOOK_LOG, so the test can read what
 * the hook received and in which order. */
#include <circus/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void note(const char *fmt, const char *a, size_t alen, const char *b, size_t blen, const char *c, size_t clen) {
    const char *path = getenv("HOOK_LOG");
    if (path == NULL) return;
    FILE *f = fopen(path, "a");
    if (f == NULL) return;
    fprintf(f, fmt, (int)alen, a, (int)blen, b, (int)clen, c);
    fclose(f);
}

static void record(const char *symbol, const circus_hook_call *call) {
    note("%.*s %.*s %.*s\n", symbol, strlen(symbol), call->hook_name.ptr, call->hook_name.len,
         call->request_json.ptr, call->request_json.len);
}

/* Says yes, and logs through the host. */
CIRCUS_EXPORT int32_t allow(const circus_hook_call *call, circus_error *err) {
    (void)err;
    record("allow", call);
    call->api->log(call->host, CIRCUS_LOG_INFO, circus_cstr("allow was called"));
    return CIRCUS_HOOK_ALLOW;
}

/* Says no. */
CIRCUS_EXPORT int32_t deny(const circus_hook_call *call, circus_error *err) {
    (void)err;
    record("deny", call);
    return CIRCUS_HOOK_DENY;
}

/* Fails with a message. */
CIRCUS_EXPORT int32_t fail(const circus_hook_call *call, circus_error *err) {
    record("fail", call);
    call->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("the database is down"));
    return CIRCUS_E_INTERNAL;
}

/* Never returns. */
CIRCUS_EXPORT int32_t hang(const circus_hook_call *call, circus_error *err) {
    (void)err;
    record("hang", call);
    for (;;) pause();
    return CIRCUS_HOOK_ALLOW;
}

/* Waits until the file $HOOK_LOG.release exists, then says yes: a hook as slow as the
 * test wants. */
CIRCUS_EXPORT int32_t hold(const circus_hook_call *call, circus_error *err) {
    (void)err;
    record("hold", call);
    const char *log = getenv("HOOK_LOG");
    char release[4096];
    snprintf(release, sizeof release, "%s.release", log != NULL ? log : "");
    while (access(release, F_OK) != 0) usleep(5000);
    return CIRCUS_HOOK_ALLOW;
}

/* Says yes twice, then no: a refusal in the middle of a start. */
CIRCUS_EXPORT int32_t allow_twice(const circus_hook_call *call, circus_error *err) {
    (void)err;
    static int calls = 0;
    record("allow_twice", call);
    return ++calls <= 2 ? CIRCUS_HOOK_ALLOW : CIRCUS_HOOK_DENY;
}

/* Like hold, but only its second call waits for the release file. */
CIRCUS_EXPORT int32_t hold_second(const circus_hook_call *call, circus_error *err) {
    static int calls = 0;
    if (++calls != 2) {
        (void)err;
        record("hold_second", call);
        return CIRCUS_HOOK_ALLOW;
    }
    record("hold_second", call);
    const char *log = getenv("HOOK_LOG");
    char release[4096];
    snprintf(release, sizeof release, "%s.release", log != NULL ? log : "");
    while (access(release, F_OK) != 0) usleep(5000);
    (void)err;
    return CIRCUS_HOOK_ALLOW;
}

/* Any C function, called through libffi with the arguments its declaration binds. */
CIRCUS_EXPORT _Bool typed_signal(long pid, int signum, const char *watcher) {
    char text[128];
    int n = snprintf(text, sizeof text, "pid=%ld signum=%d", pid, signum);
    note("typed_signal %.*s %.*s%.*s\n", text, (size_t)n, watcher, strlen(watcher), "", 0);
    return 1;
}

/* Refuses every signal but SIGKILL (which cannot be refused). */
CIRCUS_EXPORT int veto_signal(int signum) {
    char text[32];
    int n = snprintf(text, sizeof text, "signum=%d", signum);
    note("veto_signal %.*s%.*s%.*s\n", text, (size_t)n, "", 0, "", 0);
    return 0;
}

/* extended_stats through libffi: the pid, and the process's stats as JSON text. */
CIRCUS_EXPORT void typed_stats(int pid, const char *stats, const char *hook) {
    char text[64];
    int n = snprintf(text, sizeof text, "pid=%d ", pid);
    note("typed_stats %.*s%.*s %.*s\n", text, (size_t)n, hook, strlen(hook), stats, strlen(stats));
}

/* The cheapest hooks, for the benchmark. */
CIRCUS_EXPORT int32_t quick(const circus_hook_call *call, circus_error *err) {
    (void)call; (void)err;
    return CIRCUS_HOOK_ALLOW;
}

CIRCUS_EXPORT _Bool quick_typed(int pid) {
    return pid > 0;
}
