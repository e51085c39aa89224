/*
 * resource_watcher.c: restarts a watcher whose processes use too much (or too little)
 * CPU or memory for too long, as Circus's ResourceWatcher plugin
 * (circus.plugins.resource_watcher) does.
 *
 * Every loop_rate seconds it runs `stats <watcher>` through the host and, over the
 * watcher's processes, takes the highest and lowest CPU %, memory % and resident bytes
 * ("N/A" counts as 100 % for CPU and memory, and 0 bytes). Each limit crossed adds one
 * to a counter of consecutive crossings and sends a statsd counter
 * `circus.<application_name>.watcher._resource_watcher.<watcher>.<what>:1|c`, <what>
 * being over_cpu (max > max_cpu), under_cpu (min <= min_cpu), over_memory, under_memory,
 * over_health ((max cpu + max mem %) / 2 > health_threshold); a round within the limit
 * sets its counter back to 0. When a counter exceeds max_count: `restarting:1|c`, then
 * `restart <watcher>`, and the counters start again. With process_children, each child
 * process of the watcher's processes is judged on its own too, and a child over its
 * limits gets child_signal alone (`signal <watcher> pid=<parent> childpid=<child>`).
 * A failed `stats` sends `error:1|c`.
 *
 * Options: watcher (required; `service` is Circus's deprecated alias), loop_rate (60 s),
 * max_cpu (90 %; 0 turns it off), min_cpu (none), max_mem (90 %: a number is a
 * percentage, a size such as 250M an absolute limit), min_mem (none; same forms),
 * health_threshold (75 %; 0 turns it off), max_count (3), process_children (false),
 * child_signal (15), active (true; false: nothing is checked), and the statsd options
 * host, port, sample_rate, application_name (app).
 *
 * Where it differs from Circus: an absolute min_mem is compared with resident bytes
 * (Circus compares it with the percentage); a child's signal reaches that child only
 * (Circus's request names it with a key the daemon ignores, so every process of the
 * watcher gets the signal); counters of children that are gone are forgotten; a
 * round is skipped while the previous `stats` is still unanswered.
 */
#define _GNU_SOURCE 1
#include <circus/plugin.h>

#include "circus_plugin_support.h"
#include "cps_statsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The five limits, in the order Circus checks them (and sends their counters). */
enum { OVER_CPU, UNDER_CPU, OVER_MEMORY, UNDER_MEMORY, OVER_HEALTH, LIMITS };
static const char *const limit_names[LIMITS] = {"over_cpu", "under_cpu", "over_memory", "under_memory",
                                                "over_health"};

/* A memory limit: a percentage of physical memory, or bytes. */
typedef struct mem_limit {
    int set;
    int percent;
    double value;
} mem_limit;

typedef struct settings {
    cps_statsd_settings statsd;
    char watcher[256];
    double loop_rate;
    double max_cpu;
    int has_min_cpu;
    double min_cpu;
    mem_limit max_mem;
    mem_limit min_mem;
    double health_threshold;
    int64_t max_count;
    int process_children;
    int64_t child_signal;
    int active;
} settings;

/* Consecutive crossings of each limit, for the watcher as a whole (pid 0) or one child. */
typedef struct tally {
    long long pid;
    long long parent;                 /* the child's parent, for the signal              */
    int64_t count[LIMITS];
    int seen;                         /* present in the last round                        */
} tally;

typedef struct rw {
    const circus_host_api *api;
    circus_host *host;
    settings s;
    cps_statsd client;
    circus_handle loop;
    int pending;                      /* a `stats` is unanswered                          */
    tally *tallies;                   /* [0] is the watcher as a whole                    */
    size_t count;
    size_t cap;
} rw;

/* The figures of one round over some processes. */
typedef struct figures {
    double max_cpu, min_cpu, max_mem, min_mem, max_bytes, min_bytes;
} figures;

/* ---- reading stats ------------------------------------------------------------------- */

/* A number, or `fallback` for "N/A" (or anything else that is not a number). */
static double number_or(circus_str info, const char *key, double fallback) {
    circus_str v;
    double d;
    if (cps_json_get(info, key, &v) && cps_json_number(v, &d, NULL)) {
        return d;
    }
    return fallback;
}

static double resident_bytes(circus_str info) {
    circus_str v;
    char text[64];
    double bytes;
    if (cps_json_get(info, "mem_info1", &v) && cps_json_string(v, text, sizeof text) >= 0 &&
        cps_human2bytes(text, &bytes)) {
        return bytes;
    }
    return 0; /* "N/A" */
}

typedef struct collector {
    figures f;
    size_t n;
} collector;

static void collect(collector *c, circus_str info) {
    double cpu = number_or(info, "cpu", 100);
    double mem = number_or(info, "mem", 100);
    double bytes = resident_bytes(info);
    if (c->n == 0) {
        c->f.max_cpu = c->f.min_cpu = cpu;
        c->f.max_mem = c->f.min_mem = mem;
        c->f.max_bytes = c->f.min_bytes = bytes;
    } else {
        if (cpu > c->f.max_cpu) c->f.max_cpu = cpu;
        if (cpu < c->f.min_cpu) c->f.min_cpu = cpu;
        if (mem > c->f.max_mem) c->f.max_mem = mem;
        if (mem < c->f.min_mem) c->f.min_mem = mem;
        if (bytes > c->f.max_bytes) c->f.max_bytes = bytes;
        if (bytes < c->f.min_bytes) c->f.min_bytes = bytes;
    }
    c->n++;
}

/* ---- judging ------------------------------------------------------------------------- */

static tally *find_tally(rw *r, long long pid, long long parent) {
    size_t i;
    for (i = 0; i < r->count; i++) {
        if (r->tallies[i].pid == pid) {
            r->tallies[i].parent = parent;
            return &r->tallies[i];
        }
    }
    if (r->count == r->cap) {
        size_t cap = r->cap < 8 ? 8 : r->cap * 2;
        tally *grown = (tally *)realloc(r->tallies, cap * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        r->tallies = grown;
        r->cap = cap;
    }
    memset(&r->tallies[r->count], 0, sizeof r->tallies[0]);
    r->tallies[r->count].pid = pid;
    r->tallies[r->count].parent = parent;
    return &r->tallies[r->count++];
}

/* Restarts the watcher, or signals one child of it. */
static void act(rw *r, const tally *t) {
    char more[128];
    if (t->pid == 0) {
        cps_log(r->api, r->host, CIRCUS_LOG_WARNING, "%s: over its limits, restarting it", r->s.watcher);
        cps_cast(r->api, r->host, "restart", r->s.watcher, "");
        return;
    }
    cps_log(r->api, r->host, CIRCUS_LOG_WARNING, "%s: child %lld over its limits, signalling it", r->s.watcher,
            t->pid);
    snprintf(more, sizeof more, ", \"pid\": %lld, \"childpid\": %lld, \"signum\": %lld", t->parent, t->pid,
             (long long)r->s.child_signal);
    cps_cast(r->api, r->host, "signal", r->s.watcher, more);
}

static void judge(rw *r, tally *t, const figures *f) {
    const settings *s = &r->s;
    int crossed[LIMITS];
    int64_t worst = 0;
    int i;
    crossed[OVER_CPU] = s->max_cpu != 0 && f->max_cpu > s->max_cpu;
    crossed[UNDER_CPU] = s->has_min_cpu && f->min_cpu <= s->min_cpu;
    crossed[OVER_MEMORY] = s->max_mem.set && (s->max_mem.percent ? f->max_mem > s->max_mem.value
                                                                 : f->max_bytes > s->max_mem.value);
    crossed[UNDER_MEMORY] = s->min_mem.set && (s->min_mem.percent ? f->min_mem < s->min_mem.value
                                                                  : f->min_bytes < s->min_mem.value);
    crossed[OVER_HEALTH] = s->health_threshold != 0 && (f->max_cpu + f->max_mem) / 2.0 > s->health_threshold;
    for (i = 0; i < LIMITS; i++) {
        if (crossed[i]) {
            cps_statsd_increment(&r->client, "_resource_watcher.%s.%s", s->watcher, limit_names[i]);
            t->count[i]++;
        } else {
            t->count[i] = 0;
        }
        if (t->count[i] > worst) {
            worst = t->count[i];
        }
    }
    if (worst > s->max_count) {
        cps_statsd_increment(&r->client, "_resource_watcher.%s.restarting", s->watcher);
        act(r, t);
        memset(t->count, 0, sizeof t->count);
    }
}

/* Judges each child of each process on its own. */
static void judge_children(rw *r, circus_str info) {
    cps_json_iter procs;
    circus_str key, proc;
    size_t i, kept = 1;
    for (i = 1; i < r->count; i++) {
        r->tallies[i].seen = 0;
    }
    if (cps_json_object_begin(info, &procs)) {
        while (cps_json_object_next(&procs, &key, &proc)) {
            cps_json_iter kids;
            circus_str children, child, v;
            int64_t parent = 0;
            if (cps_json_kind(proc) != CPS_JSON_OBJECT || !cps_json_get(proc, "children", &children) ||
                !cps_json_array_begin(children, &kids)) {
                continue;
            }
            if (cps_json_get(proc, "pid", &v)) {
                cps_json_int(v, &parent);
            }
            while (cps_json_array_next(&kids, &child)) {
                int64_t pid;
                collector c;
                tally *t;
                if (!cps_json_get(child, "pid", &v) || !cps_json_int(v, &pid) || pid <= 0) {
                    continue;
                }
                memset(&c, 0, sizeof c);
                collect(&c, child);
                t = find_tally(r, (long long)pid, (long long)parent);
                if (t != NULL) {
                    t->seen = 1;
                    judge(r, t, &c.f);
                }
            }
        }
    }
    /* Forget the children that are gone. */
    for (i = 1; i < r->count; i++) {
        if (r->tallies[i].seen) {
            r->tallies[kept++] = r->tallies[i];
        }
    }
    r->count = kept;
}

static void on_stats(void *ud, circus_status st, circus_str json) {
    rw *r = (rw *)ud;
    circus_str info, key, proc;
    cps_json_iter it;
    collector all;
    r->pending = 0;
    if (st == CIRCUS_E_CANCELLED) {
        return;
    }
    if (st != CIRCUS_OK || !cps_json_get(json, "info", &info) || !cps_json_object_begin(info, &it)) {
        cps_statsd_increment(&r->client, "_resource_watcher.%s.error", r->s.watcher);
        return;
    }
    memset(&all, 0, sizeof all);
    while (cps_json_object_next(&it, &key, &proc)) {
        if (cps_json_kind(proc) == CPS_JSON_OBJECT) {
            collect(&all, proc);
        }
    }
    /* No process: every figure is 0, as in Circus. */
    judge(r, &r->tallies[0], &all.f);
    if (r->s.process_children) {
        judge_children(r, info);
    }
}

static void on_loop(void *ud, circus_handle timer) {
    rw *r = (rw *)ud;
    cps_buf args;
    circus_status st;
    (void)timer;
    if (r->pending) {
        return;
    }
    cps_buf_init(&args);
    cps_buf_adds(&args, "{\"name\": ");
    cps_buf_add_json_string(&args, r->s.watcher, strlen(r->s.watcher));
    cps_buf_adds(&args, "}");
    st = r->api->call(r->host, circus_cstr("stats"), cps_buf_str(&args), on_stats, r);
    cps_buf_free(&args);
    if (st == CIRCUS_OK) {
        r->pending = 1;
    } else if (st != CIRCUS_E_CANCELLED) {
        cps_statsd_increment(&r->client, "_resource_watcher.%s.error", r->s.watcher);
    }
}

/* ---- configuration ------------------------------------------------------------------ */

/* A memory option: a number is a percentage, a size such as "250M" is bytes. */
static circus_status read_mem(const cps_options *o, const char *key, mem_limit *out) {
    char text[128];
    int found = cps_opt_text(o, key, text, sizeof text);
    if (found <= 0) {
        return found < 0 ? CIRCUS_E_INVALID : CIRCUS_OK;
    }
    if (cps_parse_float(text, &out->value)) {
        out->percent = 1;
    } else if (cps_human2bytes(text, &out->value)) {
        out->percent = 0;
    } else {
        return cps_opt_refuse(o, key, text, "neither a percentage (90) nor a size (250M, 1.5G, 512K)");
    }
    if (out->value < 0) {
        return cps_opt_refuse(o, key, text, "must not be negative");
    }
    out->set = 1;
    return CIRCUS_OK;
}

static circus_status read_settings(const circus_host_api *api, circus_host *host, circus_str config,
                                   circus_error *err, settings *s) {
    cps_options o;
    circus_status st;
    int found;
    o.api = api;
    o.err = err;
    o.config = config;
    memset(s, 0, sizeof *s);
    s->loop_rate = 60;
    s->max_cpu = 90;
    s->max_mem.set = 1;
    s->max_mem.percent = 1;
    s->max_mem.value = 90;
    s->health_threshold = 75;
    s->max_count = 3;
    s->child_signal = 15;
    s->active = 1;
    if ((st = cps_opt_bool(&o, "active", &s->active)) != CIRCUS_OK) return st;
    if ((st = cps_statsd_read(&o, "app", &s->statsd)) != CIRCUS_OK) return st;
    found = cps_opt_text(&o, "watcher", s->watcher, sizeof s->watcher);
    if (found == 0) {
        found = cps_opt_text(&o, "service", s->watcher, sizeof s->watcher);
        if (found > 0 && host != NULL) {
            cps_log(api, host, CIRCUS_LOG_WARNING, "option service is deprecated: use watcher = %s", s->watcher);
        }
    }
    if (found < 0) {
        return CIRCUS_E_INVALID;
    }
    if (found == 0 || s->watcher[0] == '\0') {
        cps_error(api, err, CIRCUS_E_INVALID, "option watcher: required (the name of the watcher to look after)");
        return CIRCUS_E_INVALID;
    }
    if ((st = cps_opt_float(&o, "loop_rate", 0.001, 1e9, &s->loop_rate)) != CIRCUS_OK) return st;
    if ((st = cps_opt_float(&o, "max_cpu", 0, 1e9, &s->max_cpu)) != CIRCUS_OK) return st;
    s->min_cpu = -1;
    if ((st = cps_opt_float(&o, "min_cpu", 0, 1e9, &s->min_cpu)) != CIRCUS_OK) return st;
    s->has_min_cpu = s->min_cpu >= 0;
    if ((st = read_mem(&o, "max_mem", &s->max_mem)) != CIRCUS_OK) return st;
    if ((st = read_mem(&o, "min_mem", &s->min_mem)) != CIRCUS_OK) return st;
    if ((st = cps_opt_float(&o, "health_threshold", 0, 1e9, &s->health_threshold)) != CIRCUS_OK) return st;
    if ((st = cps_opt_int(&o, "max_count", 0, INT64_MAX, &s->max_count)) != CIRCUS_OK) return st;
    if ((st = cps_opt_bool(&o, "process_children", &s->process_children)) != CIRCUS_OK) return st;
    return cps_opt_int(&o, "child_signal", 1, 64, &s->child_signal);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static circus_status rw_create(const circus_create_params *p, void **out, circus_error *err) {
    rw *r;
    circus_status st;
    settings s;
    if ((st = read_settings(p->api, p->host, p->config_json, err, &s)) != CIRCUS_OK) {
        return st;
    }
    r = (rw *)calloc(1, sizeof *r);
    if (r == NULL || find_tally(r, 0, 0) == NULL) {
        free(r);
        p->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("out of memory"));
        return CIRCUS_E_INTERNAL;
    }
    r->api = p->api;
    r->host = p->host;
    r->s = s;
    cps_statsd_init(&r->client, p->api, p->host);
    if ((st = cps_statsd_setup(&r->client, &s.statsd, err)) != CIRCUS_OK) {
        free(r->tallies);
        free(r);
        return st;
    }
    *out = r;
    return CIRCUS_OK;
}

static circus_status rw_start(void *instance, circus_error *err) {
    rw *r = (rw *)instance;
    uint64_t every = cps_ms(r->s.loop_rate);
    circus_status st;
    if (!r->s.active) {
        cps_log(r->api, r->host, CIRCUS_LOG_INFO, "inactive (active = false): %s is not looked after", r->s.watcher);
        return CIRCUS_OK;
    }
    st = r->api->add_timer(r->host, every, every, on_loop, r, NULL, &r->loop);
    if (st != CIRCUS_OK) {
        cps_error(r->api, err, st, "cannot schedule the check loop (status %d)", (int)st);
        return st;
    }
    cps_log(r->api, r->host, CIRCUS_LOG_INFO, "looking after watcher %s every %g s", r->s.watcher, r->s.loop_rate);
    return CIRCUS_OK;
}

static void rw_stop(void *instance) {
    cps_statsd_close(&((rw *)instance)->client);
}

static void rw_destroy(void *instance) {
    rw *r = (rw *)instance;
    cps_statsd_close(&r->client);
    free(r->tallies);
    free(r);
}

static const circus_plugin_vtable rw_vtable = {
    sizeof(circus_plugin_vtable), 0,
    rw_create,
    rw_start,
    rw_stop,
    rw_destroy,
    NULL, /* a new config recreates the instance (its counters start again) */
};

static const circus_plugin_descriptor rw_descriptor = {
    CIRCUS_PLUGIN_MAGIC,
    sizeof(circus_plugin_descriptor),
    CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "resource_watcher",
    "1.0.0",
    "restarts a watcher whose processes stay over (or under) their CPU and memory limits",
    CIRCUS_PLUGIN_F_MULTI_INSTANCE,
    &rw_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor) {
    (void)host_abi_minor; /* nothing newer than 1.0 is used */
    return host_abi_major == CIRCUS_ABI_MAJOR ? &rw_descriptor : NULL;
}
