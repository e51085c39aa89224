// The host function table of an isolated instance. What reaches circusd (log, publish,
// subscriptions, commands, hooks, replies, calls) becomes a frame; timers, fd watches and
// posted tasks stay in this process. Every check the in-process host makes is made here,
// synchronously, with the same status, so a plugin cannot tell where it runs.

#define _GNU_SOURCE
#include "frames.h"
#include "host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

struct circus_host the_host;
int epoll_fd = -1;
const char *refuse_requests;

enum reg_kind { REG_SUBSCRIPTION, REG_COMMAND, REG_HOOK, REG_TIMER, REG_WATCH };

typedef struct reg {
    uint64_t handle;
    int kind;
    circus_event_fn event_fn;
    circus_request_fn request_fn;
    circus_timer_fn timer_fn;
    circus_fd_fn fd_fn;
    void *ud;
    circus_dtor_fn dtor;
    char *text;         ///< subscription prefix or command name
    size_t text_len;
    int fd;
    uint64_t repeat_ms;
    double deadline;    ///< a timer's next firing (monotonic seconds)
} reg;

typedef struct pending_call {
    uint64_t id;
    circus_result_fn done;
    void *ud;
} pending_call;

// Guarded by `lock`: what host API calls change from any thread.
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int accepting;
static reg *regs;
static size_t reg_count, reg_cap;
static uint64_t next_handle = 1;
static uint64_t *tokens;                // requests handed to the plugin, not answered
static size_t token_count, token_cap;
static pending_call *calls;
static size_t call_count, call_cap;

#define GROW(array, count, cap)                                                     \
    do {                                                                            \
        if ((count) == (cap)) {                                                     \
            size_t grown = (cap) ? (cap) * 2 : 16;                                  \
            void *p = realloc((array), grown * sizeof *(array));                    \
            if (p == NULL) abort();                                                 \
            (array) = p;                                                            \
            (cap) = grown;                                                          \
        }                                                                           \
    } while (0)

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void host_log(int level, const char *fmt, ...) {
    char text[2048];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    out_frame f;
    frame_begin(&f, CIRCUS_FRAME_LOG);
    frame_u64(&f, (uint64_t)(int64_t)level);
    frame_str(&f, text, strlen(text));
    frame_send(&f);
}

void api_set_accepting(int value) {
    pthread_mutex_lock(&lock);
    accepting = value;
    pthread_mutex_unlock(&lock);
}

static reg *find(uint64_t handle) {
    for (size_t i = 0; i < reg_count; i++) {
        if (regs[i].handle == handle) return &regs[i];
    }
    return NULL;
}

/// Adds a registration (lock held, accepting checked); returns its handle.
static uint64_t add(reg r) {
    GROW(regs, reg_count, reg_cap);
    r.handle = next_handle++;
    regs[reg_count++] = r;
    return r.handle;
}

/// Removes a registration (lock held) and returns a copy.
static reg take(reg *r) {
    reg copy = *r;
    *r = regs[--reg_count];
    return copy;
}

static char *copy_text(circus_str s) {
    char *p = malloc(s.len + 1);
    if (p == NULL) abort();
    if (s.len > 0) memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    return p;
}

static int is_mine(circus_host *h) { return h == &the_host; }

/// Takes the lock if the instance accepts registrations (then the caller unlocks).
static int lock_accepting(void) {
    pthread_mutex_lock(&lock);
    if (accepting) return 1;
    pthread_mutex_unlock(&lock);
    return 0;
}

static reg reg_new(int kind, void *ud, circus_dtor_fn dtor) {
    reg r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.ud = ud;
    r.dtor = dtor;
    return r;
}

/// Runs a dtor on the queue (or now, when the queue is closed).
static void dtor_later(circus_dtor_fn dtor, void *ud) {
    if (dtor == NULL) return;
    item *it = item_new(KIND_CONTROL, OP_DTOR);
    it->dtor = dtor;
    it->ud = ud;
    if (queue_push(it) != QUEUED) dtor(ud);
}

static void send_handle(int type, uint64_t handle) {
    out_frame f;
    frame_begin(&f, type);
    frame_u64(&f, handle);
    frame_send(&f);
}

// MARK: The table

static void api_log(circus_host *h, circus_log_level level, circus_str msg) {
    if (!is_mine(h)) return;
    out_frame f;
    frame_begin(&f, CIRCUS_FRAME_LOG);
    frame_u64(&f, (uint64_t)(int64_t)level);
    frame_str(&f, msg.ptr, msg.len);
    frame_send(&f);
}

/// What `circus_error *` points to here.
typedef struct error_sink {
    int32_t status;
    char *message;
} error_sink;

static void api_set_error(circus_error *err, circus_status code, circus_str msg) {
    error_sink *sink = (error_sink *)(void *)err;
    if (sink == NULL) return;
    free(sink->message);
    sink->message = copy_text(msg);
    sink->status = code;
}

static circus_status api_publish(circus_host *h, circus_str topic, circus_str json) {
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    if (!circus_json_is_object(json.ptr, json.len)) return CIRCUS_E_INVALID;
    size_t n = the_host.name_len;
    if (topic.len <= n + 8 || memcmp(topic.ptr, "plugin.", 7) != 0 || memcmp(topic.ptr + 7, the_host.name, n) != 0
        || topic.ptr[7 + n] != '.') {
        host_log(CIRCUS_LOG_ERROR, "plugin %s tried to publish \"%.*s\": it may publish only under \"plugin.%s.\"",
                 the_host.name, (int)topic.len, topic.ptr, the_host.name);
        return CIRCUS_E_INVALID;
    }
    pthread_mutex_lock(&lock);
    int ok = accepting;
    pthread_mutex_unlock(&lock);
    if (!ok) return CIRCUS_E_CANCELLED;
    out_frame f;
    frame_begin(&f, CIRCUS_FRAME_PUBLISH);
    frame_str(&f, topic.ptr, topic.len);
    frame_str(&f, json.len > 0 ? json.ptr : "{}", json.len > 0 ? json.len : 2);
    frame_send(&f);
    return CIRCUS_OK;
}

static circus_status give(uint64_t handle, circus_handle *out) {
    if (out != NULL) *out = handle;
    return CIRCUS_OK;
}

static circus_status api_subscribe(circus_host *h, circus_str prefix, circus_event_fn fn, void *ud,
                                   circus_dtor_fn dtor, circus_handle *out) {
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    if (fn == NULL) return CIRCUS_E_INVALID;
    if (!lock_accepting()) return CIRCUS_E_CANCELLED;
    reg r = reg_new(REG_SUBSCRIPTION, ud, dtor);
    r.event_fn = fn;
    r.text = copy_text(prefix);
    r.text_len = prefix.len;
    uint64_t handle = add(r);
    // Sent under the lock, so that circusd sees registrations in handle order.
    out_frame f;
    frame_begin(&f, CIRCUS_FRAME_SUBSCRIBE);
    frame_u64(&f, handle);
    frame_str(&f, prefix.ptr, prefix.len);
    frame_send(&f);
    pthread_mutex_unlock(&lock);
    return give(handle, out);
}

static circus_status cancel_handle(circus_host *h, circus_handle handle, int only_subscriptions) {
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    if (!lock_accepting()) return CIRCUS_E_CANCELLED;
    reg *r = find(handle);
    if (r == NULL || (only_subscriptions && r->kind != REG_SUBSCRIPTION)) {
        pthread_mutex_unlock(&lock);
        return CIRCUS_E_NOT_FOUND;
    }
    reg gone = take(r);
    switch (gone.kind) {
    case REG_SUBSCRIPTION: send_handle(CIRCUS_FRAME_UNSUBSCRIBE, handle); break;
    case REG_COMMAND: send_handle(CIRCUS_FRAME_UNREGISTER_COMMAND, handle); break;
    case REG_HOOK: send_handle(CIRCUS_FRAME_UNREGISTER_HOOK, handle); break;
    case REG_WATCH: epoll_ctl(epoll_fd, EPOLL_CTL_DEL, gone.fd, NULL); break;
    default: break;
    }
    pthread_mutex_unlock(&lock);
    free(gone.text);
    dtor_later(gone.dtor, gone.ud);
    return CIRCUS_OK;
}

static circus_status api_unsubscribe(circus_host *h, circus_handle handle) { return cancel_handle(h, handle, 1); }
static circus_status api_cancel(circus_host *h, circus_handle handle) { return cancel_handle(h, handle, 0); }

static circus_status api_register_command(circus_host *h, circus_str name, circus_str meta, uint64_t flags,
                                          circus_request_fn fn, void *ud, circus_dtor_fn dtor, circus_handle *out) {
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    if (fn == NULL || !circus_json_is_object(meta.ptr, meta.len)) return CIRCUS_E_INVALID;
    if (!circus_command_name_is_valid(the_host.name, the_host.name_len, name.ptr, name.len)) {
        host_log(CIRCUS_LOG_ERROR, "plugin %s tried to register the command \"%.*s\": its commands must be named "
                 "\"%s.<verb>\" with a verb of [a-z0-9_.-]", the_host.name, (int)name.len, name.ptr, the_host.name);
        return CIRCUS_E_INVALID;
    }
    if (refuse_requests != NULL) {
        host_log(CIRCUS_LOG_ERROR, "plugin %s tried to register the command \"%.*s\": %s", the_host.name,
                 (int)name.len, name.ptr, refuse_requests);
        return CIRCUS_E_UNSUPPORTED;
    }
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < reg_count; i++) {
        if (regs[i].kind == REG_COMMAND && regs[i].text_len == name.len && memcmp(regs[i].text, name.ptr, name.len) == 0) {
            pthread_mutex_unlock(&lock);
            host_log(CIRCUS_LOG_ERROR, "plugin %s tried to register the command \"%.*s\" twice", the_host.name,
                     (int)name.len, name.ptr);
            return CIRCUS_E_INVALID;
        }
    }
    if (!accepting) {
        pthread_mutex_unlock(&lock);
        return CIRCUS_E_CANCELLED;
    }
    reg r = reg_new(REG_COMMAND, ud, dtor);
    r.request_fn = fn;
    r.text = copy_text(name);
    r.text_len = name.len;
    uint64_t handle = add(r);
    out_frame f;
    frame_begin(&f, CIRCUS_FRAME_REGISTER_COMMAND);
    frame_u64(&f, handle);
    frame_str(&f, name.ptr, name.len);
    frame_str(&f, meta.len > 0 ? meta.ptr : "{}", meta.len > 0 ? meta.len : 2);
    frame_u64(&f, flags);
    frame_send(&f);
    pthread_mutex_unlock(&lock);
    return give(handle, out);
}

static circus_status api_register_hook(circus_host *h, circus_str pattern, circus_str hook, circus_request_fn fn,
                                       void *ud, circus_dtor_fn dtor, circus_handle *out) {
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    if (fn == NULL) return CIRCUS_E_INVALID;
    if (!circus_hook_name_is_valid(hook.ptr, hook.len)) {
        host_log(CIRCUS_LOG_ERROR, "plugin %s tried to register an unknown hook \"%.*s\"; hooks are %s",
                 the_host.name, (int)hook.len, hook.ptr, circus_hook_names());
        return CIRCUS_E_INVALID;
    }
    if (pattern.len == 0) return CIRCUS_E_INVALID;
    if (refuse_requests != NULL) {
        host_log(CIRCUS_LOG_ERROR, "plugin %s tried to register the %.*s hook: %s", the_host.name, (int)hook.len,
                 hook.ptr, refuse_requests);
        return CIRCUS_E_UNSUPPORTED;
    }
    if (!lock_accepting()) return CIRCUS_E_CANCELLED;
    reg r = reg_new(REG_HOOK, ud, dtor);
    r.request_fn = fn;
    uint64_t handle = add(r);
    out_frame f;
    frame_begin(&f, CIRCUS_FRAME_REGISTER_HOOK);
    frame_u64(&f, handle);
    frame_str(&f, pattern.ptr, pattern.len);
    frame_str(&f, hook.ptr, hook.len);
    frame_send(&f);
    pthread_mutex_unlock(&lock);
    return give(handle, out);
}

static circus_status api_reply(circus_reply *reply, circus_status st, circus_str json) {
    uint64_t token = (uint64_t)(uintptr_t)reply;
    if (token == 0) return CIRCUS_E_NOT_FOUND;
    if (st == CIRCUS_OK && !circus_json_is_object(json.ptr, json.len)) return CIRCUS_E_INVALID;
    if (st > 0) return CIRCUS_E_INVALID;
    pthread_mutex_lock(&lock);
    size_t i = 0;
    while (i < token_count && tokens[i] != token) i++;
    if (i == token_count) {
        pthread_mutex_unlock(&lock);
        return CIRCUS_E_NOT_FOUND;
    }
    tokens[i] = tokens[--token_count];
    out_frame f;
    frame_begin(&f, CIRCUS_FRAME_REPLY);
    frame_u64(&f, token);
    frame_u64(&f, (uint64_t)(int64_t)st);
    // An error's JSON is optional; a malformed one just carries no reason.
    if (json.len == 0 || (st != CIRCUS_OK && !circus_json_is_object(json.ptr, json.len))) {
        frame_str(&f, "{}", 2);
    } else {
        frame_str(&f, json.ptr, json.len);
    }
    frame_send(&f);
    pthread_mutex_unlock(&lock);
    return CIRCUS_OK;
}

static circus_status api_call(circus_host *h, circus_str command, circus_str args, circus_result_fn done, void *ud) {
    static uint64_t next_call = 1;
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    if (done == NULL || command.len == 0 || !circus_json_is_object(args.ptr, args.len)) return CIRCUS_E_INVALID;
    if (!lock_accepting()) return CIRCUS_E_CANCELLED;
    GROW(calls, call_count, call_cap);
    uint64_t id = next_call++;
    calls[call_count++] = (pending_call){id, done, ud};
    out_frame f;
    frame_begin(&f, CIRCUS_FRAME_CALL);
    frame_u64(&f, id);
    frame_str(&f, command.ptr, command.len);
    frame_str(&f, args.len > 0 ? args.ptr : "{}", args.len > 0 ? args.len : 2);
    frame_send(&f);
    pthread_mutex_unlock(&lock);
    return CIRCUS_OK;
}

static circus_status api_add_timer(circus_host *h, uint64_t delay_ms, uint64_t repeat_ms, circus_timer_fn fn,
                                   void *ud, circus_dtor_fn dtor, circus_handle *out) {
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    if (fn == NULL) return CIRCUS_E_INVALID;
    if (!lock_accepting()) return CIRCUS_E_CANCELLED;
    reg r = reg_new(REG_TIMER, ud, dtor);
    r.timer_fn = fn;
    r.repeat_ms = repeat_ms;
    r.deadline = now_seconds() + (double)delay_ms / 1000.0;
    uint64_t handle = add(r);
    pthread_mutex_unlock(&lock);
    queue_wake();  // the loop recomputes its timeout
    return give(handle, out);
}

static circus_status api_watch_fd(circus_host *h, int fd, uint32_t events, circus_fd_fn fn, void *ud,
                                  circus_dtor_fn dtor, circus_handle *out) {
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    uint32_t allowed = CIRCUS_FD_READABLE | CIRCUS_FD_WRITABLE;
    if (fn == NULL || fd < 0 || events == 0 || (events & ~allowed) != 0 || fcntl(fd, F_GETFD) == -1) {
        return CIRCUS_E_INVALID;
    }
    if (!lock_accepting()) return CIRCUS_E_CANCELLED;
    for (size_t i = 0; i < reg_count; i++) {
        if (regs[i].kind == REG_WATCH && regs[i].fd == fd) {
            pthread_mutex_unlock(&lock);
            return CIRCUS_E_INVALID;
        }
    }
    reg r = reg_new(REG_WATCH, ud, dtor);
    r.fd_fn = fn;
    r.fd = fd;
    uint64_t handle = add(r);
    // The CIRCUS_FD_* bits are the EPOLL* bits.
    struct epoll_event ev = {.events = events, .data.u64 = handle};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int error = errno;
        take(find(handle));
        pthread_mutex_unlock(&lock);
        host_log(CIRCUS_LOG_ERROR, "plugin %s: cannot watch fd %d: %s", the_host.name, fd, strerror(error));
        return CIRCUS_E_INVALID;
    }
    pthread_mutex_unlock(&lock);
    return give(handle, out);
}

static circus_status api_post(circus_host *h, circus_task_fn fn, void *ud, circus_dtor_fn dtor) {
    if (!is_mine(h)) return CIRCUS_E_CANCELLED;
    if (fn == NULL) return CIRCUS_E_INVALID;
    pthread_mutex_lock(&lock);
    int ok = accepting;
    pthread_mutex_unlock(&lock);
    if (!ok) return CIRCUS_E_CANCELLED;
    item *it = item_new(KIND_TASK, OP_TASK);
    it->task = fn;
    it->ud = ud;
    it->dtor = dtor;
    switch (queue_push(it)) {
    case QUEUED: return CIRCUS_OK;
    case BUSY: return CIRCUS_E_BUSY;
    default: return CIRCUS_E_CANCELLED;
    }
}

const circus_host_api host_api = {
    sizeof(circus_host_api), CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR, 0,
    api_log, api_set_error, api_publish, api_subscribe, api_unsubscribe, api_register_command, api_reply,
    api_call, api_register_hook, api_add_timer, api_watch_fd, api_cancel, api_post,
};

// MARK: The loop's side

void dispatch_event(const char *topic, size_t topic_len, const char *json, size_t json_len) {
    // Subscriptions in handle order; a callback may cancel a later one.
    size_t n = 0;
    pthread_mutex_lock(&lock);
    uint64_t *matching = malloc((reg_count > 0 ? reg_count : 1) * sizeof *matching);
    if (matching == NULL) abort();
    for (size_t i = 0; i < reg_count; i++) {
        reg *r = &regs[i];
        if (r->kind == REG_SUBSCRIPTION && r->text_len <= topic_len && memcmp(r->text, topic, r->text_len) == 0) {
            matching[n++] = r->handle;
        }
    }
    pthread_mutex_unlock(&lock);
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && matching[j - 1] > matching[j]; j--) {
            uint64_t t = matching[j];
            matching[j] = matching[j - 1];
            matching[j - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&lock);
        reg *r = find(matching[i]);
        circus_event_fn fn = r != NULL ? r->event_fn : NULL;
        void *ud = r != NULL ? r->ud : NULL;
        pthread_mutex_unlock(&lock);
        if (fn != NULL) fn(ud, circus_str_make(topic, topic_len), circus_str_make(json, json_len));
    }
    free(matching);
}

void dispatch_request(uint64_t token, uint64_t hook, const char *name, size_t name_len, const char *args,
                      size_t args_len) {
    circus_request_fn fn = NULL;
    void *ud = NULL;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < reg_count; i++) {
        reg *r = &regs[i];
        if (hook != 0 ? (r->kind == REG_HOOK && r->handle == hook)
                      : (r->kind == REG_COMMAND && r->text_len == name_len && memcmp(r->text, name, name_len) == 0)) {
            fn = r->request_fn;
            ud = r->ud;
            break;
        }
    }
    if (fn != NULL) {
        GROW(tokens, token_count, token_cap);
        tokens[token_count++] = token;
    }
    pthread_mutex_unlock(&lock);
    if (fn == NULL) {
        char reason[512];
        snprintf(reason, sizeof reason, "{\"reason\": \"plugin %s no longer handles %.*s\"}", the_host.name,
                 (int)name_len, name);
        out_frame f;
        frame_begin(&f, CIRCUS_FRAME_REPLY);
        frame_u64(&f, token);
        frame_u64(&f, (uint64_t)(int64_t)CIRCUS_E_NOT_FOUND);
        frame_str(&f, reason, strlen(reason));
        frame_send(&f);
        return;
    }
    fn(ud, circus_str_make(name, name_len), circus_str_make(args, args_len), (circus_reply *)(uintptr_t)token);
}

void dispatch_call_done(uint64_t id, int32_t status, const char *json, size_t len) {
    circus_result_fn done = NULL;
    void *ud = NULL;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < call_count; i++) {
        if (calls[i].id == id) {
            done = calls[i].done;
            ud = calls[i].ud;
            calls[i] = calls[--call_count];
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    if (done != NULL) done(ud, status, circus_str_make(json, len));
}

void dispatch_fd(uint64_t handle, uint32_t revents) {
    pthread_mutex_lock(&lock);
    reg *r = find(handle);
    circus_fd_fn fn = r != NULL && r->kind == REG_WATCH ? r->fd_fn : NULL;
    void *ud = r != NULL ? r->ud : NULL;
    int fd = r != NULL ? r->fd : -1;
    pthread_mutex_unlock(&lock);
    if (fn != NULL) fn(ud, fd, revents);
}

int fire_timers(void) {
    // Timers due now; one re-armed by its own callback waits for the next pass, so a
    // short repeat cannot starve the queue and the descriptors.
    double now = now_seconds();
    for (;;) {
        // The due timer with the earliest deadline (then the lowest handle).
        reg *due = NULL;
        pthread_mutex_lock(&lock);
        for (size_t i = 0; i < reg_count; i++) {
            reg *r = &regs[i];
            if (r->kind != REG_TIMER || r->deadline > now) continue;
            if (due == NULL || r->deadline < due->deadline || (r->deadline == due->deadline && r->handle < due->handle)) {
                due = r;
            }
        }
        if (due == NULL) {
            double next = -1;
            for (size_t i = 0; i < reg_count; i++) {
                if (regs[i].kind == REG_TIMER && (next < 0 || regs[i].deadline < next)) next = regs[i].deadline;
            }
            pthread_mutex_unlock(&lock);
            if (next < 0) return -1;
            double ms = (next - now_seconds()) * 1000.0 + 1.0;  // round up: early would spin
            if (ms < 0) ms = 0;
            return ms > 2e9 ? 2000000000 : (int)ms;
        }
        uint64_t handle = due->handle;
        circus_timer_fn fn = due->timer_fn;
        void *ud = due->ud;
        // Not due again until re-armed below (so a slow callback cannot loop here).
        due->deadline = 1e300;
        pthread_mutex_unlock(&lock);
        fn(ud, handle);
        pthread_mutex_lock(&lock);
        reg *r = find(handle);
        reg ended = {0};
        int end = 0;
        if (r != NULL) {
            if (r->repeat_ms > 0) {
                r->deadline = now_seconds() + (double)r->repeat_ms / 1000.0;
            } else {
                ended = take(r);
                end = 1;
            }
        }
        pthread_mutex_unlock(&lock);
        if (end && ended.dtor != NULL) ended.dtor(ended.ud);
    }
}

void api_release_all(void) {
    pthread_mutex_lock(&lock);
    accepting = 0;
    reg *all = regs;
    size_t n = reg_count;
    pending_call *pending = calls;
    size_t m = call_count;
    regs = NULL;
    reg_count = reg_cap = 0;
    calls = NULL;
    call_count = call_cap = 0;
    token_count = 0;
    pthread_mutex_unlock(&lock);
    // Registrations end in handle order (the order they were made).
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && all[j - 1].handle > all[j].handle; j--) {
            reg t = all[j];
            all[j] = all[j - 1];
            all[j - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (all[i].kind == REG_WATCH) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, all[i].fd, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        if (all[i].dtor != NULL) all[i].dtor(all[i].ud);
        free(all[i].text);
    }
    free(all);
    char reason[256];
    snprintf(reason, sizeof reason, "{\"status\": \"error\", \"reason\": \"plugin %s is stopping\"}", the_host.name);
    for (size_t i = 0; i < m; i++) pending[i].done(pending[i].ud, CIRCUS_E_CANCELLED, circus_cstr(reason));
    free(pending);
}
