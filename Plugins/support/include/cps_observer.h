/*
 * cps_observer.h: the frame the observer plugins (http_observer, redis_observer) share,
 * as Circus's BaseObserver is theirs: a statsd client, every loop_rate seconds a check
 * handed to a thread of the plugin's own (cps_worker.h), failures logged once per
 * streak, the restart of a watcher when the check fails, and the vtable's start, stop
 * and destroy.
 *
 * The plugin's instance struct starts with a cps_observer (its first member), so the
 * instance pointer is the frame's: the vtable can name cps_observer_start,
 * cps_observer_stop and cps_observer_destroy directly.
 */
#ifndef CPS_OBSERVER_H
#define CPS_OBSERVER_H

#include "circus_plugin_support.h"
#include "cps_statsd.h"
#include "cps_worker.h"

typedef struct cps_observer {
    const circus_host_api *api;
    circus_host *host;
    cps_statsd statsd;
    cps_worker *worker;               /* from start to stop                               */
    double loop_rate;
    int active;                       /* false: start does nothing but say so             */
    circus_timer_fn check;            /* every loop_rate s, with the instance as ud       */
    char started[2304];               /* logged once started ("fetching <url> every 60 s") */
    const char *inactive;             /* logged when not active                           */
    int failing;                      /* the last check failed (and was logged)           */
} cps_observer;

/* In create(), with the instance allocated (zeroed) and o its first member: sets up the
 * statsd client (err names the option on failure). check runs every loop_rate seconds
 * and submits its job with cps_worker_submit(o->worker, ...). */
CPS_HIDDEN circus_status cps_observer_init(cps_observer *o, const circus_create_params *p,
                                           const cps_statsd_settings *statsd, double loop_rate, int active,
                                           circus_timer_fn check, circus_error *err);

/* The vtable's start, stop (joins the worker, aborting its job; closes the socket) and
 * destroy (stop, then free(instance)). */
CPS_HIDDEN circus_status cps_observer_start(void *instance, circus_error *err);
CPS_HIDDEN void cps_observer_stop(void *instance);
CPS_HIDDEN void cps_observer_destroy(void *instance);

/* A check failed: logs why (printf-style) unless the previous one failed too. */
CPS_HIDDEN void cps_observer_failed(cps_observer *o, const char *fmt, ...) CPS_PRINTF(2, 3);
/* A check succeeded: logs "<what> answers again" after a failure. */
CPS_HIDDEN void cps_observer_succeeded(cps_observer *o, const char *what);
/* With a watcher named (not ""): `restart <watcher>`, then the counter `metric`. */
CPS_HIDDEN void cps_observer_restart(cps_observer *o, const char *watcher, const char *metric);

#endif /* CPS_OBSERVER_H */
