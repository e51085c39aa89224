// Who owns the other end of a loopback TCP connection: the question identd answers.
//
// The daemon knows its own socket (the descriptor libzmq accepted). The peer's socket, if
// it lives on this host, is in the kernel's TCP table with the addresses swapped: its
// local address is our peer address and its remote address is our local one. Its entry
// carries the uid that created it. NETLINK_SOCK_DIAG answers for exactly that 4-tuple in
// one round trip; /proc/net/tcp{,6} (the whole table as text) is the fallback.

#define _GNU_SOURCE
#include "circus_sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// Both ends of one connection: `struct circus_tcp_tuple` (see the header).
typedef struct circus_tcp_tuple tuple_t;

static int is_v4_mapped(const struct in6_addr *a) {
    return a->s6_addr32[0] == 0 && a->s6_addr32[1] == 0 && a->s6_addr32[2] == htonl(0xffff);
}

static int fill(const struct sockaddr_storage *ss, int family, uint32_t addr[4], uint16_t *port) {
    memset(addr, 0, 16);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        addr[0] = in->sin_addr.s_addr;
        *port = ntohs(in->sin_port);
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        if (family == AF_INET) {
            addr[0] = in6->sin6_addr.s6_addr32[3];
        } else {
            memcpy(addr, &in6->sin6_addr, 16);
        }
        *port = ntohs(in6->sin6_port);
        return 0;
    }
    return -1;
}

static int read_tuple(int fd, tuple_t *t) {
    struct sockaddr_storage local, peer;
    socklen_t llen = sizeof local, plen = sizeof peer;
    if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0) return -errno;
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) != 0) return -errno;
    if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6) return -EAFNOSUPPORT;
    t->family = peer.ss_family;
    if (peer.ss_family == AF_INET6 && is_v4_mapped(&((struct sockaddr_in6 *)&peer)->sin6_addr)) t->family = AF_INET;
    if (fill(&peer, t->family, t->peer_addr, &t->peer_port) != 0) return -EAFNOSUPPORT;
    if (fill(&local, t->family, t->local_addr, &t->local_port) != 0) return -EAFNOSUPPORT;
    return 0;
}

int circus_tcp_owner_netlink(const tuple_t *t, uint32_t *uid) {
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0) return -errno;
    struct {
        struct nlmsghdr header;
        struct inet_diag_req_v2 request;
    } message;
    memset(&message, 0, sizeof message);
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;  // one socket, not a dump
    message.request.sdiag_family = (uint8_t)t->family;
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = ~0u;
    // The peer's socket: its source is our peer, its destination is us.
    message.request.id.idiag_sport = htons(t->peer_port);
    message.request.id.idiag_dport = htons(t->local_port);
    memcpy(message.request.id.idiag_src, t->peer_addr, 16);
    memcpy(message.request.id.idiag_dst, t->local_addr, 16);
    message.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    message.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(nl, &message, sizeof message, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int error = errno;
        close(nl);
        return -error;
    }
    // The kernel queues the answer before sendto returns: never wait for it.
    long buffer[1024];
    ssize_t n;
    do {
        n = recv(nl, buffer, sizeof buffer, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    int error = n < 0 ? errno : 0;
    close(nl);
    if (n < 0) return -error;
    struct nlmsghdr *reply = (struct nlmsghdr *)buffer;
    if (!NLMSG_OK(reply, (unsigned)n)) return -EPROTO;
    if (reply->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *failure = NLMSG_DATA(reply);
        return failure->error == -ENOENT ? 1 : (failure->error < 0 ? failure->error : -EPROTO);
    }
    if (reply->nlmsg_type != SOCK_DIAG_BY_FAMILY) return -EPROTO;
    struct inet_diag_msg *entry = NLMSG_DATA(reply);
    // A socket no process holds any more (its owner closed it: a FIN_WAIT2 or TIME_WAIT
    // remnant, which the kernel shows with uid 0) names nobody.
    if (entry->idiag_inode == 0) return 2;
    *uid = entry->idiag_uid;
    return 0;
}

// /proc/net/tcp prints each address as the raw 32-bit words of the kernel's network-order
// value with %08X, and ports in host order with %04X.
static void format_endpoint(char *out, size_t size, int family, const uint32_t addr[4], uint16_t port) {
    if (family == AF_INET) {
        snprintf(out, size, "%08X:%04X", addr[0], port);
    } else {
        snprintf(out, size, "%08X%08X%08X%08X:%04X", addr[0], addr[1], addr[2], addr[3], port);
    }
}

int circus_tcp_owner_proc(const tuple_t *t, uint32_t *uid) {
    char want_local[64], want_remote[64];
    format_endpoint(want_local, sizeof want_local, t->family, t->peer_addr, t->peer_port);
    format_endpoint(want_remote, sizeof want_remote, t->family, t->local_addr, t->local_port);
    FILE *table = fopen(t->family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6", "re");
    if (!table) return -errno;
    char line[512];
    int result = 1;
    if (!fgets(line, sizeof line, table)) result = -EPROTO;  // the header
    while (result == 1 && fgets(line, sizeof line, table)) {
        char local[64], remote[64];
        unsigned state, found_uid;
        unsigned long inode;
        if (sscanf(line, " %*s %63s %63s %x %*s %*s %*s %u %*s %lu", local, remote, &state, &found_uid, &inode) != 5) {
            continue;
        }
        if (strcmp(local, want_local) == 0 && strcmp(remote, want_remote) == 0) {
            *uid = found_uid;
            result = inode == 0 ? 2 : 0;  // as for netlink: a closed socket names nobody
        }
    }
    fclose(table);
    return result;
}

int circus_tcp_tuple_of(int fd, tuple_t *t, int *is_loopback, char *peer_text, size_t peer_size) {
    int rc = read_tuple(fd, t);
    if (rc != 0) return rc;
    char address[INET6_ADDRSTRLEN] = "?";
    inet_ntop(t->family, t->peer_addr, address, sizeof address);
    snprintf(peer_text, peer_size, t->family == AF_INET ? "%s:%u" : "[%s]:%u", address, t->peer_port);
    if (t->family == AF_INET) {
        *is_loopback = (ntohl(t->peer_addr[0]) >> 24) == 127;
    } else {
        static const uint32_t loopback6[4] = {0, 0, 0, 0};
        *is_loopback = memcmp(t->peer_addr, loopback6, 12) == 0 && t->peer_addr[3] == htonl(1);
    }
    return 0;
}
