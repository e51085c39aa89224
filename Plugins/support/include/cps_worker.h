/*
 * cps_worker.h: a thread of the plugin's own for blocking work (an HTTP request, a
 * Redis round trip, a stat() of a file that may sit on a hung mount), so that the
 * instance's queue never waits on I/O. One job at a time: the instance submits a job,
 * the worker runs it, then hands it back to the instance's queue with the host's post(),
 * where `done` reads the result.
 *
 *   instance queue                 worker thread
 *   cps_worker_submit(job) ---->   work(job, worker)
 *   done(job), then release(job) <---- api->post()
 *
 * A job submitted while the previous one is still out (running, or its `done` not yet
 * posted) is refused with CIRCUS_E_BUSY: a periodic check skips a round rather than
 * piling requests up behind a slow peer.
 */
#ifndef CPS_WORKER_H
#define CPS_WORKER_H

#include "circus_plugin_support.h"

typedef struct cps_worker cps_worker;

/* Runs on the worker thread. Long work should poll cps_worker_stopping(). */
typedef void (*cps_work_fn)(void *job, cps_worker *worker);

/* Starts the thread (call it from start()). NULL on failure, with err filled. */
CPS_HIDDEN cps_worker *cps_worker_start(const circus_host_api *api, circus_host *host, circus_error *err);

/* Hands job to the thread: work(job) there, then done(job) on the instance's queue
 * (retried while that queue is full), then release(job) (also when done never runs
 * because the instance stopped first). CIRCUS_E_BUSY while the previous job is out;
 * then nothing happens and the caller still owns job. */
CPS_HIDDEN circus_status cps_worker_submit(cps_worker *w, cps_work_fn work, circus_task_fn done,
                                           circus_dtor_fn release, void *job);

/* True once cps_worker_stop() began: a job should give up as soon as it can. */
CPS_HIDDEN int cps_worker_stopping(cps_worker *w);

/* For a job blocked on a socket (a client library's blocking call): while fd is set
 * (>= 0), cps_worker_stop() shuts it down, which wakes the blocked call with an error.
 * Set it once connected; set -1 before closing it. */
CPS_HIDDEN void cps_worker_abort_fd(cps_worker *w, int fd);

/* Asks the running job to stop, joins the thread and frees the worker (call it from
 * stop()). A job not yet started is released without running. */
CPS_HIDDEN void cps_worker_stop(cps_worker *w);

#endif /* CPS_WORKER_H */
