/*
 * http_observer.c: fetches a URL every loop_rate seconds and reports to statsd, as
 * Circus's HttpObserver plugin (circus.plugins.http_observer) means to (Circus 0.19's
 * own is broken on current tornado).
 *
 * Each round is one GET of check_url with libcurl, on the plugin's own thread (redirects
 * followed, at most 5, as tornado does). The outcome, as statsd metrics under
 * `circus.<application_name>.watcher.`:
 *  - an answer in 200-299: the timer `http_stats.request_time:<ms>|ms`;
 *  - any other status, or no answer (599, as tornado reports a connection failure or a
 *    timeout): `http_stats.error:1|c` and `http_stats.error.<status>:1|c`, then, with
 *    restart_on_error, `restart <watcher>` and `http_stats.restart_on_error:1|c`.
 *
 * Options: check_url (http://localhost/; http or https), loop_rate (60 s), timeout
 * (10 s, the whole request), restart_on_error (a watcher name; none), and the statsd
 * options host, port, sample_rate, application_name (http_observer); active (true; false:
 * nothing is fetched).
 *
 * Where it differs from Circus: a round is skipped while the previous request is still
 * out (tornado would start another); the failure is also logged, once per streak.
 */
#define _GNU_SOURCE 1
#include <circus/plugin.h>

#include "circus_plugin_support.h"
#include "cps_observer.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The status tornado gives a request that got no HTTP answer. */
#define NO_ANSWER 599

typedef struct settings {
    cps_statsd_settings statsd;
    char url[2048];
    double loop_rate;
    double timeout;
    int active;
    char restart_on_error[256];       /* "" when not set                                  */
} settings;

typedef struct observer {
    cps_observer frame;               /* first: the instance pointer is the frame's        */
    settings s;
} observer;

/* One request: what to fetch, and what came back. */
typedef struct fetch {
    observer *o;
    char url[2048];
    long timeout_ms;
    CURLcode result;
    long status;                      /* the HTTP status, 0 when none                     */
    double seconds;                   /* the request's total time                         */
    char error[CURL_ERROR_SIZE];
} fetch;

/* ---- the request (on the worker thread) ---------------------------------------------- */

static size_t discard(char *data, size_t size, size_t count, void *ud) {
    (void)data;
    (void)ud;
    return size * count;
}

/* Called by libcurl while it waits: a non-zero answer aborts the transfer. */
static int keep_going(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return cps_worker_stopping((cps_worker *)ud);
}

static void perform(void *job, cps_worker *worker) {
    fetch *f = (fetch *)job;
    CURL *curl = curl_easy_init();
    f->error[0] = '\0';
    if (curl == NULL) {
        f->result = CURLE_FAILED_INIT;
        return;
    }
    curl_easy_setopt(curl, CURLOPT_URL, f->url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: the daemon owns signals */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, f->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, keep_going);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, worker);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, f->error);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "circusd http_observer");
    f->result = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &f->seconds);
    if (f->error[0] == '\0') {
        snprintf(f->error, sizeof f->error, "%s", curl_easy_strerror(f->result));
    }
    curl_easy_cleanup(curl);
}

/* ---- the outcome (on the instance's queue) -------------------------------------------- */

static void fetched(void *ud) {
    fetch *f = (fetch *)ud;
    observer *o = f->o;
    long status = f->result == CURLE_OK ? f->status : NO_ANSWER;
    if (f->result == CURLE_OK && status >= 200 && status < 300) {
        cps_observer_succeeded(&o->frame, o->s.url);
        cps_statsd_timing(&o->frame.statsd, "http_stats.request_time", (int64_t)(f->seconds * 1000));
        return;
    }
    if (f->result == CURLE_OK) {
        cps_observer_failed(&o->frame, "%s answered with status %ld", o->s.url, status);
    } else {
        cps_observer_failed(&o->frame, "%s did not answer: %s", o->s.url, f->error);
    }
    cps_statsd_increment(&o->frame.statsd, "http_stats.error");
    cps_statsd_increment(&o->frame.statsd, "http_stats.error.%ld", status);
    cps_observer_restart(&o->frame, o->s.restart_on_error, "http_stats.restart_on_error");
}

static void on_loop(void *ud, circus_handle timer) {
    observer *o = (observer *)ud;
    fetch *f = (fetch *)calloc(1, sizeof *f);
    (void)timer;
    if (f == NULL) {
        return;
    }
    f->o = o;
    memcpy(f->url, o->s.url, sizeof f->url);
    f->timeout_ms = (long)cps_ms(o->s.timeout);
    if (cps_worker_submit(o->frame.worker, perform, fetched, free, f) != CIRCUS_OK) {
        free(f); /* the previous request is still out: skip this round */
    }
}

/* ---- configuration ------------------------------------------------------------------ */

static circus_status read_settings(const circus_host_api *api, circus_str config, circus_error *err, settings *s) {
    cps_options o;
    circus_status st;
    o.api = api;
    o.err = err;
    o.config = config;
    memset(s, 0, sizeof *s);
    strcpy(s->url, "http://localhost/");
    s->loop_rate = 60;
    s->timeout = 10;
    s->active = 1;
    if ((st = cps_opt_bool(&o, "active", &s->active)) != CIRCUS_OK) return st;
    if ((st = cps_statsd_read(&o, "http_observer", &s->statsd)) != CIRCUS_OK) return st;
    if ((st = cps_opt_string(&o, "check_url", s->url, sizeof s->url)) != CIRCUS_OK) return st;
    if (strncasecmp(s->url, "http://", 7) != 0 && strncasecmp(s->url, "https://", 8) != 0) {
        return cps_opt_refuse(&o, "check_url", s->url, "must be an http:// or https:// URL");
    }
    if ((st = cps_opt_float(&o, "loop_rate", 0.001, 1e9, &s->loop_rate)) != CIRCUS_OK) return st;
    if ((st = cps_opt_float(&o, "timeout", 0.001, 1e6, &s->timeout)) != CIRCUS_OK) return st;
    return cps_opt_string(&o, "restart_on_error", s->restart_on_error, sizeof s->restart_on_error);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_ready;

/* libcurl's global set-up, once per process (the library is never unloaded). */
static void init_curl(void) {
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static circus_status observer_create(const circus_create_params *p, void **out, circus_error *err) {
    observer *o;
    settings s;
    circus_status st;
    if ((st = read_settings(p->api, p->config_json, err, &s)) != CIRCUS_OK) {
        return st;
    }
    pthread_once(&curl_once, init_curl);
    if (curl_ready != CURLE_OK) {
        cps_error(p->api, err, CIRCUS_E_INTERNAL, "libcurl cannot start: %s", curl_easy_strerror(curl_ready));
        return CIRCUS_E_INTERNAL;
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
    snprintf(o->frame.started, sizeof o->frame.started, "fetching %s every %g s", s.url, s.loop_rate);
    o->frame.inactive = "nothing is fetched";
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
    "http_observer",
    "1.0.0",
    "fetches a URL periodically, reports its timing to statsd and restarts a watcher when it fails",
    CIRCUS_PLUGIN_F_MULTI_INSTANCE,
    &observer_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor) {
    (void)host_abi_minor; /* nothing newer than 1.0 is used */
    return host_abi_major == CIRCUS_ABI_MAJOR ? &observer_descriptor : NULL;
}
