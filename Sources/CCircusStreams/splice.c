#define _GNU_SOURCE
#include "circus_streams.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

ssize_t circus_splice_to_file(int pipe_fd, int file_fd, int64_t *offset, size_t length) {
    off64_t off = (off64_t)*offset;
    ssize_t n;
    do {
        n = splice(pipe_fd, NULL, file_fd, &off, length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    *offset = (int64_t)off;
    return n;
}

int circus_output_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0) return -errno;
    // 256 KiB instead of 64 KiB: a busy writer fills the pipe 4x later, so the stream's
    // writer can gather more per wakeup without holding the program up. Pages are taken
    // only as data waits in the pipe, but the kernel counts a pipe's capacity against its
    // user's pipe-user-pages-soft, and once a user is past it every new pipe of that user
    // gets a single page: only root, which that limit does not apply to, enlarges them.
    if (geteuid() == 0) (void)fcntl(fds[0], F_SETPIPE_SZ, 256 * 1024);
    int flags = fcntl(fds[0], F_GETFL);
    if (flags < 0 || fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) != 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    return 0;
}
