// A failed system call, and the one helper every raw call in this module goes through.

import Glibc

/// A system call that failed with an errno the caller is expected to handle.
///
/// Failures that can only mean a bug in this process (`EBADF` on a descriptor we own,
/// `EFAULT`) trap instead, so they are found rather than logged and forgotten.
public struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What was attempted, for the message (`epoll_ctl(ADD, 7)`, `open('/run/x.pid')`).
    public let operation: String
    /// The errno value.
    public let errno: Int32

    /// Creates an error for `operation` failing with `errno`.
    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// `<operation>: <strerror>`, e.g. `epoll_create1: Too many open files`.
    public var description: String { "\(operation): \(errnoDescription(errno))" }
}

/// The C library's text for an errno (`No such file or directory`).
///
/// glibc returns static strings for every known errno, so this is safe from any thread.
public func errnoDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

/// Runs a call that returns -1 and sets errno on failure, retrying on EINTR.
///
/// - Throws: `SystemError` for every errno except EBADF and EFAULT, which trap: they mean
///   this process passed a descriptor or pointer it does not own.
@inline(__always)
func retryingSyscall<T: FixedWidthInteger>(
    _ operation: @autoclosure () -> String, _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        precondition(code != EBADF && code != EFAULT, "\(operation()): \(errnoDescription(code)) (a bug in the caller)")
        throw SystemError(operation(), errno: code)
    }
}
