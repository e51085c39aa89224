/*
 * redis_observer.c: reads a Redis server's INFO every loop_rate seconds and reports it to
 * statsd, as Circus's RedisObserver plugin (circus.plugins.redis_observer) does.
 *
 * Each round connects with hiredis on the plugin's own thread (AUTH and SELECT as the
 * URL says), runs INFO and disconnects. Then, under `circus.<application_name>.watcher.`:
 *  - the gauges `redis_stats.<key>:<value>|g` for Circus's keys, in its order:
 *    pubsub_channels, connected_slaves, lru_clock, connected_clients, keyspace_misses,
 *    used_memory, used_memory_peak, total_commands_processed, used_memory_rss,
 *    total_connections_received, pubsub_patterns, used_cpu_sys, used_cpu_sys_children,
 *    blocked_clients, used_cpu_user, client_biggest_input_buf, mem_fragmentation_ratio,
 *    expired_keys, evicted_keys, client_longest_output_list, uptime_in_seconds,
 *    keyspace_hits (values written as Python prints what redis-py parsed: 12, 0.5);
 *  - on a failure: `redis_stats.error:1|c`, then, with restart_on_timeout,
 *    `restart <watcher>` and `redis_stats.restart_on_error:1|c`.
 *
 * Options: redis_url (redis://localhost:6379/0; also redis://[user]:password@host:port/db
 * and unix:///path/redis.sock?db=N), timeout (5 s, for connecting and for each
 * reply), restart_on_timeout (a watcher name; none), loop_rate (60 s), and the statsd
 * options host, port, sample_rate, application_name (redis_observer); active (true; false:
 * nothing is read).
 *
 * Where it differs from Circus: a key the server does not report is left out (Redis 5
 * renamed client_biggest_input_buf and client_longest_output_list; Circus's round then
 * stops with a KeyError); any failure counts as an error, not only a lost connection
 * (a refused AUTH too), and is logged once per streak; timeout is applied (Circus
 * hands it to redis-py where the database number goes); a round is skipped while the
 * previous one is still out.
 */
#define _GNU_SOURCE 1
#include <circus/plugin.h>

#include "circus_plugin_support.h"
#include "cps_observer.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static const char *const observed[] = {
    "pubsub_channels", "connected_slaves", "lru_clock", "connected_clients", "keyspace_misses", "used_memory",
    "used_memory_peak", "total_commands_processed", "used_memory_rss", "total_connections_received",
    "pubsub_patterns", "used_cpu_sys", "used_cpu_sys_children", "blocked_clients", "used_cpu_user",
    "client_biggest_input_buf", "mem_fragmentation_ratio", "expired_keys", "evicted_keys",
    "client_longest_output_list", "uptime_in_seconds", "keyspace_hits",
};

/* Where the server is, from redis_url. */
typedef struct target {
    char host[256];                   /* "" for a unix socket                             */
    int64_t port;
    char socket_path[1024];
    char user[256];
    char password[256];
    int64_t db;
} target;

typedef struct settings {
    cps_statsd_settings statsd;
    char url[2048];
    target where;
    double loop_rate;
    double timeout;
    int active;
    char restart_on_timeout[256];     /* "" when not set                                  */
} settings;

typedef struct observer {
    cps_observer frame;               /* first: the instance pointer is the frame's        */
    settings s;
} observer;

/* One round: where to ask, and what came back. */
typedef struct round {
    observer *o;
    target where;
    double timeout;
    char *info;                       /* INFO's text, or NULL on failure                  */
    char error[512];
} round;

/* ---- the round (on the worker thread) ------------------------------------------------- */

/* Runs a command; returns the reply, or NULL with r->error filled. */
static redisReply *command(round *r, redisContext *c, const char *what, int argc, const char **argv) {
    redisReply *reply = (redisReply *)redisCommandArgv(c, argc, argv, NULL);
    if (reply == NULL) {
        snprintf(r->error, sizeof r->error, "%s: %s", what, c->errstr[0] != '\0' ? c->errstr : "no reply");
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(r->error, sizeof r->error, "%s: %.*s", what, (int)reply->len, reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

static void ask(void *job, cps_worker *worker) {
    round *r = (round *)job;
    struct timeval tv;
    redisContext *c;
    redisReply *reply;
    char db[32];
    tv.tv_sec = (time_t)r->timeout;
    tv.tv_usec = (suseconds_t)((r->timeout - (double)tv.tv_sec) * 1e6);
    c = r->where.host[0] != '\0' ? redisConnectWithTimeout(r->where.host, (int)r->where.port, tv)
                                 : redisConnectUnixWithTimeout(r->where.socket_path, tv);
    if (c == NULL || c->err) {
        snprintf(r->error, sizeof r->error, "cannot connect: %s", c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return;
    }
    cps_worker_abort_fd(worker, c->fd);
    redisSetTimeout(c, tv);
    if (r->where.password[0] != '\0') {
        const char *argv[3];
        int argc = 0;
        argv[argc++] = "AUTH";
        if (r->where.user[0] != '\0') {
            argv[argc++] = r->where.user; /* Redis 6 ACL users */
        }
        argv[argc++] = r->where.password;
        if ((reply = command(r, c, "AUTH", argc, argv)) == NULL) {
            goto done;
        }
        freeReplyObject(reply);
    }
    if (r->where.db != 0) {
        const char *argv[2] = {"SELECT", db};
        snprintf(db, sizeof db, "%lld", (long long)r->where.db);
        if ((reply = command(r, c, "SELECT", 2, argv)) == NULL) {
            goto done;
        }
        freeReplyObject(reply);
    }
    {
        const char *argv[1] = {"INFO"};
        if ((reply = command(r, c, "INFO", 1, argv)) == NULL) {
            goto done;
        }
        if (reply->type == REDIS_REPLY_STRING) {
            r->info = cps_strndup(reply->str, reply->len);
        } else {
            snprintf(r->error, sizeof r->error, "INFO: unexpected reply type %d", reply->type);
        }
        freeReplyObject(reply);
    }
done:
    cps_worker_abort_fd(worker, -1);
    redisFree(c);
}

static void round_free(void *ud) {
    round *r = (round *)ud;
    free(r->info);
    free(r);
}

/* ---- the outcome (on the instance's queue) -------------------------------------------- */

/* The value of `key` in INFO's "key:value" lines, or 0. */
static int info_value(const char *info, const char *key, char *out, size_t cap) {
    size_t klen = strlen(key);
    const char *line = info;
    while (line != NULL && *line != '\0') {
        const char *end = strpbrk(line, "\r\n");
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == ':') {
            size_t vlen = len - klen - 1;
            if (vlen >= cap) {
                return 0;
            }
            memcpy(out, line + klen + 1, vlen);
            out[vlen] = '\0';
            return 1;
        }
        line = end != NULL ? end + strspn(end, "\r\n") : NULL;
    }
    return 0;
}

/* The value as Python prints what redis-py made of it: an int, a float's repr, or the
 * text itself. */
static void python_value(const char *text, char *out, size_t cap) {
    int64_t i;
    double d;
    if (cps_parse_int(text, &i)) {
        snprintf(out, cap, "%lld", (long long)i);
    } else if (cps_parse_float(text, &d)) {
        cps_format_py_float(d, out, cap);
    } else {
        snprintf(out, cap, "%s", text);
    }
}

static void answered(void *ud) {
    round *r = (round *)ud;
    observer *o = r->o;
    size_t i;
    if (r->info == NULL) {
        cps_observer_failed(&o->frame, "redis at %s: %s", o->s.url, r->error);
        cps_statsd_increment(&o->frame.statsd, "redis_stats.error");
        cps_observer_restart(&o->frame, o->s.restart_on_timeout, "redis_stats.restart_on_error");
        return;
    }
    cps_observer_succeeded(&o->frame, o->s.url);
    for (i = 0; i < sizeof observed / sizeof observed[0]; i++) {
        char text[128];
        char value[128];
        char bucket[160];
        if (info_value(r->info, observed[i], text, sizeof text)) {
            python_value(text, value, sizeof value);
            snprintf(bucket, sizeof bucket, "redis_stats.%s", observed[i]);
            cps_statsd_gauge(&o->frame.statsd, bucket, value);
        }
    }
}

static void on_loop(void *ud, circus_handle timer) {
    observer *o = (observer *)ud;
    round *r = (round *)calloc(1, sizeof *r);
    (void)timer;
    if (r == NULL) {
        return;
    }
    r->o = o;
    r->where = o->s.where;
    r->timeout = o->s.timeout;
    if (cps_worker_submit(o->frame.worker, ask, answered, round_free, r) != CIRCUS_OK) {
        free(r); /* the previous round is still out: skip this one */
    }
}

/* ---- configuration ------------------------------------------------------------------ */

/* Copies [from, to) into out; 0 when it does not fit. */
static int copy_part(const char *from, const char *to, char *out, size_t cap) {
    size_t n = (size_t)(to - from);
    if (n >= cap) {
        return 0;
    }
    memcpy(out, from, n);
    out[n] = '\0';
    return 1;
}

/* Reads redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N]. */
static int parse_url(const char *url, target *t, const char **why) {
    const char *p;
    const char *end;
    const char *at;
    int unix_socket = 0;
    memset(t, 0, sizeof *t);
    t->port = 6379;
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        unix_socket = 1;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        *why = "TLS (rediss://) is not supported: use redis:// or unix://";
        return 0;
    } else {
        *why = "must start with redis:// or unix://";
        return 0;
    }
    end = p + strcspn(p, unix_socket ? "?" : "/?");
    at = (const char *)memchr(p, '@', (size_t)(end - p));
    if (at != NULL) {
        const char *colon = (const char *)memchr(p, ':', (size_t)(at - p));
        if (colon != NULL) {
            if (!copy_part(p, colon, t->user, sizeof t->user) ||
                !copy_part(colon + 1, at, t->password, sizeof t->password)) {
                *why = "the user or password is too long";
                return 0;
            }
        }
        p = at + 1;
    }
    if (unix_socket) {
        const char *query = p + strcspn(p, "?");
        if (*p != '/' || !copy_part(p, query, t->socket_path, sizeof t->socket_path)) {
            *why = "needs the socket's absolute path (unix:///run/redis.sock)";
            return 0;
        }
        if (strncmp(query, "?db=", 4) == 0 && !cps_parse_int(query + 4, &t->db)) {
            *why = "db must be a number";
            return 0;
        }
        return 1;
    }
    {
        const char *host_end;
        const char *port_start = NULL;
        if (*p == '[') {
            host_end = (const char *)memchr(p, ']', (size_t)(end - p));
            if (host_end == NULL || !copy_part(p + 1, host_end, t->host, sizeof t->host)) {
                *why = "bad IPv6 address";
                return 0;
            }
            if (host_end + 1 < end && host_end[1] == ':') {
                port_start = host_end + 2;
            }
        } else {
            host_end = (const char *)memchr(p, ':', (size_t)(end - p));
            if (host_end != NULL) {
                port_start = host_end + 1;
            } else {
                host_end = end;
            }
            if (!copy_part(p, host_end, t->host, sizeof t->host)) {
                *why = "the host name is too long";
                return 0;
            }
        }
        if (t->host[0] == '\0') {
            strcpy(t->host, "localhost");
        }
        if (port_start != NULL) {
            char port[16];
            if (!copy_part(port_start, end, port, sizeof port) || !cps_parse_int(port, &t->port) || t->port < 1 ||
                t->port > 65535) {
                *why = "the port must be a number from 1 to 65535";
                return 0;
            }
        }
    }
    if (*end == '/' && end[1] != '\0' && end[1] != '?') {
        char db[32];
        const char *db_end = end + 1 + strcspn(end + 1, "?");
        if (!copy_part(end + 1, db_end, db, sizeof db) || !cps_parse_int(db, &t->db) || t->db < 0) {
            *why = "the database (after the last /) must be a number";
            return 0;
        }
    }
    return 1;
}

static circus_status read_settings(const circus_host_api *api, circus_str config, circus_error *err, settings *s) {
    cps_options o;
    circus_status st;
    const char *why = NULL;
    o.api = api;
    o.err = err;
    o.config = config;
    memset(s, 0, sizeof *s);
    strcpy(s->url, "redis://localhost:6379/0");
    s->loop_rate = 60;
    s->timeout = 5;
    s->active = 1;
    if ((st = cps_opt_bool(&o, "active", &s->active)) != CIRCUS_OK) return st;
    if ((st = cps_statsd_read(&o, "redis_observer", &s->statsd)) != CIRCUS_OK) return st;
    if ((st = cps_opt_string(&o, "redis_url", s->url, sizeof s->url)) != CIRCUS_OK) return st;
    if (!parse_url(s->url, &s->where, &why)) {
        return cps_opt_refuse(&o, "redis_url", s->url, why);
    }
    if ((st = cps_opt_float(&o, "loop_rate", 0.001, 1e9, &s->loop_rate)) != CIRCUS_OK) return st;
    if ((st = cps_opt_float(&o, "timeout", 0.001, 1e6, &s->timeout)) != CIRCUS_OK) return st;
    return cps_opt_string(&o, "restart_on_timeout", s->restart_on_timeout, sizeof s->restart_on_timeout);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static circus_status observer_create(const circus_create_params *p, void **out, circus_error *err) {
    observer *o;
    settings s;
    circus_status st;
    if ((st = read_settings(p->api, p->config_json, err, &s)) != CIRCUS_OK) {
        return st;
    }
    o = (observer *)calloc(1, sizeof *o);
    if (o == NULL) {
        p->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("out of memory"));
        return CIRCUS_E_INTERNAL;
    }
    o->s = s;
    if ((st = cps_observer_init(&o->frame, p, &s.statsd, s.loop_rate, s.active, on_loop, err)) != CIRCUS_OK) {
        free(o);
        return st;
    }
    snprintf(o->frame.started, sizeof o->frame.started, "reading INFO of %s every %g s", s.url, s.loop_rate);
    o->frame.inactive = "nothing is read";
    *out = o;
    return CIRCUS_OK;
}

static const circus_plugin_vtable observer_vtable = {
    sizeof(circus_plugin_vtable), 0,
    observer_create,
    cps_observer_start,
    cps_observer_stop,
    cps_observer_destroy,
    NULL, /* a new config recreates the instance */
};

static const circus_plugin_descriptor observer_descriptor = {
    CIRCUS_PLUGIN_MAGIC,
    sizeof(circus_plugin_descriptor),
    CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "redis_observer",
    "1.0.0",
    "reports a Redis server's INFO to statsd and restarts a watcher when it cannot be reached",
    CIRCUS_PLUGIN_F_MULTI_INSTANCE,
    &observer_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor) {
    (void)host_abi_minor; /* nothing newer than 1.0 is used */
    return host_abi_major == CIRCUS_ABI_MAJOR ? &observer_descriptor : NULL;
}
