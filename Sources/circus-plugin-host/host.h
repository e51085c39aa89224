// circus-plugin-host's state, shared by its parts: the instance's queue (queue.c), its
// registrations and the host function table (api.c), and the loop and the reader of
// circusd's frames (main.c).

#ifndef CIRCUS_PLUGIN_HOST_H
#define CIRCUS_PLUGIN_HOST_H

#include <circus/plugin.h>

#include "circus_plugin_loader.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

// MARK: The queue

enum item_kind { KIND_EVENT, KIND_REQUEST, KIND_TASK, KIND_CONTROL };
enum item_op { OP_EVENT, OP_REQUEST, OP_TASK, OP_START, OP_CALL_DONE, OP_RECONFIGURE, OP_STOP, OP_PING, OP_DTOR };

/// One unit of work for the instance's thread. Strings are owned (malloc'd).
typedef struct item {
    struct item *next;
    int kind, op;
    uint64_t a, b;              ///< request: token, hook handle; call done: id; ping: sequence
    int32_t status;
    char *s1, *s2, *s3;
    size_t n1, n2, n3;
    circus_task_fn task;
    circus_dtor_fn dtor;
    void *ud;
} item;

enum enqueued { QUEUED, BUSY, CLOSED };

item *item_new(int kind, int op);
void item_free(item *it);
/// Queues `it` (the queue owns it from now on, whatever the answer).
int queue_push(item *it);
/// The next item, or NULL when empty (then the drop count since the last report is in
/// *drops, and the report is reset).
item *queue_pop(uint64_t *drops);
/// Closes the queue and returns what was waiting (a list, to discard).
item *queue_close(void);
int queue_depth(void);
uint64_t queue_dropped_total(void);
/// The eventfd that becomes readable when the queue has work.
extern int queue_wake_fd;
extern int queue_capacity;
void queue_init(void);
void queue_wake(void);

// MARK: The instance

/// What the plugin's `circus_host *` points to (there is one instance per process).
struct circus_host {
    char name[128];
    size_t name_len;
};
extern struct circus_host the_host;
extern const circus_host_api host_api;
extern circus_loaded_plugin plugin_lib;
extern int epoll_fd;
/// Why plugin commands and hooks cannot be served (--refuse-requests), or NULL.
extern const char *refuse_requests;

/// Logs through circusd.
void host_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/// Seconds on CLOCK_MONOTONIC.
double now_seconds(void);

// Loop-thread side of the registrations (api.c).
void api_set_accepting(int accepting);
void dispatch_event(const char *topic, size_t topic_len, const char *json, size_t json_len);
void dispatch_request(uint64_t token, uint64_t hook, const char *name, size_t name_len, const char *args,
                      size_t args_len);
void dispatch_call_done(uint64_t id, int32_t status, const char *json, size_t len);
void dispatch_fd(uint64_t handle, uint32_t revents);
/// Fires due timers; returns epoll_wait's timeout in ms for the next (-1: none).
int fire_timers(void);
/// Ends every registration (dtors run, watches removed), forgets pending reply tokens
/// and completes pending calls with CIRCUS_E_CANCELLED.
void api_release_all(void);

#endif
