// circus_str on both sides: reading what a plugin passes (borrowed, copied at once) and
// lending Swift bytes to a plugin (NUL-terminated as a courtesy to C code).

import CCircusPlugin
import CircusProtocol
import OrderedCollections

extension circus_str {
    /// The bytes, borrowed for the duration of the call that received them.
    var buffer: UnsafeBufferPointer<UInt8> {
        guard let ptr, len > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: UnsafeRawPointer(ptr).assumingMemoryBound(to: UInt8.self), count: len)
    }

    /// A copy as a Swift string (invalid UTF-8 becomes U+FFFD).
    var string: String { String(decoding: buffer, as: UTF8.self) }

    /// The JSON object it holds; the empty string counts as `{}`. Nil when it is not one
    /// JSON object.
    var jsonObject: JSONObject? {
        guard len > 0 else { return [:] }
        guard let value = try? JSONParser.parse(buffer) else { return nil }
        return value.objectValue
    }
}

/// Bytes to lend to a plugin as a `circus_str`, with a NUL after them.
struct LentBytes: Sendable {
    private let storage: [UInt8]

    init(_ bytes: [UInt8]) {
        storage = bytes + [0]
    }

    init(_ string: String) { self.init(Array(string.utf8)) }

    init(json: JSONObject) { self.init(JSONWriter.serialize(.object(json))) }

    /// Calls `body` with the bytes (without the NUL).
    func withBytes<R>(_ body: (ArraySlice<UInt8>) -> R) -> R { body(storage.dropLast()) }

    /// Calls `body` with a `circus_str` valid until it returns.
    func with<R>(_ body: (circus_str) -> R) -> R {
        storage.withUnsafeBufferPointer { buffer in
            let chars = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            return body(circus_str(ptr: chars, len: buffer.count - 1))
        }
    }
}
