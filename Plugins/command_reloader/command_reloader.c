/*
 * command_reloader.c: restarts a watcher when its executable changes on disk, as
 * Circus's CommandReloader plugin (circus.plugins.command_reloader) does.
 *
 * Every loop_rate seconds: `list`, then `get <watcher> keys=[cmd, working_dir]` for each
 * watcher whose name does not start with "plugin:"; the executable's real path (symbolic
 * links resolved) is stat()ed on the plugin's own thread. When the path, the
 * modification time or the file itself (device and inode) differ from the previous
 * round, it logs "<path> modified. Restarting." and runs `restart <watcher>`. A watcher
 * seen for the first time is only recorded; one that left `list` is forgotten.
 *
 * Options: loop_rate (1 s), active (true; false: nothing is watched).
 *
 * Where it differs from Circus: Circus takes the whole cmd string as the path (so a
 * command with arguments breaks its loop) and compares the path and the modification
 * time only. Here the whole string is used when it names a file, else its first shell
 * word (searched in PATH when it has no slash; a relative path is taken from the
 * watcher's working_dir), and a file replaced by another with the same time (a rename,
 * `cp -p`) counts as changed. loop_rate may be a decimal number (Circus: an integer).
 * A file that cannot be read is logged once and skipped, not fatal to the round.
 */
#define _GNU_SOURCE 1
#include <circus/plugin.h>

#include "circus_plugin_support.h"
#include "cps_worker.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a round found about one watcher's executable. */
typedef struct probe {
    char *watcher;
    char *cmd;                        /* from `get`; NULL when it did not answer          */
    char *working_dir;                /* may be NULL                                      */
    int error;                        /* errno of the lookup, 0 when found                */
    char path[PATH_MAX];              /* the real path                                    */
    struct timespec mtime;
    dev_t dev;
    ino_t ino;
} probe;

/* What the previous rounds recorded about a watcher. */
typedef struct known {
    char *watcher;
    int recorded;                     /* path, mtime, dev, ino are set                    */
    int warned;                       /* the last lookup failed and was logged            */
    char path[PATH_MAX];
    struct timespec mtime;
    dev_t dev;
    ino_t ino;
} known;

typedef struct reloader reloader;

typedef struct round {
    reloader *r;
    probe *probes;
    size_t count;
    size_t waiting;                   /* `get`s not yet answered                          */
    int cancelled;                    /* a `get` came back cancelled: the instance stops  */
} round;

struct reloader {
    const circus_host_api *api;
    circus_host *host;
    double loop_rate;
    int active;
    cps_worker *worker;
    circus_handle loop;
    int busy;                         /* a round is under way                             */
    known *known;
    size_t n_known;
};

/* ---- finding the executable (on the worker thread) ------------------------------------ */

/* The first word of cmd as a POSIX shell splits it (quotes and backslashes). */
static int first_word(const char *cmd, char *out, size_t cap) {
    size_t n = 0;
    char quote = 0;
    int started = 0;
    const char *p = cmd;
    while (*p == ' ' || *p == '\t' || *p == '\n') {
        p++;
    }
    for (; *p != '\0'; p++) {
        char c = *p;
        if (quote == '\'') {
            if (c == '\'') {
                quote = 0;
                continue;
            }
        } else if (quote == '"') {
            if (c == '"') {
                quote = 0;
                continue;
            }
            if (c == '\\' && (p[1] == '"' || p[1] == '\\')) {
                c = *++p;
            }
        } else if (c == '\'' || c == '"') {
            quote = c;
            started = 1;
            continue;
        } else if (c == '\\' && p[1] != '\0') {
            c = *++p;
        } else if (c == ' ' || c == '\t' || c == '\n') {
            break;
        }
        if (n + 1 >= cap) {
            return 0;
        }
        out[n++] = c;
        started = 1;
    }
    out[n] = '\0';
    return started && n > 0;
}

/* name relative to dir when it is relative and dir is given. */
static int join(const char *dir, const char *name, char *out, size_t cap) {
    int n = (name[0] == '/' || dir == NULL || dir[0] == '\0') ? snprintf(out, cap, "%s", name)
                                                              : snprintf(out, cap, "%s/%s", dir, name);
    return n > 0 && (size_t)n < cap;
}

/* The file the watcher runs: see the header comment. Returns 0 or an errno. */
static int executable_of(const probe *p, char *out, size_t cap) {
    char word[PATH_MAX];
    struct stat st;
    const char *path_env;
    if (join(p->working_dir, p->cmd, out, cap) && stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
        return 0; /* the whole string names a file, as Circus expects */
    }
    if (!first_word(p->cmd, word, sizeof word)) {
        return EINVAL;
    }
    if (strchr(word, '/') != NULL) {
        return join(p->working_dir, word, out, cap) ? 0 : ENAMETOOLONG;
    }
    path_env = getenv("PATH");
    while (path_env != NULL && *path_env != '\0') {
        const char *end = strchr(path_env, ':');
        size_t len = end != NULL ? (size_t)(end - path_env) : strlen(path_env);
        int n = snprintf(out, cap, "%.*s/%s", (int)len, len > 0 ? path_env : ".", word);
        if (n > 0 && (size_t)n < cap && access(out, X_OK) == 0) {
            return 0;
        }
        path_env = end != NULL ? end + 1 : NULL;
    }
    return ENOENT;
}

static void look(void *job, cps_worker *worker) {
    round *rd = (round *)job;
    size_t i;
    for (i = 0; i < rd->count && !cps_worker_stopping(worker); i++) {
        probe *p = &rd->probes[i];
        char candidate[PATH_MAX];
        struct stat st;
        if (p->cmd == NULL) {
            continue;
        }
        p->error = executable_of(p, candidate, sizeof candidate);
        if (p->error == 0 && realpath(candidate, p->path) == NULL) {
            p->error = errno;
        }
        if (p->error == 0 && stat(p->path, &st) != 0) {
            p->error = errno;
        }
        if (p->error == 0) {
            p->mtime = st.st_mtim;
            p->dev = st.st_dev;
            p->ino = st.st_ino;
        }
    }
}

/* ---- rounds (on the instance's queue) --------------------------------------------------- */

static void round_free(void *ud) {
    round *rd = (round *)ud;
    size_t i;
    for (i = 0; i < rd->count; i++) {
        free(rd->probes[i].watcher);
        free(rd->probes[i].cmd);
        free(rd->probes[i].working_dir);
    }
    free(rd->probes);
    free(rd);
}

static known *find_known(reloader *r, const char *watcher) {
    size_t i;
    for (i = 0; i < r->n_known; i++) {
        if (strcmp(r->known[i].watcher, watcher) == 0) {
            return &r->known[i];
        }
    }
    return NULL;
}

static known *add_known(reloader *r, const char *watcher) {
    known *grown = (known *)realloc(r->known, (r->n_known + 1) * sizeof *grown);
    known *k;
    if (grown == NULL) {
        return NULL;
    }
    r->known = grown;
    k = &r->known[r->n_known];
    memset(k, 0, sizeof *k);
    k->watcher = cps_strndup(watcher, strlen(watcher));
    if (k->watcher == NULL) {
        return NULL;
    }
    r->n_known++;
    return k;
}

static void compare(reloader *r, const probe *p) {
    known *k = find_known(r, p->watcher);
    if (k == NULL && (k = add_known(r, p->watcher)) == NULL) {
        return;
    }
    if (p->error != 0) {
        if (!k->warned) {
            k->warned = 1;
            cps_log(r->api, r->host, CIRCUS_LOG_WARNING, "%s: cannot find the file of its command \"%s\": %s",
                    p->watcher, p->cmd, strerror(p->error));
        }
        return;
    }
    k->warned = 0;
    if (k->recorded && (strcmp(k->path, p->path) != 0 || k->mtime.tv_sec != p->mtime.tv_sec ||
                        k->mtime.tv_nsec != p->mtime.tv_nsec || k->dev != p->dev || k->ino != p->ino)) {
        cps_log(r->api, r->host, CIRCUS_LOG_INFO, "%s modified. Restarting.", p->path);
        cps_cast(r->api, r->host, "restart", p->watcher, "");
    }
    k->recorded = 1;
    memcpy(k->path, p->path, sizeof k->path);
    k->mtime = p->mtime;
    k->dev = p->dev;
    k->ino = p->ino;
}

static void looked(void *ud) {
    round *rd = (round *)ud;
    size_t i;
    for (i = 0; i < rd->count; i++) {
        if (rd->probes[i].cmd != NULL) {
            compare(rd->r, &rd->probes[i]);
        }
    }
    rd->r->busy = 0;
}

/* Every `get` answered: stat() the files on the plugin's thread. */
static void gets_done(round *rd) {
    reloader *r = rd->r;
    if (rd->cancelled || r->worker == NULL) {
        round_free(rd);
        return;
    }
    if (cps_worker_submit(r->worker, look, looked, round_free, rd) != CIRCUS_OK) {
        round_free(rd);
        r->busy = 0;
    }
}

typedef struct get_call {
    round *rd;
    size_t index;
} get_call;

static void on_get(void *ud, circus_status st, circus_str json) {
    get_call *g = (get_call *)ud;
    round *rd = g->rd;
    probe *p = &rd->probes[g->index];
    circus_str options, v;
    char text[PATH_MAX];
    free(g);
    if (st == CIRCUS_E_CANCELLED) {
        rd->cancelled = 1;
    } else if (st == CIRCUS_OK && cps_json_get(json, "options", &options)) {
        if (cps_json_get(options, "cmd", &v) && cps_json_string(v, text, sizeof text) >= 0) {
            p->cmd = cps_strndup(text, strlen(text));
        }
        if (cps_json_get(options, "working_dir", &v) && cps_json_string(v, text, sizeof text) >= 0) {
            p->working_dir = cps_strndup(text, strlen(text));
        }
    } /* else the watcher went away meanwhile: nothing to look at */
    if (--rd->waiting == 0) {
        gets_done(rd);
    }
}

static void ask_options(round *rd) {
    reloader *r = rd->r;
    size_t i;
    rd->waiting = rd->count;
    for (i = 0; i < rd->count; i++) {
        get_call *g = (get_call *)malloc(sizeof *g);
        cps_buf args;
        circus_status st = CIRCUS_E_INTERNAL;
        cps_buf_init(&args);
        cps_buf_adds(&args, "{\"name\": ");
        cps_buf_add_json_string(&args, rd->probes[i].watcher, strlen(rd->probes[i].watcher));
        cps_buf_adds(&args, ", \"keys\": [\"cmd\", \"working_dir\"]}");
        if (g != NULL) {
            g->rd = rd;
            g->index = i;
            st = r->api->call(r->host, circus_cstr("get"), cps_buf_str(&args), on_get, g);
            if (st != CIRCUS_OK) {
                free(g);
            }
        }
        cps_buf_free(&args);
        if (st != CIRCUS_OK) {
            rd->cancelled = rd->cancelled || st == CIRCUS_E_CANCELLED;
            if (--rd->waiting == 0) {
                gets_done(rd);
                return;
            }
        }
    }
}

/* Forgets the watchers that are no longer listed. */
static void forget_others(reloader *r, const round *rd) {
    size_t i, j, kept = 0;
    for (i = 0; i < r->n_known; i++) {
        int listed = 0;
        for (j = 0; j < rd->count && !listed; j++) {
            listed = strcmp(r->known[i].watcher, rd->probes[j].watcher) == 0;
        }
        if (listed) {
            r->known[kept++] = r->known[i];
        } else {
            free(r->known[i].watcher);
        }
    }
    r->n_known = kept;
}

static void on_list(void *ud, circus_status st, circus_str json) {
    reloader *r = (reloader *)ud;
    circus_str watchers, item;
    cps_json_iter it;
    round *rd;
    char name[1024];
    if (st == CIRCUS_E_CANCELLED) {
        return;
    }
    if (st != CIRCUS_OK || !cps_json_get(json, "watchers", &watchers) || !cps_json_array_begin(watchers, &it) ||
        (rd = (round *)calloc(1, sizeof *rd)) == NULL) {
        cps_log(r->api, r->host, CIRCUS_LOG_WARNING, "cannot list the watchers (status %d)", (int)st);
        r->busy = 0;
        return;
    }
    rd->r = r;
    while (cps_json_array_next(&it, &item)) {
        probe *grown;
        if (cps_json_string(item, name, sizeof name) < 0 || strncmp(name, "plugin:", 7) == 0) {
            continue;
        }
        grown = (probe *)realloc(rd->probes, (rd->count + 1) * sizeof *grown);
        if (grown == NULL) {
            break;
        }
        rd->probes = grown;
        memset(&rd->probes[rd->count], 0, sizeof rd->probes[0]);
        rd->probes[rd->count].watcher = cps_strndup(name, strlen(name));
        if (rd->probes[rd->count].watcher == NULL) {
            break;
        }
        rd->count++;
    }
    forget_others(r, rd);
    if (rd->count == 0) {
        round_free(rd);
        r->busy = 0;
        return;
    }
    ask_options(rd);
}

static void on_loop(void *ud, circus_handle timer) {
    reloader *r = (reloader *)ud;
    (void)timer;
    if (r->busy) {
        return; /* the previous round is still looking */
    }
    if (r->api->call(r->host, circus_cstr("list"), circus_cstr("{}"), on_list, r) == CIRCUS_OK) {
        r->busy = 1;
    }
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static circus_status reloader_create(const circus_create_params *p, void **out, circus_error *err) {
    reloader *r;
    cps_options o;
    double loop_rate = 1;
    int active = 1;
    circus_status st;
    o.api = p->api;
    o.err = err;
    o.config = p->config_json;
    if ((st = cps_opt_float(&o, "loop_rate", 0.001, 1e9, &loop_rate)) != CIRCUS_OK ||
        (st = cps_opt_bool(&o, "active", &active)) != CIRCUS_OK) {
        return st;
    }
    r = (reloader *)calloc(1, sizeof *r);
    if (r == NULL) {
        p->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("out of memory"));
        return CIRCUS_E_INTERNAL;
    }
    r->api = p->api;
    r->host = p->host;
    r->loop_rate = loop_rate;
    r->active = active;
    *out = r;
    return CIRCUS_OK;
}

static circus_status reloader_start(void *instance, circus_error *err) {
    reloader *r = (reloader *)instance;
    uint64_t every = cps_ms(r->loop_rate);
    circus_status st;
    if (!r->active) {
        cps_log(r->api, r->host, CIRCUS_LOG_INFO, "inactive (active = false): no command is watched");
        return CIRCUS_OK;
    }
    r->worker = cps_worker_start(r->api, r->host, err);
    if (r->worker == NULL) {
        return CIRCUS_E_INTERNAL;
    }
    st = r->api->add_timer(r->host, every, every, on_loop, r, NULL, &r->loop);
    if (st != CIRCUS_OK) {
        cps_error(r->api, err, st, "cannot schedule the check loop (status %d)", (int)st);
    }
    return st;
}

static void reloader_stop(void *instance) {
    reloader *r = (reloader *)instance;
    cps_worker_stop(r->worker);
    r->worker = NULL;
}

static void reloader_destroy(void *instance) {
    reloader *r = (reloader *)instance;
    size_t i;
    cps_worker_stop(r->worker);
    for (i = 0; i < r->n_known; i++) {
        free(r->known[i].watcher);
    }
    free(r->known);
    free(r);
}

static const circus_plugin_vtable reloader_vtable = {
    sizeof(circus_plugin_vtable), 0,
    reloader_create,
    reloader_start,
    reloader_stop,
    reloader_destroy,
    NULL, /* a new config recreates the instance */
};

static const circus_plugin_descriptor reloader_descriptor = {
    CIRCUS_PLUGIN_MAGIC,
    sizeof(circus_plugin_descriptor),
    CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "command_reloader",
    "1.0.0",
    "restarts a watcher when the file of its command changes",
    CIRCUS_PLUGIN_F_MULTI_INSTANCE,
    &reloader_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor) {
    (void)host_abi_minor; /* nothing newer than 1.0 is used */
    return host_abi_major == CIRCUS_ABI_MAJOR ? &reloader_descriptor : NULL;
}
