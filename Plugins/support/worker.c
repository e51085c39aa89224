/*
 * worker.c: a thread of the plugin's own for blocking work (see cps_worker.h).
 */
#define _GNU_SOURCE 1
#include "cps_worker.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct cps_worker {
    const circus_host_api *api;
    circus_host *host;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    int out;                          /* a job is queued or running                       */
    int abort_fd;                     /* shut down by stop (cps_worker_abort_fd), or -1   */
    /* The queued job, taken by the thread. */
    void *job;
    cps_work_fn work;
    circus_task_fn done;
    circus_dtor_fn release;
};

static void *run(void *arg) {
    cps_worker *w = (cps_worker *)arg;
    sigset_t pipe_signal;
    /* The jobs talk to servers (Redis, HTTP) that may close the connection: a write to it
     * must fail with EPIPE here, never end the process that hosts the plugin, whatever
     * that process does with SIGPIPE. */
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, NULL);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        void *job;
        cps_work_fn work;
        circus_task_fn done;
        circus_dtor_fn release;
        circus_status st;
        while (!w->stopping && w->job == NULL) {
            pthread_cond_wait(&w->wake, &w->lock);
        }
        if (w->stopping) {
            break;
        }
        job = w->job;
        work = w->work;
        done = w->done;
        release = w->release;
        w->job = NULL;
        pthread_mutex_unlock(&w->lock);

        work(job, w);
        /* Back to the instance's queue. A full queue drains: try again shortly, so that
         * `done` always runs unless the instance is stopping (then the job is released
         * here, unseen). */
        while ((st = w->api->post(w->host, done, job, release)) == CIRCUS_E_BUSY && !cps_worker_stopping(w)) {
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        if (st != CIRCUS_OK && release != NULL) {
            release(job);
        }

        pthread_mutex_lock(&w->lock);
        w->out = 0;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

cps_worker *cps_worker_start(const circus_host_api *api, circus_host *host, circus_error *err) {
    cps_worker *w = (cps_worker *)calloc(1, sizeof *w);
    int rc;
    if (w == NULL) {
        api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("out of memory"));
        return NULL;
    }
    w->api = api;
    w->host = host;
    w->abort_fd = -1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        cps_error(api, err, CIRCUS_E_INTERNAL, "cannot start the plugin's worker thread: %s", strerror(rc));
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

circus_status cps_worker_submit(cps_worker *w, cps_work_fn work, circus_task_fn done, circus_dtor_fn release,
                                void *job) {
    circus_status st = CIRCUS_OK;
    pthread_mutex_lock(&w->lock);
    if (w->stopping) {
        st = CIRCUS_E_CANCELLED;
    } else if (w->out) {
        st = CIRCUS_E_BUSY;
    } else {
        w->out = 1;
        w->job = job;
        w->work = work;
        w->done = done;
        w->release = release;
        pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->lock);
    return st;
}

int cps_worker_stopping(cps_worker *w) {
    int stopping;
    pthread_mutex_lock(&w->lock);
    stopping = w->stopping;
    pthread_mutex_unlock(&w->lock);
    return stopping;
}

void cps_worker_abort_fd(cps_worker *w, int fd) {
    pthread_mutex_lock(&w->lock);
    w->abort_fd = fd;
    if (fd >= 0 && w->stopping) {
        shutdown(fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&w->lock);
}

void cps_worker_stop(cps_worker *w) {
    void *unstarted;
    circus_dtor_fn release;
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    if (w->abort_fd >= 0) {
        shutdown(w->abort_fd, SHUT_RDWR);
    }
    unstarted = w->job;
    release = w->release;
    w->job = NULL;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    if (unstarted != NULL && release != NULL) {
        release(unstarted);
    }
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
