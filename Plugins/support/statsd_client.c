/*
 * statsd_client.c: the statsd client of the shipped plugins (see cps_statsd.h).
 */
#define _GNU_SOURCE 1
#include "cps_statsd.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

circus_status cps_statsd_read(const cps_options *o, const char *default_app, cps_statsd_settings *s) {
    circus_status st;
    strcpy(s->host, "localhost");
    s->port = 8125;
    s->sample_rate = 1.0;
    snprintf(s->app, sizeof s->app, "%s", default_app);
    if ((st = cps_opt_string(o, "host", s->host, sizeof s->host)) != CIRCUS_OK) return st;
    if ((st = cps_opt_int(o, "port", 1, 65535, &s->port)) != CIRCUS_OK) return st;
    if ((st = cps_opt_float(o, "sample_rate", 0, 1e9, &s->sample_rate)) != CIRCUS_OK) return st;
    if ((st = cps_opt_string(o, "application_name", s->app, sizeof s->app)) != CIRCUS_OK) return st;
    if (s->host[0] == '\0') {
        return cps_opt_refuse(o, "host", s->host, "empty");
    }
    return CIRCUS_OK;
}

void cps_statsd_init(cps_statsd *c, const circus_host_api *api, circus_host *host) {
    memset(c, 0, sizeof *c);
    c->api = api;
    c->host = host;
    c->fd = -1;
}

/* Resolves host:port, preferring IPv4. */
static circus_status resolve(cps_statsd *c, circus_error *err, const cps_statsd_settings *s,
                             struct sockaddr_storage *addr, socklen_t *len) {
    struct addrinfo hints;
    struct addrinfo *found = NULL;
    struct addrinfo *ai;
    struct addrinfo *pick = NULL;
    char port[16];
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof port, "%lld", (long long)s->port);
    rc = getaddrinfo(s->host, port, &hints, &found);
    if (rc != 0) {
        cps_error(c->api, err, CIRCUS_E_INVALID, "option host = \"%s\": cannot resolve it: %s", s->host,
                  gai_strerror(rc));
        return CIRCUS_E_INVALID;
    }
    for (ai = found; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (pick == NULL && ai->ai_family == AF_INET6) {
            pick = ai;
        }
    }
    if (pick == NULL || pick->ai_addrlen > sizeof *addr) {
        freeaddrinfo(found);
        cps_error(c->api, err, CIRCUS_E_INVALID, "option host = \"%s\": no IPv4 or IPv6 address", s->host);
        return CIRCUS_E_INVALID;
    }
    memcpy(addr, pick->ai_addr, pick->ai_addrlen);
    *len = (socklen_t)pick->ai_addrlen;
    freeaddrinfo(found);
    return CIRCUS_OK;
}

circus_status cps_statsd_setup(cps_statsd *c, const cps_statsd_settings *s, circus_error *err) {
    struct sockaddr_storage addr;
    socklen_t len = 0;
    circus_status st = resolve(c, err, s, &addr, &len);
    if (st != CIRCUS_OK) {
        return st;
    }
    /* What was gathered under the old settings goes where they said. */
    cps_statsd_flush(c);
    if (c->fd < 0 || addr.ss_family != c->addr.ss_family) {
        int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            cps_error(c->api, err, CIRCUS_E_INTERNAL, "cannot open a UDP socket for statsd at %s:%lld: %s", s->host,
                      (long long)s->port, strerror(errno));
            return CIRCUS_E_INTERNAL;
        }
        cps_statsd_close(c);
        c->fd = fd;
    }
    snprintf(c->prefix, sizeof c->prefix, "circus.%s.watcher", s->app);
    c->rate_suffix[0] = '\0';
    if (s->sample_rate != 1.0) {
        char rate[40];
        cps_format_py_float(s->sample_rate, rate, sizeof rate);
        snprintf(c->rate_suffix, sizeof c->rate_suffix, "|@%s", rate);
    }
    c->addr = addr;
    c->addr_len = len;
    snprintf(c->target, sizeof c->target, "%s:%lld", s->host, (long long)s->port);
    return CIRCUS_OK;
}

void cps_statsd_close(cps_statsd *c) {
    cps_statsd_flush(c);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* Sends one datagram; a failure is counted and its streak logged once. */
static void send_datagram(cps_statsd *c, const char *data, size_t len, size_t metrics) {
    ssize_t sent = sendto(c->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&c->addr,
                          c->addr_len);
    if (sent < 0) {
        c->dropped += metrics;
        if (!c->failing) {
            c->failing = 1;
            cps_log(c->api, c->host, CIRCUS_LOG_WARNING, "cannot send to statsd at %s: %s (metrics are dropped)",
                    c->target, strerror(errno));
        }
    } else if (c->failing) {
        c->failing = 0;
        cps_log(c->api, c->host, CIRCUS_LOG_INFO, "sending to statsd at %s again (%llu metrics were dropped)",
                c->target, (unsigned long long)c->dropped);
        c->dropped = 0;
    }
}

void cps_statsd_flush(cps_statsd *c) {
    if (c->pending_len > 0 && c->fd >= 0) {
        send_datagram(c, c->pending, c->pending_len, c->pending_count);
    }
    c->pending_len = 0;
    c->pending_count = 0;
}

/* The flush posted by the first metric of a batch. Runs after the work queued before it;
 * never after the instance is stopped (the host drops queued tasks then, and close()
 * has sent what was pending). */
static void posted_flush(void *ud) {
    cps_statsd *c = (cps_statsd *)ud;
    c->flush_posted = 0;
    cps_statsd_flush(c);
}

void cps_statsd_send(cps_statsd *c, const char *bucket, size_t bucket_len, const char *value) {
    char msg[1024]; /* < CPS_STATSD_DATAGRAM */
    int n = snprintf(msg, sizeof msg, "%s.%.*s:%s%s", c->prefix, (int)bucket_len, bucket, value, c->rate_suffix);
    if (n < 0 || (size_t)n >= sizeof msg || c->fd < 0) {
        return;
    }
    /* One that does not fit beside what is pending sends that first (msg is smaller than
     * a datagram, so it always fits alone). */
    if (c->pending_len > 0 && c->pending_len + 1 + (size_t)n > sizeof c->pending) {
        cps_statsd_flush(c);
    }
    if (c->pending_len > 0) {
        c->pending[c->pending_len++] = '\n';
    }
    memcpy(c->pending + c->pending_len, msg, (size_t)n);
    c->pending_len += (size_t)n;
    c->pending_count++;
    if (!c->flush_posted) {
        if (c->api->post(c->host, posted_flush, c, NULL) == CIRCUS_OK) {
            c->flush_posted = 1;
        } else {
            /* A full queue (or one being torn down): no batch to wait for. */
            cps_statsd_flush(c);
        }
    }
}

void cps_statsd_increment(cps_statsd *c, const char *bucket_fmt, ...) {
    char bucket[512];
    va_list ap;
    int n;
    va_start(ap, bucket_fmt);
    n = vsnprintf(bucket, sizeof bucket, bucket_fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof bucket) {
        cps_statsd_send(c, bucket, (size_t)n, "1|c");
    }
}

void cps_statsd_gauge(cps_statsd *c, const char *bucket, const char *text) {
    char value[80];
    int n = snprintf(value, sizeof value, "%s|g", text);
    if (n > 0 && (size_t)n < sizeof value) {
        cps_statsd_send(c, bucket, strlen(bucket), value);
    }
}

void cps_statsd_timing(cps_statsd *c, const char *bucket, int64_t ms) {
    char value[40];
    snprintf(value, sizeof value, "%lld|ms", (long long)ms);
    cps_statsd_send(c, bucket, strlen(bucket), value);
}
