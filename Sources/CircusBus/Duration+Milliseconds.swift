// Converting Swift `Duration`s to the millisecond counts libzmq takes.

extension Duration {
    /// Whole milliseconds, rounded up so a tiny positive wait never becomes a busy
    /// `zmq_poll(…, 0)` loop; negative durations become 0; clamped to `Int32.max`
    /// (about 24 days), which also fits the `int` socket options.
    var zmqMilliseconds: Int {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        if seconds >= Int64(Int32.max) / 1000 { return Int(Int32.max) }
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let fraction = (attoseconds + perMillisecond - 1) / perMillisecond
        return Int(min(Int64(Int32.max), seconds * 1000 + fraction))
    }
}
