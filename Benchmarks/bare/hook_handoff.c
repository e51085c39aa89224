/*
 * hook_handoff: bare limit for "call a function on another thread and get the answer
 * back to an event loop", the path every hook call takes in circusd.  The main thread
 * sleeps in epoll_wait on an eventfd; a worker thread sleeps on a condition variable.
 * COUNT times: t0, hand a job to the worker (mutex + cond_signal), the worker calls an
 * empty function and writes the eventfd, epoll_wait wakes, t1.  A short pause
 * (PAUSE_US, default 700, about one spawn) lets both threads fall asleep between
 * samples, as they do between spawns.
 *
 *   hook_handoff COUNT
 *
 * Prints {"count": ..., "p50_us": ..., "p99_us": ..., "mean_us": ...}.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int pending = 0;
static int efd;

static int __attribute__((noinline)) hook(int pid) { return pid > 0; }

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (!pending) pthread_cond_wait(&wake, &lock);
        pending = 0;
        pthread_mutex_unlock(&lock);
        volatile int r = hook(42);
        (void)r;
        uint64_t one = 1;
        if (write(efd, &one, sizeof one) != sizeof one) abort();
    }
    return NULL;
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s COUNT\n", argv[0]); return 2; }
    int count = atoi(argv[1]);
    const char *p = getenv("PAUSE_US");
    int pause_us = p ? atoi(p) : 700;
    efd = eventfd(0, EFD_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd};
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    double *samples = malloc(sizeof(double) * count), sum = 0;
    for (int i = 0; i < count; i++) {
        usleep(pause_us);
        double t0 = now_us();
        pthread_mutex_lock(&lock);
        pending = 1;
        pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
        struct epoll_event out;
        while (epoll_wait(ep, &out, 1, -1) < 1) {}
        uint64_t n;
        if (read(efd, &n, sizeof n) != sizeof n) abort();
        samples[i] = now_us() - t0;
        sum += samples[i];
    }
    qsort(samples, count, sizeof(double), compare);
    printf("{\"count\": %d, \"p50_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f}\n", count,
           samples[count / 2], samples[(int)(count * 0.99)], sum / count);
    return 0;
}
