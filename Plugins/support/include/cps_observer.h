/*
 * cps_observer.h: the frame the observer plugins (http_observer, redis_observer) share,
 * as Circus's BaseObserver is theirs: a statsd client, every loop_rate seconds a check
 * handed to a thread of the plugin's own (cps_worker.h), failures logged once per
 * streak, and the restart of a watcher when the check fails.
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
    int failing;                      /* the last check failed (and was logged)           */
} cps_observer;

/* In create(): sets up the statsd client (err names the option on failure). */
CPS_HIDDEN circus_status cps_observer_init(cps_observer *o, const circus_create_params *p,
                                           const cps_statsd_settings *statsd, double loop_rate, circus_error *err);
/* In start(): starts the worker and calls check(ud) every loop_rate seconds; check
 * submits its job with cps_worker_submit(o->worker, ...). */
CPS_HIDDEN circus_status cps_observer_start(cps_observer *o, circus_timer_fn check, void *ud, circus_error *err);
/* In stop() and destroy(): joins the worker (aborting its job) and closes the socket. */
CPS_HIDDEN void cps_observer_stop(cps_observer *o);

/* A check failed: logs why (printf-style) unless the previous one failed too. */
CPS_HIDDEN void cps_observer_failed(cps_observer *o, const char *fmt, ...) CPS_PRINTF(2, 3);
/* A check succeeded: logs "<what> answers again" after a failure. */
CPS_HIDDEN void cps_observer_succeeded(cps_observer *o, const char *what);
/* With a watcher named (not ""): `restart <watcher>`, then the counter `metric`. */
CPS_HIDDEN void cps_observer_restart(cps_observer *o, const char *watcher, const char *metric);

#endif /* CPS_OBSERVER_H */
