// The instance's bounded FIFO queue, as in the in-process host: events, requests and
// posted tasks count against the capacity; when it is full the oldest queued event is
// dropped (and counted), a request or a task is refused with BUSY; the host's own work
// (lifecycle, call results, dtors, pings) is never refused.

#include "host.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

int queue_wake_fd = -1;
int queue_capacity = 1024;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static item *head, *tail;
static int bounded, depth, closed;
// Pings waiting: the host's own probes, not counted in the depth circusd shows.
static int pings;
static uint64_t dropped_since_report, dropped_total;

void queue_init(void) { queue_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

void queue_wake(void) {
    uint64_t one = 1;
    (void)!write(queue_wake_fd, &one, sizeof one);
}

item *item_new(int kind, int op) {
    item *it = calloc(1, sizeof *it);
    if (it == NULL) abort();
    it->kind = kind;
    it->op = op;
    return it;
}

void item_free(item *it) {
    free(it->s1);
    free(it->s2);
    free(it->s3);
    free(it);
}

int queue_push(item *it) {
    int wake = 0;
    pthread_mutex_lock(&lock);
    if (closed) {
        pthread_mutex_unlock(&lock);
        item_free(it);
        return CLOSED;
    }
    if (it->kind != KIND_CONTROL && bounded >= queue_capacity) {
        if (it->kind != KIND_EVENT) {
            pthread_mutex_unlock(&lock);
            item_free(it);
            return BUSY;
        }
        // Make room by dropping the oldest event; if everything queued is a request or a
        // task, the new event is the one dropped.
        dropped_since_report++;
        dropped_total++;
        item *prev = NULL, *old = head;
        while (old != NULL && old->kind != KIND_EVENT) {
            prev = old;
            old = old->next;
        }
        if (old == NULL) {
            pthread_mutex_unlock(&lock);
            item_free(it);
            return QUEUED;
        }
        if (prev == NULL) head = old->next; else prev->next = old->next;
        if (tail == old) tail = prev;
        bounded--;
        depth--;
        item_free(old);
    }
    it->next = NULL;
    if (tail == NULL) {
        head = tail = it;
        wake = 1;
    } else {
        tail->next = it;
        tail = it;
    }
    if (it->kind != KIND_CONTROL) bounded++;
    if (it->op == OP_PING) pings++;
    depth++;
    pthread_mutex_unlock(&lock);
    if (wake) queue_wake();
    return QUEUED;
}

item *queue_pop(uint64_t *drops) {
    pthread_mutex_lock(&lock);
    item *it = head;
    *drops = 0;
    if (it != NULL) {
        head = it->next;
        if (head == NULL) tail = NULL;
        if (it->kind != KIND_CONTROL) bounded--;
        if (it->op == OP_PING) pings--;
        depth--;
    } else {
        *drops = closed ? 0 : dropped_since_report;
        dropped_since_report = 0;
    }
    pthread_mutex_unlock(&lock);
    return it;
}

item *queue_close(void) {
    pthread_mutex_lock(&lock);
    closed = 1;
    item *all = head;
    head = tail = NULL;
    bounded = depth = pings = 0;
    dropped_since_report = 0;
    pthread_mutex_unlock(&lock);
    return all;
}

int queue_depth(void) {
    pthread_mutex_lock(&lock);
    int d = depth - pings;
    pthread_mutex_unlock(&lock);
    return d;
}

uint64_t queue_dropped_total(void) {
    pthread_mutex_lock(&lock);
    uint64_t d = dropped_total;
    pthread_mutex_unlock(&lock);
    return d;
}
