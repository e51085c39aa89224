// The daemon's side of the frames exchanged with a circus-plugin-host (the layout is
// documented once, in circus_plugin_loader.h): building them, and cutting a byte stream
// into them.

import CCircusPluginLoader
import CircusProtocol
import OrderedCollections

/// An outgoing frame: its length, its type, then fields.
struct FrameWriter {
    private(set) var bytes: [UInt8]

    init(_ type: circus_frame_type) {
        bytes = [0, 0, 0, 0, UInt8(type.rawValue)]
    }

    mutating func integer(_ value: UInt64) {
        withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
    }

    mutating func status(_ value: Int32) { integer(UInt64(bitPattern: Int64(value))) }

    mutating func string(_ value: some Collection<UInt8>) {
        withUnsafeBytes(of: UInt32(value.count)) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: value)
    }

    mutating func string(_ value: String) { string(Array(value.utf8)) }

    mutating func json(_ object: JSONObject) { string(JSONWriter.serialize(.object(object))) }

    /// The frame with its length filled in.
    var frame: [UInt8] {
        var whole = bytes
        withUnsafeBytes(of: UInt32(bytes.count - 4)) { length in
            for i in 0..<4 { whole[i] = length[i] }
        }
        return whole
    }
}

/// A received frame's fields, read in order; a field past the end reads as zero or empty
/// and marks the frame bad.
struct FrameReader {
    let type: UInt32
    private let body: ArraySlice<UInt8>
    private var at: Int
    private(set) var bad = false

    init(type: UInt8, body: ArraySlice<UInt8>) {
        self.type = UInt32(type)
        self.body = body
        at = body.startIndex
    }

    mutating func integer() -> UInt64 {
        guard body.endIndex - at >= 8 else {
            bad = true
            return 0
        }
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { raw in
            for i in 0..<8 { raw[i] = body[at + i] }
        }
        at += 8
        return value
    }

    mutating func status() -> Int32 { Int32(truncatingIfNeeded: Int64(bitPattern: integer())) }

    mutating func bytes() -> ArraySlice<UInt8> {
        guard body.endIndex - at >= 4 else {
            bad = true
            return []
        }
        var length: UInt32 = 0
        withUnsafeMutableBytes(of: &length) { raw in
            for i in 0..<4 { raw[i] = body[at + i] }
        }
        at += 4
        guard body.endIndex - at >= Int(length) else {
            bad = true
            return []
        }
        defer { at += Int(length) }
        return body[at..<at + Int(length)]
    }

    mutating func string() -> String { String(decoding: bytes(), as: UTF8.self) }

    /// A JSON object field (nil when it is not one).
    mutating func json() -> JSONObject? {
        let text = bytes()
        guard !text.isEmpty else { return [:] }
        return (try? JSONParser.parse(text))?.objectValue
    }
}

/// Accumulates bytes read from the stream and cuts complete frames out of them.
struct FrameAssembler {
    private var buffer: [UInt8] = []
    private var start = 0

    enum Failure: Error { case oversized(UInt32) }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, if one is there.
    mutating func next() throws(Failure) -> FrameReader? {
        guard buffer.count - start >= 4 else { return compact() }
        var length: UInt32 = 0
        withUnsafeMutableBytes(of: &length) { raw in
            for i in 0..<4 { raw[i] = buffer[start + i] }
        }
        guard length > 0, length <= CIRCUS_FRAME_MAX else { throw .oversized(length) }
        guard buffer.count - start - 4 >= Int(length) else { return compact() }
        let type = buffer[start + 4]
        let body = buffer[(start + 5)..<(start + 4 + Int(length))]
        start += 4 + Int(length)
        return FrameReader(type: type, body: body)
    }

    private mutating func compact() -> FrameReader? {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        return nil
    }
}
