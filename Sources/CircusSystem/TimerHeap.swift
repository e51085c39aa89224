// A binary min-heap of timer deadlines: the loop needs only "earliest deadline" and "pop the
// earliest", and this target has no package dependencies.

/// A min-heap of `(deadline, id)` ordered by deadline, then by id (so timers with the same
/// deadline fire in the order they were scheduled).
struct TimerHeap {
    struct Entry {
        var deadline: Double
        var id: UInt64

        @inline(__always)
        static func < (a: Entry, b: Entry) -> Bool {
            a.deadline < b.deadline || (a.deadline == b.deadline && a.id < b.id)
        }
    }

    private(set) var entries: [Entry] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var min: Entry? { entries.first }

    mutating func insert(_ entry: Entry) {
        entries.append(entry)
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child] < entries[parent] else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func popMin() -> Entry? {
        guard !entries.isEmpty else { return nil }
        let top = entries[0]
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            siftDown(from: 0)
        }
        return top
    }

    /// Keeps only the entries for which `isLive` is true (cancelled timers are removed lazily;
    /// this bounds the garbage when many are cancelled).
    mutating func compact(_ isLive: (UInt64) -> Bool) {
        entries.removeAll { !isLive($0.id) }
        var i = entries.count / 2
        while i > 0 {
            i -= 1
            siftDown(from: i)
        }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        let n = entries.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { return }
            var smallest = left
            let right = left + 1
            if right < n, entries[right] < entries[left] { smallest = right }
            guard entries[smallest] < entries[parent] else { return }
            entries.swapAt(smallest, parent)
            parent = smallest
        }
    }
}
