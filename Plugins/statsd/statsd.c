/*
 * statsd.c: sends watcher metrics to statsd over UDP, as Circus's StatsdEmitter and
 * FullStats plugins (circus.plugins.statsd) do. One library, two kinds of instance:
 *
 *  - emitter (StatsdEmitter): for every watcher event `watcher.<w>.<event>`, the
 *    counter `circus.<application_name>.watcher.<w>.<event>:1|c`;
 *  - full_stats (FullStats): every loop_rate seconds, the `stats` command's figures as
 *    gauges `circus.<application_name>.watcher._stats.<w>.<metric>:<v>|g` (watchers_num,
 *    cpu_max, cpu_sum, mem_pct_max, mem_pct_sum, mem_max, mem_sum, and spawn_count when
 *    the daemon reports it), skipping `plugin:` watchers; `_stats.error:1|c` when the
 *    `stats` command fails. No event counters, as in Circus.
 *
 * Which kind: the option `kind` (emitter or full_stats) if given, else the section's
 * `use`: a name ending in ".FullStats" is full_stats, anything else an emitter.
 *
 * Options: host (localhost), port (8125), sample_rate (1.0; when not 1 every datagram
 * gets "|@<rate>", and nothing is actually sampled, as in Circus), application_name
 * (app), loop_rate (60 s, full_stats only), active (true; false: the instance sends
 * nothing).
 *
 * The datagrams leave through the shared statsd client (support/cps_statsd.h): the host
 * name is resolved when the instance is created, and a datagram that cannot leave at
 * once is dropped, never waited for.
 */
#define _GNU_SOURCE 1
#include <circus/plugin.h>

#include "circus_plugin_support.h"
#include "cps_statsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_EMITTER, KIND_FULL_STATS };

typedef struct statsd {
    const circus_host_api *api;
    circus_host *host;
    int kind;
    int active;
    double loop_rate;
    cps_statsd client;
    circus_handle loop;
} statsd;

/* ---- sending ------------------------------------------------------------------------ */

/* A number as Python would print it after loading it from JSON: an int stays an int. */
typedef struct pyvalue {
    double v;
    int is_float;
} pyvalue;

static void gauge(statsd *sd, const char *watcher, const char *metric, pyvalue value) {
    char bucket[512];
    char text[64];
    int n = snprintf(bucket, sizeof bucket, "_stats.%s.%s", watcher, metric);
    if (n < 0 || (size_t)n >= sizeof bucket) {
        return;
    }
    if (value.is_float) {
        cps_format_py_float(value.v, text, sizeof text);
    } else {
        snprintf(text, sizeof text, "%.0f", value.v);
    }
    cps_statsd_gauge(&sd->client, bucket, text);
}

/* ---- emitter ------------------------------------------------------------------------ */

static void on_event(void *ud, circus_str topic, circus_str json) {
    statsd *sd = (statsd *)ud;
    circus_str name, event;
    char bucket[512];
    int n;
    (void)json;
    if (!sd->active || !cps_watcher_topic(topic, &name, &event)) {
        return;
    }
    n = snprintf(bucket, sizeof bucket, "%.*s.%.*s", (int)name.len, name.ptr, (int)event.len, event.ptr);
    if (n > 0 && (size_t)n < sizeof bucket) {
        cps_statsd_send(&sd->client, bucket, (size_t)n, "1|c");
    }
}

/* ---- full stats --------------------------------------------------------------------- */

/* max() and sum() over numbers as Python computes them (sum starts from the int 0). */
typedef struct agg {
    size_t count;
    pyvalue max;
    pyvalue sum;
} agg;

static void agg_add(agg *a, pyvalue v) {
    if (a->count == 0 || v.v > a->max.v) {
        a->max = v;
    }
    if (a->count == 0) {
        a->sum.v = 0;
        a->sum.is_float = 0;
    }
    a->sum.v += v.v;
    a->sum.is_float = a->sum.is_float || v.is_float;
    a->count++;
}

static void report_watcher(statsd *sd, const char *name, circus_str processes) {
    cps_json_iter it;
    circus_str key, info, v;
    agg cpu, mem, mem_info;
    pyvalue count;
    char text[64];
    memset(&cpu, 0, sizeof cpu);
    memset(&mem, 0, sizeof mem);
    memset(&mem_info, 0, sizeof mem_info);
    count.v = 0;
    count.is_float = 0;
    if (!cps_json_object_begin(processes, &it)) {
        return;
    }
    while (cps_json_object_next(&it, &key, &info)) {
        pyvalue pv;
        if (cps_json_kind(info) != CPS_JSON_OBJECT) {
            if (cps_json_string_equals(key, "spawn_count") && cps_json_number(info, &pv.v, &pv.is_float)) {
                gauge(sd, name, "spawn_count", pv);
            }
            continue; /* e.g. "No such process (stopped?)" */
        }
        count.v += 1;
        /* "N/A" figures (no access to the process) are left out of max and sum. */
        if (cps_json_get(info, "cpu", &v) && cps_json_number(v, &pv.v, &pv.is_float)) {
            agg_add(&cpu, pv);
        }
        if (cps_json_get(info, "mem", &v) && cps_json_number(v, &pv.v, &pv.is_float)) {
            agg_add(&mem, pv);
        }
        if (cps_json_get(info, "mem_info1", &v) && cps_json_string(v, text, sizeof text) >= 0 &&
            cps_human2bytes(text, &pv.v)) {
            pv.is_float = 0;
            agg_add(&mem_info, pv);
        }
    }
    gauge(sd, name, "watchers_num", count);
    if (cpu.count > 0) {
        gauge(sd, name, "cpu_max", cpu.max);
        gauge(sd, name, "cpu_sum", cpu.sum);
    }
    if (mem.count > 0) {
        gauge(sd, name, "mem_pct_max", mem.max);
        gauge(sd, name, "mem_pct_sum", mem.sum);
    }
    if (mem_info.count > 0) {
        gauge(sd, name, "mem_max", mem_info.max);
        gauge(sd, name, "mem_sum", mem_info.sum);
    }
}

static void on_stats(void *ud, circus_status st, circus_str json) {
    statsd *sd = (statsd *)ud;
    circus_str infos, key, processes;
    cps_json_iter it;
    char name[256];
    if (st == CIRCUS_E_CANCELLED) {
        return;
    }
    if (st != CIRCUS_OK || !cps_json_get(json, "infos", &infos) || !cps_json_object_begin(infos, &it)) {
        cps_statsd_increment(&sd->client, "_stats.error");
        return;
    }
    while (cps_json_object_next(&it, &key, &processes)) {
        if (cps_json_string(key, name, sizeof name) < 0 || strncmp(name, "plugin:", 7) == 0) {
            continue;
        }
        report_watcher(sd, name, processes);
    }
}

static void on_loop(void *ud, circus_handle timer) {
    statsd *sd = (statsd *)ud;
    circus_status st;
    (void)timer;
    if (!sd->active) {
        return;
    }
    st = sd->api->call(sd->host, circus_cstr("stats"), circus_cstr("{}"), on_stats, sd);
    if (st != CIRCUS_OK && st != CIRCUS_E_CANCELLED) {
        cps_statsd_increment(&sd->client, "_stats.error");
    }
}

/* ---- configuration ------------------------------------------------------------------ */

typedef struct settings {
    int kind;
    int active;
    cps_statsd_settings statsd;
    double loop_rate;
} settings;

static circus_status read_settings(const circus_host_api *api, circus_str config, circus_error *err, settings *s) {
    cps_options o;
    circus_status st;
    char text[256] = "";
    int found;
    o.api = api;
    o.err = err;
    o.config = config;
    s->kind = KIND_EMITTER;
    s->active = 1;
    s->loop_rate = 60;

    found = cps_opt_text(&o, "kind", text, sizeof text);
    if (found < 0) {
        return CIRCUS_E_INVALID;
    } else if (found > 0) {
        if (strcmp(text, "full_stats") == 0) {
            s->kind = KIND_FULL_STATS;
        } else if (strcmp(text, "emitter") != 0) {
            return cps_opt_refuse(&o, "kind", text, "must be emitter or full_stats");
        }
    } else {
        found = cps_opt_text(&o, "use", text, sizeof text);
        if (found < 0) {
            return CIRCUS_E_INVALID;
        }
        if (found > 0 && strlen(text) >= 10 && strcmp(text + strlen(text) - 10, ".FullStats") == 0) {
            s->kind = KIND_FULL_STATS;
        }
    }
    if ((st = cps_opt_bool(&o, "active", &s->active)) != CIRCUS_OK) return st;
    if ((st = cps_statsd_read(&o, "app", &s->statsd)) != CIRCUS_OK) return st;
    return cps_opt_float(&o, "loop_rate", 0.001, 1e9, &s->loop_rate);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static circus_status statsd_create(const circus_create_params *p, void **out, circus_error *err) {
    statsd *sd;
    settings s;
    circus_status st;
    if ((st = read_settings(p->api, p->config_json, err, &s)) != CIRCUS_OK) {
        return st;
    }
    sd = (statsd *)calloc(1, sizeof *sd);
    if (sd == NULL) {
        p->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("out of memory"));
        return CIRCUS_E_INTERNAL;
    }
    sd->api = p->api;
    sd->host = p->host;
    cps_statsd_init(&sd->client, p->api, p->host);
    if ((st = cps_statsd_setup(&sd->client, &s.statsd, err)) != CIRCUS_OK) {
        free(sd);
        return st;
    }
    sd->kind = s.kind;
    sd->active = s.active;
    sd->loop_rate = s.loop_rate;
    *out = sd;
    return CIRCUS_OK;
}

static circus_status start_loop(statsd *sd, circus_error *err) {
    circus_status st;
    uint64_t every = cps_ms(sd->loop_rate);
    if (sd->kind != KIND_FULL_STATS) {
        return CIRCUS_OK;
    }
    st = sd->api->add_timer(sd->host, every, every, on_loop, sd, NULL, &sd->loop);
    if (st != CIRCUS_OK) {
        cps_error(sd->api, err, st, "cannot schedule the stats loop (status %d)", (int)st);
    }
    return st;
}

static circus_status statsd_start(void *instance, circus_error *err) {
    statsd *sd = (statsd *)instance;
    circus_status st;
    if (sd->kind == KIND_EMITTER) {
        /* Always subscribed; `active` is checked per event, so reconfigure can flip it. */
        st = sd->api->subscribe(sd->host, circus_cstr("watcher."), on_event, sd, NULL, NULL);
        if (st != CIRCUS_OK) {
            cps_error(sd->api, err, st, "cannot subscribe to watcher events (status %d)", (int)st);
            return st;
        }
    } else if ((st = start_loop(sd, err)) != CIRCUS_OK) {
        return st;
    }
    cps_log(sd->api, sd->host, CIRCUS_LOG_INFO, "sending %s to statsd at %s as %s",
            sd->kind == KIND_EMITTER ? "watcher event counters" : "watcher stats", sd->client.target,
            sd->client.prefix);
    return CIRCUS_OK;
}

static circus_status statsd_reconfigure(void *instance, circus_str config_json, circus_error *err) {
    statsd *sd = (statsd *)instance;
    settings s;
    circus_status st;
    if ((st = read_settings(sd->api, config_json, err, &s)) != CIRCUS_OK) {
        return st;
    }
    if (s.kind != sd->kind) {
        cps_error(sd->api, err, CIRCUS_E_INVALID,
                  "option kind (or use): an instance cannot switch between emitter and full_stats; "
                  "remove the section and add it again");
        return CIRCUS_E_INVALID;
    }
    if ((st = cps_statsd_setup(&sd->client, &s.statsd, err)) != CIRCUS_OK) {
        return st;
    }
    sd->active = s.active;
    sd->loop_rate = s.loop_rate;
    if (sd->kind == KIND_FULL_STATS) {
        if (sd->loop != 0) {
            sd->api->cancel(sd->host, sd->loop);
            sd->loop = 0;
        }
        return start_loop(sd, err);
    }
    return CIRCUS_OK;
}

static void statsd_stop(void *instance) {
    cps_statsd_close(&((statsd *)instance)->client);
}

static void statsd_destroy(void *instance) {
    statsd *sd = (statsd *)instance;
    cps_statsd_close(&sd->client);
    free(sd);
}

static const circus_plugin_vtable statsd_vtable = {
    sizeof(circus_plugin_vtable), 0,
    statsd_create,
    statsd_start,
    statsd_stop,
    statsd_destroy,
    statsd_reconfigure,
};

static const circus_plugin_descriptor statsd_descriptor = {
    CIRCUS_PLUGIN_MAGIC,
    sizeof(circus_plugin_descriptor),
    CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "statsd",
    "1.0.0",
    "sends watcher event counters (StatsdEmitter) or process stats (FullStats) to statsd over UDP",
    CIRCUS_PLUGIN_F_MULTI_INSTANCE,
    &statsd_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor) {
    (void)host_abi_minor; /* nothing newer than 1.0 is used */
    return host_abi_major == CIRCUS_ABI_MAJOR ? &statsd_descriptor : NULL;
}
