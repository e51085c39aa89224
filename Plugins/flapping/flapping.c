/*
 * flapping.c: stops a watcher whose processes keep dying, and starts it again later,
 * as Circus's Flapping plugin (circus.plugins.flapping.Flapping) does.
 *
 * Options ([plugin:NAME] section; each can be overridden per watcher by the watcher
 * option flapping.<option>, read with the `options` command and read again when the
 * watcher is `updated`):
 *   attempts   (int, 2)     exits that count as flapping when they come close together
 *   window     (float s, 1) how close (see "the window" below)
 *   retry_in   (float s, 7) how long the watcher stays stopped before it is started again
 *   max_retry  (int, 5)     how many times it is started again before it is left
 *                           stopped for good; -1: forever
 *   active     (bool, true) false: the plugin (or, per watcher, that watcher) is ignored
 * A watcher with check_flapping = false (reported by `options`) is ignored, and so is
 * one with respawn = false: its processes are not respawned, so their exits are no loop
 * (Circus counts them, and stops, then starts again, a watcher that had simply finished),
 * and one with on_demand = true: connections start its processes, which are not
 * respawned either (circusd delays the next start after quick failures itself).
 *
 * What Circus does, and what this plugin does differently (on purpose):
 *
 * 1. The window. Circus measures `last - first - check_delay` over the last `attempts`
 *    exits, and its plugins always see check_delay = 5 s, so "attempts exits within
 *    window + 5 seconds" is flapping. We keep exactly that measure (same options, same
 *    defaults, same crash loops caught: with the defaults, 2 exits within 6 s).
 *
 * 2. Detection that cannot get stuck. Circus only decides when the timeline holds
 *    exactly `attempts` exits (`==`), and then empties it. A smaller flapping.attempts
 *    set while exits were recorded leaves the timeline longer than `attempts` for
 *    good, so that watcher is never found flapping again. We keep a sliding window of
 *    the last `attempts` exits (older ones dropped) and decide on every exit.
 *
 * 3. Only exits nobody asked for count. Circus counts every reap, so an operator's
 *    `stop` of a watcher with 2 processes looks like flapping and is undone retry_in
 *    seconds later by the plugin's `start`. A process that got a `kill` event (the stop
 *    procedure signalled it: stop, restart, reload, decr, kill, max_age, ...) is not a
 *    crash: its reap is not counted.
 *
 * 4. Commands that are not lost. Circus casts `stop` and `start` (no reply, and the
 *    daemon refuses them while it is busy, so the stop was often lost and the crash
 *    loop went on). We `call` them: the daemon queues them, and a failure is logged.
 *
 * 5. An operator's decision wins. A watcher stopped by someone else while a retry is
 *    pending is not started again: each stop this plugin asks for accounts for one
 *    `stop` event of that watcher; any other `stop` event cancels the retry. A `start`
 *    by someone else also cancels it (the watcher already runs), and so does `remove`.
 *    (A `stop` of a watcher that is already stopped publishes no event, so the plugin
 *    cannot see it.)
 */
#define _GNU_SOURCE 1
#include <circus/plugin.h>

#include "circus_plugin_support.h"

#include <stdlib.h>
#include <string.h>

/* The check_delay Circus's plugins always run with (circusd never passes its own):
 * Circus subtracts it from the span of the exits it compares with `window`. */
#define CIRCUS_PLUGIN_CHECK_DELAY 5.0

#define INFINITE_RETRY (-1)

/* The longest window or retry_in accepted (about 31 years): keeps the arithmetic sane. */
#define MAX_SECONDS 1e9

/* The options, as the section gives them or as a watcher overrides them. */
typedef struct settings {
    int64_t attempts;
    double window;
    double retry_in;
    int64_t max_retry;
    int active;
} settings;

enum { CONF_UNKNOWN, CONF_LOADING, CONF_READY };

typedef struct watcher {
    char *name;
    int conf;                     /* CONF_*: the watcher's overrides                    */
    int reload_conf;              /* `updated` arrived while they were loading          */
    int check_flapping;           /* the watcher's check_flapping option                */
    int respawn;                  /* the watcher's respawn option: without respawn its
                                     exits are not a loop, nothing comes back           */
    int on_demand;                /* the watcher's on_demand option: the same           */
    int has_attempts, has_window, has_retry_in, has_max_retry, has_active;
    settings own;                 /* the overrides, where has_* says so                 */
    double *exits;                /* monotonic times of the last exits (oldest first)   */
    size_t n_exits, cap_exits;
    int64_t *killed;              /* pids the stop procedure signalled: their exit was
                                     asked for, it is no crash                          */
    size_t n_killed, cap_killed;
    int64_t tries;                /* restarts since flapping was last detected          */
    circus_handle retry;          /* the pending restart's timer, 0 when none          */
    int own_stops;                /* `stop` events still due to our own stop calls      */
} watcher;

typedef struct flapping {
    const circus_host_api *api;
    circus_host *host;
    char *instance;
    settings defaults;
    watcher **watchers;
    size_t n_watchers, cap_watchers;
} flapping;

/* What a timer or a call result needs: the instance and the watcher's name (the
 * watcher itself may be gone by then). */
typedef struct pending {
    flapping *fl;
    int what;                     /* for call results: which command                    */
    char name[1];                 /* NUL-terminated, allocated to fit                    */
} pending;

enum { CALL_OPTIONS, CALL_STOP, CALL_START };

static pending *pending_new(flapping *fl, int what, const char *name) {
    size_t n = strlen(name);
    pending *p = (pending *)malloc(sizeof *p + n);
    if (p != NULL) {
        p->fl = fl;
        p->what = what;
        memcpy(p->name, name, n + 1);
    }
    return p;
}

static void pending_free(void *ud) {
    free(ud);
}

/* ---- watchers ----------------------------------------------------------------------- */

static watcher *find_watcher(flapping *fl, const char *name, size_t len) {
    size_t i;
    for (i = 0; i < fl->n_watchers; i++) {
        watcher *w = fl->watchers[i];
        if (strlen(w->name) == len && memcmp(w->name, name, len) == 0) {
            return w;
        }
    }
    return NULL;
}

static watcher *add_watcher(flapping *fl, const char *name, size_t len) {
    watcher *w;
    if (fl->n_watchers == fl->cap_watchers) {
        size_t cap = fl->cap_watchers == 0 ? 8 : fl->cap_watchers * 2;
        watcher **grown = (watcher **)realloc(fl->watchers, cap * sizeof *grown);
        if (grown == NULL) {
            return NULL;
        }
        fl->watchers = grown;
        fl->cap_watchers = cap;
    }
    w = (watcher *)calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->name = cps_strndup(name, len);
    if (w->name == NULL) {
        free(w);
        return NULL;
    }
    w->check_flapping = 1;
    w->respawn = 1;
    w->on_demand = 0;
    fl->watchers[fl->n_watchers++] = w;
    return w;
}

static void free_watcher(watcher *w) {
    free(w->name);
    free(w->exits);
    free(w->killed);
    free(w);
}

static void cancel_retry(flapping *fl, watcher *w) {
    if (w->retry != 0) {
        fl->api->cancel(fl->host, w->retry);
        w->retry = 0;
    }
}

static void remove_watcher(flapping *fl, watcher *w) {
    size_t i;
    cancel_retry(fl, w);
    for (i = 0; i < fl->n_watchers; i++) {
        if (fl->watchers[i] == w) {
            fl->watchers[i] = fl->watchers[--fl->n_watchers];
            break;
        }
    }
    free_watcher(w);
}

/* The watcher's effective settings: its overrides, else the section's. */
static settings effective(const flapping *fl, const watcher *w) {
    settings s = fl->defaults;
    if (w->has_attempts) s.attempts = w->own.attempts;
    if (w->has_window) s.window = w->own.window;
    if (w->has_retry_in) s.retry_in = w->own.retry_in;
    if (w->has_max_retry) s.max_retry = w->own.max_retry;
    if (w->has_active) s.active = w->own.active;
    return s;
}

static int add_killed(watcher *w, int64_t pid) {
    if (w->n_killed == w->cap_killed) {
        size_t cap = w->cap_killed == 0 ? 8 : w->cap_killed * 2;
        int64_t *grown;
        if (cap > 65536) {
            /* Bounded: forget the oldest half rather than grow without end. */
            memmove(w->killed, w->killed + w->n_killed / 2, (w->n_killed - w->n_killed / 2) * sizeof *w->killed);
            w->n_killed -= w->n_killed / 2;
        } else {
            grown = (int64_t *)realloc(w->killed, cap * sizeof *grown);
            if (grown == NULL) {
                return 0;
            }
            w->killed = grown;
            w->cap_killed = cap;
        }
    }
    w->killed[w->n_killed++] = pid;
    return 1;
}

/* Removes pid from the killed set; 1 if it was there. */
static int take_killed(watcher *w, int64_t pid) {
    size_t i;
    for (i = 0; i < w->n_killed; i++) {
        if (w->killed[i] == pid) {
            w->killed[i] = w->killed[--w->n_killed];
            return 1;
        }
    }
    return 0;
}

static int add_exit(watcher *w, double t) {
    if (w->n_exits == w->cap_exits) {
        size_t cap = w->cap_exits == 0 ? 4 : w->cap_exits * 2;
        double *grown = (double *)realloc(w->exits, cap * sizeof *grown);
        if (grown == NULL) {
            return 0;
        }
        w->exits = grown;
        w->cap_exits = cap;
    }
    w->exits[w->n_exits++] = t;
    return 1;
}

/* ---- commands ----------------------------------------------------------------------- */

static void on_call_done(void *ud, circus_status st, circus_str json);

/* Calls `command` with {"name": <watcher>}; 1 if the call went out. */
static int call_for(flapping *fl, int what, const char *command, const char *name) {
    cps_buf args;
    pending *p = pending_new(fl, what, name);
    circus_status st;
    if (p == NULL) {
        cps_log(fl->api, fl->host, CIRCUS_LOG_ERROR, "%s: out of memory, cannot %s it", name, command);
        return 0;
    }
    cps_buf_init(&args);
    cps_buf_adds(&args, "{\"name\": ");
    cps_buf_add_json_string(&args, name, strlen(name));
    cps_buf_adds(&args, "}");
    st = args.failed ? CIRCUS_E_INTERNAL
                     : fl->api->call(fl->host, circus_cstr(command), cps_buf_str(&args), on_call_done, p);
    cps_buf_free(&args);
    if (st != CIRCUS_OK) {
        /* done is never called when call() fails: p is still ours. */
        free(p);
        if (st != CIRCUS_E_CANCELLED) {
            cps_log(fl->api, fl->host, CIRCUS_LOG_ERROR, "%s: could not ask circusd to %s it (status %d)", name,
                    command, (int)st);
        }
        return 0;
    }
    return 1;
}

static void check(flapping *fl, watcher *w);

static void load_conf(flapping *fl, watcher *w) {
    if (w->conf == CONF_LOADING) {
        w->reload_conf = 1;
        return;
    }
    if (call_for(fl, CALL_OPTIONS, "options", w->name)) {
        w->conf = CONF_LOADING;
    } else {
        w->conf = CONF_READY; /* the section's settings, rather than never deciding */
    }
}

/* Reads the flapping.* overrides and check_flapping from an `options` reply. */
static void apply_options(flapping *fl, watcher *w, circus_str reply) {
    static const char prefix[] = "flapping.";
    circus_str options, key, value;
    cps_json_iter it;
    char name[128];
    char text[128];
    w->has_attempts = w->has_window = w->has_retry_in = w->has_max_retry = w->has_active = 0;
    w->check_flapping = 1;
    w->respawn = 1;
    w->on_demand = 0;
    if (!cps_json_get(reply, "options", &options) || !cps_json_object_begin(options, &it)) {
        return;
    }
    while (cps_json_object_next(&it, &key, &value)) {
        const char *opt;
        int ok = 1;
        if (cps_json_string(key, name, sizeof name) < 0) {
            continue;
        }
        if (strcmp(name, "check_flapping") == 0) {
            if (!cps_json_scalar_text(value, text, sizeof text) || !cps_parse_bool(text, &w->check_flapping)) {
                cps_log(fl->api, fl->host, CIRCUS_LOG_WARNING,
                        "%s: check_flapping is not a boolean; flapping is checked", w->name);
                w->check_flapping = 1;
            }
            continue;
        }
        if (strcmp(name, "respawn") == 0) {
            if (!cps_json_scalar_text(value, text, sizeof text) || !cps_parse_bool(text, &w->respawn)) {
                w->respawn = 1;
            }
            continue;
        }
        if (strcmp(name, "on_demand") == 0) {
            if (!cps_json_scalar_text(value, text, sizeof text) || !cps_parse_bool(text, &w->on_demand)) {
                w->on_demand = 0;
            }
            continue;
        }
        if (strncmp(name, prefix, sizeof prefix - 1) != 0) {
            continue;
        }
        opt = name + sizeof prefix - 1;
        if (!cps_json_scalar_text(value, text, sizeof text)) {
            ok = 0;
        } else if (strcmp(opt, "attempts") == 0) {
            ok = cps_parse_int(text, &w->own.attempts) && w->own.attempts >= 1;
            w->has_attempts = ok;
        } else if (strcmp(opt, "window") == 0) {
            ok = cps_parse_float(text, &w->own.window) && w->own.window >= 0 && w->own.window <= MAX_SECONDS;
            w->has_window = ok;
        } else if (strcmp(opt, "retry_in") == 0) {
            ok = cps_parse_float(text, &w->own.retry_in) && w->own.retry_in >= 0 && w->own.retry_in <= MAX_SECONDS;
            w->has_retry_in = ok;
        } else if (strcmp(opt, "max_retry") == 0) {
            ok = cps_parse_int(text, &w->own.max_retry) && w->own.max_retry >= INFINITE_RETRY;
            w->has_max_retry = ok;
        } else if (strcmp(opt, "active") == 0) {
            ok = cps_parse_bool(text, &w->own.active);
            w->has_active = ok;
        }
        if (!ok) {
            cps_log(fl->api, fl->host, CIRCUS_LOG_WARNING,
                    "%s: option %s has a bad value; the [plugin:%s] setting applies", w->name, name, fl->instance);
        }
    }
}

static void on_options(flapping *fl, watcher *w, circus_status st, circus_str json) {
    if (st == CIRCUS_OK) {
        apply_options(fl, w, json);
    } else if (st != CIRCUS_E_CANCELLED) {
        char text[256];
        cps_reply_reason(json, text, sizeof text);
        cps_log(fl->api, fl->host, CIRCUS_LOG_WARNING,
                "%s: cannot read its flapping.* options (%s); the [plugin:%s] settings apply", w->name, text,
                fl->instance);
    }
    w->conf = CONF_READY;
    if (w->reload_conf) {
        w->reload_conf = 0;
        load_conf(fl, w);
        return;
    }
    check(fl, w);
}

static void on_call_done(void *ud, circus_status st, circus_str json) {
    pending *p = (pending *)ud;
    flapping *fl = p->fl;
    watcher *w = find_watcher(fl, p->name, strlen(p->name));
    char text[256];
    cps_reply_reason(json, text, sizeof text);
    switch (p->what) {
    case CALL_OPTIONS:
        if (w != NULL) {
            on_options(fl, w, st, json);
        }
        break;
    case CALL_STOP:
        if (st != CIRCUS_OK && st != CIRCUS_E_TIMEOUT && w != NULL) {
            /* The stop did not happen: no stop event is due, and there is nothing to
             * start again. (A timeout may still end in a stop: keep waiting for it.) */
            if (w->own_stops > 0) {
                w->own_stops--;
            }
            cancel_retry(fl, w);
        }
        if (st != CIRCUS_OK && st != CIRCUS_E_CANCELLED) {
            cps_log(fl->api, fl->host, CIRCUS_LOG_ERROR, "%s: flapping detected, but stopping it failed: %s",
                    p->name, text);
        }
        break;
    case CALL_START:
        if (st != CIRCUS_OK && st != CIRCUS_E_CANCELLED) {
            cps_log(fl->api, fl->host, CIRCUS_LOG_ERROR, "%s: starting it again after flapping failed: %s",
                    p->name, text);
        }
        break;
    }
    free(p);
}

static void on_retry(void *ud, circus_handle timer) {
    pending *p = (pending *)ud;
    flapping *fl = p->fl;
    watcher *w = find_watcher(fl, p->name, strlen(p->name));
    (void)timer;
    if (w == NULL || w->retry == 0) {
        return;
    }
    w->retry = 0;
    cps_log(fl->api, fl->host, CIRCUS_LOG_INFO, "%s: starting it again after flapping", w->name);
    call_for(fl, CALL_START, "start", w->name);
}

/* Asks for the watcher's stop, counting the stop event it will cause as ours. */
static void stop_watcher(flapping *fl, watcher *w) {
    if (call_for(fl, CALL_STOP, "stop", w->name)) {
        w->own_stops++;
    }
}

/* ---- the decision ------------------------------------------------------------------- */

static void check(flapping *fl, watcher *w) {
    settings s;
    size_t keep;
    double span;
    if (w->conf != CONF_READY) {
        if (w->conf == CONF_UNKNOWN) {
            load_conf(fl, w);
        }
        return; /* decided when the options arrive */
    }
    s = effective(fl, w);
    if (!s.active || !w->check_flapping || !w->respawn || w->on_demand) {
        w->n_exits = 0;
        return;
    }
    /* The sliding window: the last `attempts` exits. */
    keep = (size_t)s.attempts;
    if (w->n_exits > keep) {
        memmove(w->exits, w->exits + (w->n_exits - keep), keep * sizeof *w->exits);
        w->n_exits = keep;
    }
    if (w->n_exits < keep) {
        return;
    }
    span = w->exits[w->n_exits - 1] - w->exits[0] - CIRCUS_PLUGIN_CHECK_DELAY;
    if (span > s.window) {
        /* Not flapping: the watcher lived long enough between these exits. */
        w->tries = 0;
        return;
    }
    w->n_exits = 0;
    cancel_retry(fl, w);
    if (w->tries < s.max_retry || s.max_retry == INFINITE_RETRY) {
        pending *p = pending_new(fl, 0, w->name);
        circus_status st = p == NULL ? CIRCUS_E_INTERNAL : CIRCUS_OK;
        w->tries++;
        cps_log(fl->api, fl->host, CIRCUS_LOG_INFO, "%s: flapping detected: retry in %2ds (attempt number %lld)",
                w->name, (int)s.retry_in, (long long)w->tries);
        stop_watcher(fl, w);
        if (st == CIRCUS_OK) {
            st = fl->api->add_timer(fl->host, cps_ms(s.retry_in), 0, on_retry, p, pending_free, &w->retry);
            if (st != CIRCUS_OK) {
                free(p);
                w->retry = 0;
            }
        }
        if (st != CIRCUS_OK && st != CIRCUS_E_CANCELLED) {
            cps_log(fl->api, fl->host, CIRCUS_LOG_ERROR, "%s: cannot schedule its restart (status %d)", w->name,
                    (int)st);
        }
    } else {
        cps_log(fl->api, fl->host, CIRCUS_LOG_INFO, "%s: flapping detected: reached max retry limit", w->name);
        w->tries = 0;
        stop_watcher(fl, w);
    }
}

/* ---- events ------------------------------------------------------------------------- */

static int payload_pid(circus_str json, int64_t *pid) {
    circus_str v;
    return cps_json_get(json, "process_pid", &v) && cps_json_int(v, pid);
}

static int is_event(circus_str event, const char *name) {
    size_t n = strlen(name);
    return event.len == n && memcmp(event.ptr, name, n) == 0;
}

static void on_event(void *ud, circus_str topic, circus_str json) {
    flapping *fl = (flapping *)ud;
    circus_str name, event;
    watcher *w;
    int64_t pid;
    if (!fl->defaults.active || !cps_watcher_topic(topic, &name, &event)) {
        return;
    }
    w = find_watcher(fl, name.ptr, name.len);
    if (w == NULL && (is_event(event, "reap") || is_event(event, "kill"))) {
        if ((w = add_watcher(fl, name.ptr, name.len)) == NULL) {
            cps_log(fl->api, fl->host, CIRCUS_LOG_ERROR, "out of memory: flapping is not checked");
            return;
        }
    }
    if (w == NULL) {
        return; /* nothing known about it: nothing to update */
    } else if (is_event(event, "reap")) {
        if (payload_pid(json, &pid) && take_killed(w, pid)) {
            return; /* asked for: not a crash */
        }
        if (add_exit(w, cps_monotonic())) {
            check(fl, w);
        }
    } else if (is_event(event, "kill")) {
        if (payload_pid(json, &pid)) {
            add_killed(w, pid);
        }
    } else if (is_event(event, "stop")) {
        w->n_killed = 0; /* every process is gone */
        if (w->own_stops > 0) {
            w->own_stops--;
        } else if (w->retry != 0) {
            cancel_retry(fl, w);
            cps_log(fl->api, fl->host, CIRCUS_LOG_INFO,
                    "%s: stopped by someone else while flapping was to restart it: it stays stopped", w->name);
        }
    } else if (is_event(event, "start")) {
        if (w->retry != 0) {
            /* Someone started it already; ours would do nothing. Tries go on counting. */
            cancel_retry(fl, w);
        }
    } else if (is_event(event, "updated")) {
        load_conf(fl, w);
    } else if (is_event(event, "remove")) {
        remove_watcher(fl, w);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------- */

/* Reads the section's options over *s (which holds the defaults). */
static circus_status read_settings(const circus_host_api *api, circus_str config, circus_error *err, settings *s) {
    cps_options o;
    circus_status st;
    o.api = api;
    o.err = err;
    o.config = config;
    if ((st = cps_opt_int(&o, "attempts", 1, INT32_MAX, &s->attempts)) != CIRCUS_OK) return st;
    if ((st = cps_opt_float(&o, "window", 0, MAX_SECONDS, &s->window)) != CIRCUS_OK) return st;
    if ((st = cps_opt_float(&o, "retry_in", 0, MAX_SECONDS, &s->retry_in)) != CIRCUS_OK) return st;
    if ((st = cps_opt_int(&o, "max_retry", INFINITE_RETRY, INT32_MAX, &s->max_retry)) != CIRCUS_OK) return st;
    return cps_opt_bool(&o, "active", &s->active);
}

static void default_settings(settings *s) {
    s->attempts = 2;
    s->window = 1;
    s->retry_in = 7;
    s->max_retry = 5;
    s->active = 1;
}

static circus_status flapping_create(const circus_create_params *p, void **out, circus_error *err) {
    flapping *fl;
    settings s;
    circus_status st;
    default_settings(&s);
    if ((st = read_settings(p->api, p->config_json, err, &s)) != CIRCUS_OK) {
        return st;
    }
    fl = (flapping *)calloc(1, sizeof *fl);
    if (fl == NULL || (fl->instance = cps_strndup(p->instance_name.ptr, p->instance_name.len)) == NULL) {
        free(fl);
        p->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("out of memory"));
        return CIRCUS_E_INTERNAL;
    }
    fl->api = p->api;
    fl->host = p->host;
    fl->defaults = s;
    *out = fl;
    return CIRCUS_OK;
}

static circus_status flapping_start(void *instance, circus_error *err) {
    flapping *fl = (flapping *)instance;
    circus_status st = fl->api->subscribe(fl->host, circus_cstr("watcher."), on_event, fl, NULL, NULL);
    if (st != CIRCUS_OK) {
        cps_error(fl->api, err, st, "cannot subscribe to watcher events (status %d)", (int)st);
        return st;
    }
    if (!fl->defaults.active) {
        cps_log(fl->api, fl->host, CIRCUS_LOG_INFO, "inactive (active = false): flapping is not checked");
    }
    return CIRCUS_OK;
}

static circus_status flapping_reconfigure(void *instance, circus_str config_json, circus_error *err) {
    flapping *fl = (flapping *)instance;
    settings s;
    circus_status st;
    size_t i;
    default_settings(&s);
    if ((st = read_settings(fl->api, config_json, err, &s)) != CIRCUS_OK) {
        return st;
    }
    fl->defaults = s;
    if (!s.active) {
        /* Inactive from now on: no restart stays pending. */
        for (i = 0; i < fl->n_watchers; i++) {
            cancel_retry(fl, fl->watchers[i]);
            fl->watchers[i]->n_exits = 0;
        }
    }
    return CIRCUS_OK;
}

static void flapping_destroy(void *instance) {
    flapping *fl = (flapping *)instance;
    size_t i;
    for (i = 0; i < fl->n_watchers; i++) {
        free_watcher(fl->watchers[i]);
    }
    free(fl->watchers);
    free(fl->instance);
    free(fl);
}

static const circus_plugin_vtable flapping_vtable = {
    sizeof(circus_plugin_vtable), 0,
    flapping_create,
    flapping_start,
    NULL, /* stop: no threads; the host ends the timers and subscriptions */
    flapping_destroy,
    flapping_reconfigure,
};

static const circus_plugin_descriptor flapping_descriptor = {
    CIRCUS_PLUGIN_MAGIC,
    sizeof(circus_plugin_descriptor),
    CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "flapping",
    "1.0.0",
    "stops a watcher whose processes keep dying and starts it again later (Circus's Flapping)",
    0,
    &flapping_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor) {
    (void)host_abi_minor; /* nothing newer than 1.0 is used */
    return host_abi_major == CIRCUS_ABI_MAJOR ? &flapping_descriptor : NULL;
}
