/*
 * cps_statsd.h: the statsd client the shipped plugins share (statsd, resource_watcher,
 * http_observer, redis_observer), sending the metrics Circus's StatsdClient sends:
 * "<prefix>.<bucket>:<value>[|@<sample_rate>]", with the prefix
 * "circus.<application_name>.watcher".
 *
 * Circus sends one UDP datagram per metric. This client gathers the metrics of one batch
 * of work (the events the host queued together, a timer's report) and sends them
 * newline-separated in as few datagrams of at most CPS_STATSD_DATAGRAM bytes as they fit
 * in, which statsd and the servers speaking its protocol (Telegraf, the Datadog agent,
 * StatsD exporters) read as separate metrics: a watcher churning thousands of processes a
 * second then costs one datagram per batch, not two per process. The first metric of a
 * batch posts a flush to the instance's queue, where it runs after the work queued
 * before it; a metric that no longer fits sends the datagram at once.
 *
 * The host name is resolved when the client is set up (an IPv4 address is preferred, as
 * Circus's AF_INET socket only knows those); the socket is non-blocking, so a datagram
 * that cannot leave at once is dropped (and the streak logged once), never waited for.
 * All calls run on the instance's queue.
 */
#ifndef CPS_STATSD_H
#define CPS_STATSD_H

#include "circus_plugin_support.h"

#include <sys/socket.h>

/* The options every Circus statsd plugin takes: host (localhost), port (8125),
 * sample_rate (1.0) and application_name (the plugin's default). */
typedef struct cps_statsd_settings {
    char host[256];
    int64_t port;
    double sample_rate;
    char app[256];
} cps_statsd_settings;

/* Reads the four options from o, with default_app as application_name's default. */
CPS_HIDDEN circus_status cps_statsd_read(const cps_options *o, const char *default_app, cps_statsd_settings *s);

/* The largest datagram the client sends: what fits in one Ethernet frame over IPv4 or
 * IPv6 without fragments, the size statsd's own documentation recommends for a LAN. */
#define CPS_STATSD_DATAGRAM 1432

typedef struct cps_statsd {
    const circus_host_api *api;
    circus_host *host;
    char prefix[320];                 /* "circus.<application_name>.watcher"            */
    char rate_suffix[48];             /* "" or "|@<sample_rate>"                          */
    char target[300];                 /* "host:port", for messages                        */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int fd;                           /* -1 when closed                                   */
    int failing;                      /* the last send failed (log once per streak)       */
    uint64_t dropped;
    char pending[CPS_STATSD_DATAGRAM];/* metrics not sent yet, newline-separated          */
    size_t pending_len;
    size_t pending_count;             /* how many metrics pending holds                   */
    int flush_posted;                 /* a flush is queued on the instance's queue        */
} cps_statsd;

/* Prepares a closed client. */
CPS_HIDDEN void cps_statsd_init(cps_statsd *c, const circus_host_api *api, circus_host *host);
/* Resolves s->host and applies s, opening the socket (again if the address family
 * changed). On failure the client is unchanged and err names the option. */
CPS_HIDDEN circus_status cps_statsd_setup(cps_statsd *c, const cps_statsd_settings *s, circus_error *err);
/* Sends the metrics gathered so far (a no-op when there are none). */
CPS_HIDDEN void cps_statsd_flush(cps_statsd *c);
/* Sends what is pending, then closes the socket (sending is then a no-op until the
 * next setup). */
CPS_HIDDEN void cps_statsd_close(cps_statsd *c);

/* "<prefix>.<bucket>:<value><rate_suffix>". */
CPS_HIDDEN void cps_statsd_send(cps_statsd *c, const char *bucket, size_t bucket_len, const char *value);
/* A printf-formatted bucket with the value "1|c". */
CPS_HIDDEN void cps_statsd_increment(cps_statsd *c, const char *bucket_fmt, ...) CPS_PRINTF(2, 3);
/* "<bucket>:<text>|g", the value already written as Python would print it. */
CPS_HIDDEN void cps_statsd_gauge(cps_statsd *c, const char *bucket, const char *text);
/* "<bucket>:<ms>|ms". */
CPS_HIDDEN void cps_statsd_timing(cps_statsd *c, const char *bucket, int64_t ms);

#endif /* CPS_STATSD_H */
