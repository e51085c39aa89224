/*
 * observer.c: the frame of the observer plugins (see cps_observer.h).
 */
#define _GNU_SOURCE 1
#include "cps_observer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

circus_status cps_observer_init(cps_observer *o, const circus_create_params *p, const cps_statsd_settings *statsd,
                                double loop_rate, int active, circus_timer_fn check, circus_error *err) {
    o->api = p->api;
    o->host = p->host;
    o->worker = NULL;
    o->loop_rate = loop_rate;
    o->active = active;
    o->check = check;
    o->failing = 0;
    cps_statsd_init(&o->statsd, p->api, p->host);
    return cps_statsd_setup(&o->statsd, statsd, err);
}

circus_status cps_observer_start(void *instance, circus_error *err) {
    cps_observer *o = (cps_observer *)instance;
    uint64_t every = cps_ms(o->loop_rate);
    circus_status st;
    if (!o->active) {
        cps_log(o->api, o->host, CIRCUS_LOG_INFO, "inactive (active = false): %s", o->inactive);
        return CIRCUS_OK;
    }
    o->worker = cps_worker_start(o->api, o->host, err);
    if (o->worker == NULL) {
        return CIRCUS_E_INTERNAL;
    }
    st = o->api->add_timer(o->host, every, every, o->check, instance, NULL, NULL);
    if (st != CIRCUS_OK) {
        cps_error(o->api, err, st, "cannot schedule the check loop (status %d)", (int)st);
        return st;
    }
    o->api->log(o->host, CIRCUS_LOG_INFO, circus_cstr(o->started));
    return CIRCUS_OK;
}

void cps_observer_stop(void *instance) {
    cps_observer *o = (cps_observer *)instance;
    cps_worker_stop(o->worker);
    o->worker = NULL;
    cps_statsd_close(&o->statsd);
}

void cps_observer_destroy(void *instance) {
    cps_observer_stop(instance);
    free(instance);
}

void cps_observer_failed(cps_observer *o, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    if (o->failing) {
        return;
    }
    o->failing = 1;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->api->log(o->host, CIRCUS_LOG_WARNING, circus_cstr(line));
}

void cps_observer_succeeded(cps_observer *o, const char *what) {
    if (o->failing) {
        o->failing = 0;
        cps_log(o->api, o->host, CIRCUS_LOG_INFO, "%s answers again", what);
    }
}

void cps_observer_restart(cps_observer *o, const char *watcher, const char *metric) {
    if (watcher[0] != '\0') {
        cps_cast(o->api, o->host, "restart", watcher, "");
        cps_statsd_increment(&o->statsd, "%s", metric);
    }
}
