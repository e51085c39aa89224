// What the output streams need from Linux that Swift's Glibc module does not export
// (splice(2) is a GNU extension).
#ifndef CIRCUS_STREAMS_H
#define CIRCUS_STREAMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Moves up to `length` bytes from the pipe `pipe_fd` to `file_fd` at `*offset` (advanced
/// by what was moved), without blocking on the pipe.
/// Returns the bytes moved, 0 at the pipe's end, or -errno (-EAGAIN: the pipe is empty).
ssize_t circus_splice_to_file(int pipe_fd, int file_fd, int64_t *offset, size_t length);

/// Makes a close-on-exec pipe whose read end (fds[0]) does not block (256 KiB when
/// circusd runs as root, the default 64 KiB otherwise).
/// Returns 0, or -errno.
int circus_output_pipe(int fds[2]);

#endif
