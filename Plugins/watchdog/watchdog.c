/*
 * watchdog.c: kills a process that stops sending heartbeats, as Circus's WatchDog
 * plugin (circus.plugins.watchdog.WatchDog) does; the watcher then respawns it.
 *
 * Circus's protocol: every monitored process sends, at least every loop_rate seconds,
 * a UDP datagram to ip:port, one line of text that msg_regex decodes; its group named
 * pid says who is alive (default "<pid>;<timestamp>"). Every loop_rate seconds the
 * processes silent for more than loop_rate * max_count seconds get the `kill` command
 * (with watchers_stop_signal and watchers_graceful_timeout when set, so the stop
 * procedure ends with SIGKILL if the signal is ignored) and are forgotten.
 *
 * Options ([plugin:NAME]): loop_rate (float s, 60), watchers_regex (".*", matched at
 * the start of the watcher name), msg_regex ("^(?P<pid>.*);(?P<timestamp>.*)$"),
 * max_count (int, 3), ip (127.0.0.1), port (1664; 0: any free port),
 * watchers_stop_signal (a number or a name: 9, KILL, SIGKILL, SIGRTMIN+1),
 * watchers_graceful_timeout (float s), active (true), and notify_socket (see below).
 *
 * Monitored processes: those of the watchers matching watchers_regex, learnt from
 * `spawn` events (a `reap` forgets one) and, at start, from the `list` command (so the
 * processes already running get a full timeout from the plugin's start).
 *
 * systemd's protocol (notify_socket = /path, or @name for the abstract namespace): an
 * AF_UNIX datagram socket where a process sends "WATCHDOG=1" (one line among others, as
 * sd_notify(3) and `systemd-notify WATCHDOG=1` do; a watcher sets
 * env = NOTIFY_SOCKET=/path). The sender is known from its kernel-checked credentials
 * (SO_PASSCRED), never from the message: a heartbeat from a monitored process, or from
 * any of its descendants (a program a shell wrapper started), keeps that process alive.
 * Other lines (READY=1, STATUS=..., MAINPID=...) are ignored.
 *
 * Where Circus fails and this plugin does not: datagrams that do not match, and pids
 * forgotten while looping over them, do not raise; a port already taken is a start
 * error, not a log line followed by a plugin without its socket.
 *
 * The command <instance>.status (read-only) answers the bound addresses and the
 * monitored processes with how long each has been silent.
 */
#define _GNU_SOURCE 1
#include <circus/plugin.h>

#include "circus_plugin_support.h"
#include "pyregex.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_MSG_REGEX "^(?P<pid>.*);(?P<timestamp>.*)$"

/* How many ancestors of a notify sender are searched for a monitored process. */
#define MAX_ANCESTORS 16

typedef struct settings {
    double loop_rate;
    char watchers_regex[1024];
    char msg_regex[1024];
    int64_t max_count;
    char ip[256];
    int64_t port;
    int64_t stop_signal;          /* 0: the watcher's own                               */
    double graceful_timeout;      /* < 0: the watcher's own                             */
    char notify_socket[108];      /* "" when not used                                    */
    int active;
} settings;

typedef struct monitored {
    int64_t pid;
    char *watcher;
    double last;                  /* monotonic time of the last heartbeat (or spawn)    */
} monitored;

typedef struct watchdog {
    const circus_host_api *api;
    circus_host *host;
    char *instance;
    settings s;
    pyregex watchers;
    pyregex message;
    int udp;                      /* -1 when closed                                      */
    circus_handle udp_watch;
    char udp_address[300];        /* "ip:port" as bound                                  */
    int notify;                   /* -1 when closed or not configured                    */
    circus_handle notify_watch;
    int notify_unlink;            /* a file path this instance created                   */
    monitored *pids;
    size_t n_pids, cap_pids;
} watchdog;

/* ---- monitored processes ------------------------------------------------------------ */

static monitored *find_pid(watchdog *wd, int64_t pid) {
    size_t i;
    for (i = 0; i < wd->n_pids; i++) {
        if (wd->pids[i].pid == pid) {
            return &wd->pids[i];
        }
    }
    return NULL;
}

static void forget_at(watchdog *wd, size_t i) {
    free(wd->pids[i].watcher);
    wd->pids[i] = wd->pids[--wd->n_pids];
}

/* Starts (or restarts) monitoring pid for watcher, as alive now. */
static void monitor(watchdog *wd, int64_t pid, const char *watcher, size_t len) {
    monitored *m = find_pid(wd, pid);
    char *name = cps_strndup(watcher, len);
    if (name == NULL) {
        return;
    }
    if (m == NULL) {
        if (wd->n_pids == wd->cap_pids) {
            size_t cap = wd->cap_pids == 0 ? 16 : wd->cap_pids * 2;
            monitored *grown = (monitored *)realloc(wd->pids, cap * sizeof *grown);
            if (grown == NULL) {
                free(name);
                return;
            }
            wd->pids = grown;
            wd->cap_pids = cap;
        }
        m = &wd->pids[wd->n_pids++];
    } else {
        free(m->watcher);
    }
    m->pid = pid;
    m->watcher = name;
    m->last = cps_monotonic();
}

static int watcher_matches(watchdog *wd, const char *name) {
    return pyregex_match(&wd->watchers, name, 0, NULL, 0);
}

/* ---- events -------------------------------------------------------------------------- */

static void on_event(void *ud, circus_str topic, circus_str json) {
    watchdog *wd = (watchdog *)ud;
    circus_str name, event, v;
    char watcher[256];
    int64_t pid;
    size_t i;
    if (!wd->s.active || !cps_watcher_topic(topic, &name, &event) || name.len >= sizeof watcher) {
        return;
    }
    memcpy(watcher, name.ptr, name.len);
    watcher[name.len] = '\0';
    if (!watcher_matches(wd, watcher) || !cps_json_get(json, "process_pid", &v) || !cps_json_int(v, &pid)) {
        return;
    }
    if (event.len == 5 && memcmp(event.ptr, "spawn", 5) == 0) {
        monitor(wd, pid, watcher, name.len);
        cps_log(wd->api, wd->host, CIRCUS_LOG_INFO, "added new monitored pid for %s:%lld", watcher, (long long)pid);
    } else if (event.len == 4 && memcmp(event.ptr, "reap", 4) == 0) {
        for (i = 0; i < wd->n_pids; i++) {
            if (wd->pids[i].pid == pid) {
                forget_at(wd, i);
                cps_log(wd->api, wd->host, CIRCUS_LOG_INFO, "removed monitored pid for %s:%lld", watcher,
                        (long long)pid);
                break;
            }
        }
    }
}

/* ---- discovery: the processes running when the plugin starts -------------------------- */

typedef struct listing {
    watchdog *wd;
    char watcher[1];              /* allocated to fit; "" for the list of watchers       */
} listing;

static void on_list(void *ud, circus_status st, circus_str json);

static void list(watchdog *wd, const char *watcher) {
    size_t n = strlen(watcher);
    listing *l = (listing *)malloc(sizeof *l + n);
    cps_buf args;
    circus_status st;
    if (l == NULL) {
        return;
    }
    l->wd = wd;
    memcpy(l->watcher, watcher, n + 1);
    cps_buf_init(&args);
    if (n > 0) {
        cps_buf_adds(&args, "{\"name\": ");
        cps_buf_add_json_string(&args, watcher, n);
        cps_buf_adds(&args, "}");
    } else {
        cps_buf_adds(&args, "{}");
    }
    st = args.failed ? CIRCUS_E_INTERNAL : wd->api->call(wd->host, circus_cstr("list"), cps_buf_str(&args), on_list, l);
    cps_buf_free(&args);
    if (st != CIRCUS_OK) {
        free(l);
    }
}

static void on_list(void *ud, circus_status st, circus_str json) {
    listing *l = (listing *)ud;
    watchdog *wd = l->wd;
    circus_str items, item;
    cps_json_iter it;
    if (st == CIRCUS_OK && l->watcher[0] == '\0' && cps_json_get(json, "watchers", &items) &&
        cps_json_array_begin(items, &it)) {
        char name[256];
        while (cps_json_array_next(&it, &item)) {
            if (cps_json_string(item, name, sizeof name) > 0 && watcher_matches(wd, name)) {
                list(wd, name);
            }
        }
    } else if (st == CIRCUS_OK && l->watcher[0] != '\0' && cps_json_get(json, "pids", &items) &&
               cps_json_array_begin(items, &it)) {
        int64_t pid;
        while (cps_json_array_next(&it, &item)) {
            if (cps_json_int(item, &pid) && find_pid(wd, pid) == NULL) {
                monitor(wd, pid, l->watcher, strlen(l->watcher));
                cps_log(wd->api, wd->host, CIRCUS_LOG_INFO, "discovered: %s, pid:%lld", l->watcher, (long long)pid);
            }
        }
    } else if (st != CIRCUS_E_CANCELLED) {
        cps_log(wd->api, wd->host, CIRCUS_LOG_WARNING, "cannot list %s%s: status %d",
                l->watcher[0] != '\0' ? "the processes of " : "the watchers", l->watcher, (int)st);
    }
    free(l);
}

/* ---- heartbeats ---------------------------------------------------------------------- */

static void heartbeat(watchdog *wd, int64_t pid, const char *origin) {
    monitored *m = find_pid(wd, pid);
    if (m == NULL) {
        cps_log(wd->api, wd->host, CIRCUS_LOG_WARNING, "received watchdog for a non monitored process:%lld (%s)",
                (long long)pid, origin);
        return;
    }
    m->last = cps_monotonic();
}

/* One Circus heartbeat datagram. */
static void udp_message(watchdog *wd, char *text, size_t len) {
    char pid_text[64];
    int64_t pid;
    if (memchr(text, '\0', len) != NULL) {
        return;
    }
    text[len] = '\0';
    /* Python's $ also matches before a final newline: a "pid;time\n" line is fine. */
    if (len > 0 && text[len - 1] == '\n') {
        text[--len] = '\0';
    }
    if (!pyregex_match(&wd->message, text, wd->message.named_pid, pid_text, sizeof pid_text)) {
        cps_log(wd->api, wd->host, CIRCUS_LOG_DEBUG, "watchdog message does not match msg_regex: %s", text);
        return;
    }
    if (!cps_parse_int(pid_text, &pid)) {
        cps_log(wd->api, wd->host, CIRCUS_LOG_DEBUG, "watchdog message without a pid: %s", text);
        return;
    }
    heartbeat(wd, pid, "udp");
}

static void on_udp(void *ud, int fd, uint32_t revents) {
    watchdog *wd = (watchdog *)ud;
    char buf[1025];
    int i;
    (void)revents;
    /* A bounded batch: level-triggered readiness brings us back for the rest. */
    for (i = 0; i < 64; i++) {
        ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        if (n < 0) {
            break;
        }
        udp_message(wd, buf, (size_t)n);
    }
}

/* The parent of pid, from /proc/<pid>/stat; 0 when unknown. */
static int64_t parent_of(int64_t pid) {
    char path[64];
    char stat[512];
    const char *close_paren;
    ssize_t n;
    int fd;
    long long ppid;
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    stat[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold anything, so look for the last ')'. */
    close_paren = strrchr(stat, ')');
    if (close_paren == NULL || sscanf(close_paren + 1, " %*c %lld", &ppid) != 1) {
        return 0;
    }
    return (int64_t)ppid;
}

static int has_watchdog_line(const char *text, size_t len) {
    size_t start = 0;
    while (start < len) {
        size_t end = start;
        while (end < len && text[end] != '\n') {
            end++;
        }
        if (end - start == 10 && memcmp(text + start, "WATCHDOG=1", 10) == 0) {
            return 1;
        }
        start = end + 1;
    }
    return 0;
}

static void on_notify(void *ud, int fd, uint32_t revents) {
    watchdog *wd = (watchdog *)ud;
    int i;
    (void)revents;
    for (i = 0; i < 64; i++) {
        char buf[4096];
        union {
            struct cmsghdr align;
            char space[CMSG_SPACE(sizeof(struct ucred))];
        } control;
        struct iovec iov;
        struct msghdr msg;
        struct cmsghdr *c;
        struct ucred cred;
        int have_cred = 0;
        int64_t pid;
        int depth;
        ssize_t n;
        iov.iov_base = buf;
        iov.iov_len = sizeof buf;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.space;
        msg.msg_controllen = sizeof control.space;
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            break;
        }
        for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                c->cmsg_len >= CMSG_LEN(sizeof cred)) {
                memcpy(&cred, CMSG_DATA(c), sizeof cred);
                have_cred = 1;
            }
        }
        if (!have_cred || !has_watchdog_line(buf, (size_t)n)) {
            continue;
        }
        /* The sender, or the nearest monitored ancestor (a shell wrapper's program). */
        pid = cred.pid;
        for (depth = 0; pid > 1 && depth < MAX_ANCESTORS && find_pid(wd, pid) == NULL; depth++) {
            pid = parent_of(pid);
        }
        heartbeat(wd, pid > 1 && find_pid(wd, pid) != NULL ? pid : (int64_t)cred.pid, "notify socket");
    }
}

/* ---- the loop --------------------------------------------------------------------------- */

static void on_kill_done(void *ud, circus_status st, circus_str json) {
    watchdog *wd = (watchdog *)ud;
    char text[256];
    if (st == CIRCUS_OK || st == CIRCUS_E_CANCELLED) {
        return;
    }
    cps_reply_reason(json, text, sizeof text);
    cps_log(wd->api, wd->host, CIRCUS_LOG_ERROR, "killing an unresponsive process failed: %s", text);
}

static void kill_silent(watchdog *wd, const monitored *m) {
    cps_buf args;
    char number[48];
    cps_log(wd->api, wd->host, CIRCUS_LOG_INFO, "watcher:%s, pid:%lld is not responding. Kill it !", m->watcher,
            (long long)m->pid);
    cps_buf_init(&args);
    cps_buf_adds(&args, "{\"name\": ");
    cps_buf_add_json_string(&args, m->watcher, strlen(m->watcher));
    cps_buf_addf(&args, ", \"pid\": %lld", (long long)m->pid);
    if (wd->s.stop_signal > 0) {
        cps_buf_addf(&args, ", \"signum\": %lld", (long long)wd->s.stop_signal);
    }
    if (wd->s.graceful_timeout >= 0) {
        cps_format_py_float(wd->s.graceful_timeout, number, sizeof number);
        cps_buf_addf(&args, ", \"graceful_timeout\": %s", number);
    }
    cps_buf_adds(&args, "}");
    if (!args.failed) {
        circus_status st = wd->api->call(wd->host, circus_cstr("kill"), cps_buf_str(&args), on_kill_done, wd);
        if (st != CIRCUS_OK && st != CIRCUS_E_CANCELLED) {
            cps_log(wd->api, wd->host, CIRCUS_LOG_ERROR, "cannot ask circusd to kill %lld (status %d)",
                    (long long)m->pid, (int)st);
        }
    }
    cps_buf_free(&args);
}

static void on_loop(void *ud, circus_handle timer) {
    watchdog *wd = (watchdog *)ud;
    double too_old = cps_monotonic() - wd->s.loop_rate * (double)wd->s.max_count;
    size_t i = 0;
    (void)timer;
    if (!wd->s.active) {
        return;
    }
    while (i < wd->n_pids) {
        if (wd->pids[i].last < too_old) {
            /* Killed and forgotten; the watcher respawns it and the spawn brings it back. */
            kill_silent(wd, &wd->pids[i]);
            forget_at(wd, i);
        } else {
            i++;
        }
    }
}

/* ---- the status command ----------------------------------------------------------------- */

static void on_status(void *ud, circus_str name, circus_str args, circus_reply *reply) {
    watchdog *wd = (watchdog *)ud;
    cps_buf out;
    double now = cps_monotonic();
    char number[48];
    size_t i;
    (void)name;
    (void)args;
    cps_buf_init(&out);
    cps_buf_adds(&out, "{\"udp\": ");
    cps_buf_add_json_string(&out, wd->udp_address, strlen(wd->udp_address));
    cps_buf_adds(&out, ", \"notify_socket\": ");
    if (wd->notify >= 0) {
        cps_buf_add_json_string(&out, wd->s.notify_socket, strlen(wd->s.notify_socket));
    } else {
        cps_buf_adds(&out, "null");
    }
    cps_buf_adds(&out, ", \"pids\": {");
    for (i = 0; i < wd->n_pids; i++) {
        cps_format_py_float(now - wd->pids[i].last, number, sizeof number);
        cps_buf_addf(&out, "%s\"%lld\": {\"watcher\": ", i > 0 ? ", " : "", (long long)wd->pids[i].pid);
        cps_buf_add_json_string(&out, wd->pids[i].watcher, strlen(wd->pids[i].watcher));
        cps_buf_addf(&out, ", \"silent\": %s}", number);
    }
    cps_buf_adds(&out, "}}");
    if (out.failed) {
        wd->api->reply(reply, CIRCUS_E_INTERNAL, circus_cstr("{\"reason\": \"out of memory\"}"));
    } else {
        wd->api->reply(reply, CIRCUS_OK, cps_buf_str(&out));
    }
    cps_buf_free(&out);
}

/* ---- configuration ---------------------------------------------------------------------- */

/* Circus's to_signum: "9", "KILL", "SIGKILL", "SIGRTMIN+1". Returns 0 if unknown. */
static int64_t to_signum(const char *text) {
    static const struct {
        const char *name;
        int number;
    } names[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT},   {"ILL", SIGILL},   {"TRAP", SIGTRAP},
        {"ABRT", SIGABRT}, {"IOT", SIGABRT},    {"BUS", SIGBUS},     {"FPE", SIGFPE},   {"KILL", SIGKILL},
        {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},   {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
        {"TERM", SIGTERM}, {"CHLD", SIGCHLD},   {"CONT", SIGCONT},   {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
        {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},   {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
        {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},  {"POLL", SIGIO},
        {"SYS", SIGSYS},
#ifdef SIGPWR
        {"PWR", SIGPWR},
#endif
#ifdef SIGSTKFLT
        {"STKFLT", SIGSTKFLT},
#endif
    };
    char name[32];
    const char *plus;
    int64_t number;
    size_t i, len;
    int64_t offset = 0;
    if (cps_parse_int(text, &number)) {
        return number;
    }
    while (isspace((unsigned char)*text)) {
        text++;
    }
    plus = strchr(text, '+');
    len = plus != NULL ? (size_t)(plus - text) : strlen(text);
    if (plus != NULL && (!cps_parse_int(plus + 1, &offset) || offset < 0 || plus[1] == '+' || plus[1] == '-')) {
        return 0;
    }
    if (len >= sizeof name || len == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        name[i] = (char)toupper((unsigned char)text[i]);
    }
    name[len] = '\0';
    text = strncmp(name, "SIG", 3) == 0 ? name + 3 : name;
    if (strcmp(text, "RTMIN") == 0) {
        return SIGRTMIN + offset;
    }
    if (strcmp(text, "RTMAX") == 0) {
        return SIGRTMAX + offset;
    }
    for (i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcmp(text, names[i].name) == 0) {
            return names[i].number + offset;
        }
    }
    return 0;
}

static circus_status read_settings(const circus_host_api *api, circus_str config, circus_error *err, settings *s) {
    cps_options o;
    circus_status st;
    char text[128];
    int found;
    o.api = api;
    o.err = err;
    o.config = config;
    memset(s, 0, sizeof *s);
    s->loop_rate = 60;
    strcpy(s->watchers_regex, ".*");
    strcpy(s->msg_regex, DEFAULT_MSG_REGEX);
    s->max_count = 3;
    strcpy(s->ip, "127.0.0.1");
    s->port = 1664;
    s->graceful_timeout = -1;
    s->active = 1;
    if ((st = cps_opt_float(&o, "loop_rate", 0.001, 1e9, &s->loop_rate)) != CIRCUS_OK) return st;
    if ((st = cps_opt_string(&o, "watchers_regex", s->watchers_regex, sizeof s->watchers_regex)) != CIRCUS_OK) return st;
    if ((st = cps_opt_string(&o, "msg_regex", s->msg_regex, sizeof s->msg_regex)) != CIRCUS_OK) return st;
    if ((st = cps_opt_int(&o, "max_count", 1, INT32_MAX, &s->max_count)) != CIRCUS_OK) return st;
    if ((st = cps_opt_string(&o, "ip", s->ip, sizeof s->ip)) != CIRCUS_OK) return st;
    if ((st = cps_opt_int(&o, "port", 0, 65535, &s->port)) != CIRCUS_OK) return st;
    if ((st = cps_opt_bool(&o, "active", &s->active)) != CIRCUS_OK) return st;
    if ((st = cps_opt_string(&o, "notify_socket", s->notify_socket, sizeof s->notify_socket)) != CIRCUS_OK) return st;
    found = cps_opt_text(&o, "watchers_stop_signal", text, sizeof text);
    if (found < 0) {
        return CIRCUS_E_INVALID;
    }
    if (found > 0 && text[0] != '\0') {
        s->stop_signal = to_signum(text);
        if (s->stop_signal <= 0 || s->stop_signal > SIGRTMAX) {
            return cps_opt_refuse(&o, "watchers_stop_signal", text, "not a signal (a number, or a name like TERM)");
        }
    }
    found = cps_opt_text(&o, "watchers_graceful_timeout", text, sizeof text);
    if (found < 0) {
        return CIRCUS_E_INVALID;
    }
    if (found > 0 && text[0] != '\0' &&
        (st = cps_opt_float(&o, "watchers_graceful_timeout", 0, 1e9, &s->graceful_timeout)) != CIRCUS_OK) {
        return st;
    }
    return CIRCUS_OK;
}

static circus_status compile_regexes(const circus_host_api *api, circus_error *err, const settings *s,
                                     pyregex *watchers, pyregex *message) {
    char why[256];
    if (!pyregex_compile(watchers, s->watchers_regex, why, sizeof why)) {
        cps_error(api, err, CIRCUS_E_INVALID, "option watchers_regex = \"%s\": %s", s->watchers_regex, why);
        return CIRCUS_E_INVALID;
    }
    if (!pyregex_compile(message, s->msg_regex, why, sizeof why)) {
        pyregex_free(watchers);
        cps_error(api, err, CIRCUS_E_INVALID, "option msg_regex = \"%s\": %s", s->msg_regex, why);
        return CIRCUS_E_INVALID;
    }
    if (message->named_pid == 0) {
        pyregex_free(watchers);
        pyregex_free(message);
        cps_error(api, err, CIRCUS_E_INVALID, "option msg_regex = \"%s\": it needs a group named pid: (?P<pid>...)",
                  s->msg_regex);
        return CIRCUS_E_INVALID;
    }
    return CIRCUS_OK;
}

/* ---- sockets ------------------------------------------------------------------------------- */

static circus_status bind_udp(watchdog *wd, circus_error *err) {
    struct addrinfo hints;
    struct addrinfo *found = NULL;
    struct addrinfo *ai;
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    char port[16];
    char host[INET6_ADDRSTRLEN];
    int rc;
    int fd = -1;
    int saved = 0;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    snprintf(port, sizeof port, "%lld", (long long)wd->s.port);
    rc = getaddrinfo(wd->s.ip, port, &hints, &found);
    if (rc != 0) {
        cps_error(wd->api, err, CIRCUS_E_INVALID, "option ip = \"%s\": cannot resolve it: %s", wd->s.ip,
                  gai_strerror(rc));
        return CIRCUS_E_INVALID;
    }
    for (ai = found; ai != NULL && fd < 0; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) {
            continue;
        }
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    if (fd < 0) {
        cps_error(wd->api, err, CIRCUS_E_INVALID, "options ip, port: cannot listen for heartbeats on %s:%lld: %s",
                  wd->s.ip, (long long)wd->s.port, strerror(saved != 0 ? saved : EAFNOSUPPORT));
        return CIRCUS_E_INVALID;
    }
    if (getsockname(fd, (struct sockaddr *)&bound, &len) == 0) {
        if (bound.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&bound;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            snprintf(wd->udp_address, sizeof wd->udp_address, "%s:%u", host, (unsigned)ntohs(in->sin_port));
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bound;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            snprintf(wd->udp_address, sizeof wd->udp_address, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
        }
    }
    wd->udp = fd;
    return CIRCUS_OK;
}

static circus_status bind_notify(watchdog *wd, circus_error *err) {
    struct sockaddr_un addr;
    const char *path = wd->s.notify_socket;
    size_t len = strlen(path);
    socklen_t addr_len;
    int one = 1;
    int fd;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (len >= sizeof addr.sun_path) {
        cps_error(wd->api, err, CIRCUS_E_INVALID, "option notify_socket = \"%s\": longer than %zu bytes", path,
                  sizeof addr.sun_path - 1);
        return CIRCUS_E_INVALID;
    }
    if (path[0] == '@') {
        /* The abstract namespace: no file, as systemd spells it. */
        memcpy(addr.sun_path + 1, path + 1, len - 1);
        addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        struct stat st;
        if (path[0] != '/') {
            cps_error(wd->api, err, CIRCUS_E_INVALID,
                      "option notify_socket = \"%s\": use an absolute path, or @name for an abstract socket", path);
            return CIRCUS_E_INVALID;
        }
        if (lstat(path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                cps_error(wd->api, err, CIRCUS_E_INVALID,
                          "option notify_socket = \"%s\": the path exists and is not a socket", path);
                return CIRCUS_E_INVALID;
            }
            unlink(path); /* a socket left over by an earlier run */
        }
        memcpy(addr.sun_path, path, len);
        addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&addr, addr_len) != 0) {
        int saved = errno;
        if (fd >= 0) {
            close(fd);
        }
        cps_error(wd->api, err, CIRCUS_E_INVALID, "option notify_socket = \"%s\": cannot listen there: %s", path,
                  strerror(saved));
        return CIRCUS_E_INVALID;
    }
    wd->notify = fd;
    wd->notify_unlink = path[0] == '/';
    return CIRCUS_OK;
}

static void close_sockets(watchdog *wd) {
    /* The watches end first (we are on the instance's queue), then the descriptors. */
    if (wd->udp_watch != 0) {
        wd->api->cancel(wd->host, wd->udp_watch);
        wd->udp_watch = 0;
    }
    if (wd->notify_watch != 0) {
        wd->api->cancel(wd->host, wd->notify_watch);
        wd->notify_watch = 0;
    }
    if (wd->udp >= 0) {
        close(wd->udp);
        wd->udp = -1;
    }
    if (wd->notify >= 0) {
        close(wd->notify);
        wd->notify = -1;
        if (wd->notify_unlink) {
            unlink(wd->s.notify_socket);
            wd->notify_unlink = 0;
        }
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static circus_status watchdog_create(const circus_create_params *p, void **out, circus_error *err) {
    watchdog *wd;
    settings s;
    circus_status st;
    if ((st = read_settings(p->api, p->config_json, err, &s)) != CIRCUS_OK) {
        return st;
    }
    wd = (watchdog *)calloc(1, sizeof *wd);
    if (wd == NULL || (wd->instance = cps_strndup(p->instance_name.ptr, p->instance_name.len)) == NULL) {
        free(wd);
        p->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("out of memory"));
        return CIRCUS_E_INTERNAL;
    }
    if ((st = compile_regexes(p->api, err, &s, &wd->watchers, &wd->message)) != CIRCUS_OK) {
        free(wd->instance);
        free(wd);
        return st;
    }
    wd->api = p->api;
    wd->host = p->host;
    wd->s = s;
    wd->udp = -1;
    wd->notify = -1;
    *out = wd;
    return CIRCUS_OK;
}

static circus_status watchdog_start(void *instance, circus_error *err) {
    watchdog *wd = (watchdog *)instance;
    const circus_host_api *api = wd->api;
    char command[200];
    uint64_t every = cps_ms(wd->s.loop_rate);
    circus_status st;
    if (!wd->s.active) {
        cps_log(api, wd->host, CIRCUS_LOG_INFO, "inactive (active = false): no heartbeat is watched");
        return CIRCUS_OK;
    }
    if ((st = bind_udp(wd, err)) != CIRCUS_OK) {
        return st;
    }
    if (wd->s.notify_socket[0] != '\0' && (st = bind_notify(wd, err)) != CIRCUS_OK) {
        close_sockets(wd);
        return st;
    }
    snprintf(command, sizeof command, "%s.status", wd->instance);
    st = api->watch_fd(wd->host, wd->udp, CIRCUS_FD_READABLE, on_udp, wd, NULL, &wd->udp_watch);
    if (st == CIRCUS_OK && wd->notify >= 0) {
        st = api->watch_fd(wd->host, wd->notify, CIRCUS_FD_READABLE, on_notify, wd, NULL, &wd->notify_watch);
    }
    if (st == CIRCUS_OK) {
        st = api->subscribe(wd->host, circus_cstr("watcher."), on_event, wd, NULL, NULL);
    }
    if (st == CIRCUS_OK) {
        st = api->add_timer(wd->host, every, every, on_loop, wd, NULL, NULL);
    }
    if (st == CIRCUS_OK) {
        st = api->register_command(
            wd->host, circus_cstr(command),
            circus_cstr("{\"help\": \"the heartbeat addresses and the monitored processes, with how long each has "
                        "been silent (seconds)\", \"args\": {}}"),
            CIRCUS_COMMAND_F_READ_ONLY, on_status, wd, NULL, NULL);
    }
    if (st != CIRCUS_OK) {
        close_sockets(wd);
        cps_error(api, err, st, "cannot register with the host (status %d)", (int)st);
        return st;
    }
    cps_log(api, wd->host, CIRCUS_LOG_INFO, "Watchdog listening UDP on %s%s%s", wd->udp_address,
            wd->notify >= 0 ? " and notify socket " : "", wd->notify >= 0 ? wd->s.notify_socket : "");
    list(wd, "");
    return CIRCUS_OK;
}

static void watchdog_stop(void *instance) {
    close_sockets((watchdog *)instance);
}

static void watchdog_destroy(void *instance) {
    watchdog *wd = (watchdog *)instance;
    size_t i;
    close_sockets(wd);
    for (i = 0; i < wd->n_pids; i++) {
        free(wd->pids[i].watcher);
    }
    free(wd->pids);
    pyregex_free(&wd->watchers);
    pyregex_free(&wd->message);
    free(wd->instance);
    free(wd);
}

static const circus_plugin_vtable watchdog_vtable = {
    sizeof(circus_plugin_vtable), 0,
    watchdog_create,
    watchdog_start,
    watchdog_stop,
    watchdog_destroy,
    NULL, /* reconfigure: a new config recreates the instance (new sockets, new timer) */
};

static const circus_plugin_descriptor watchdog_descriptor = {
    CIRCUS_PLUGIN_MAGIC,
    sizeof(circus_plugin_descriptor),
    CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "watchdog",
    "1.0.0",
    "kills a process that stops sending heartbeats, over UDP (Circus's WatchDog) or a systemd notify socket",
    CIRCUS_PLUGIN_F_MULTI_INSTANCE,
    &watchdog_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor) {
    (void)host_abi_minor; /* nothing newer than 1.0 is used */
    return host_abi_major == CIRCUS_ABI_MAJOR ? &watchdog_descriptor : NULL;
}
