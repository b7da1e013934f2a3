import SessionCore

/// Reads what ``BinaryWriter`` wrote. Every read is bounds-checked and fails with
/// ``WireError/malformed(_:)`` naming the field; no claimed length or count makes it
/// allocate more than the remaining input could hold.
///
/// Field names are static strings, turned into text only on the error path.
struct BinaryReader {
    private let buffer: UnsafeRawBufferPointer
    private(set) var position: Int

    init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        self.position = 0
    }

    var remaining: Int { buffer.count - position }

    static func fail(_ field: StaticString, _ reason: String) -> WireError {
        .malformed("\(field): \(reason)")
    }

    /// Fails unless every byte was read.
    func expectEnd(_ field: StaticString) throws(WireError) {
        guard remaining == 0 else { throw Self.fail(field, "\(remaining) bytes after the end") }
    }

    mutating func readByte(_ field: StaticString) throws(WireError) -> UInt8 {
        guard position < buffer.count else { throw Self.fail(field, "truncated") }
        defer { position += 1 }
        return buffer[position]
    }

    mutating func readBool(_ field: StaticString) throws(WireError) -> Bool {
        switch try readByte(field) {
        case 0: return false
        case 1: return true
        case let other: throw Self.fail(field, "\(other) is not a boolean")
        }
    }

    /// An unsigned LEB128 varint in its shortest form.
    mutating func readVarint(_ field: StaticString) throws(WireError) -> UInt64 {
        switch LEB128.read(UInt64.self, from: buffer, at: &position) {
        case .success(let value): return value
        case .failure(.truncated): throw Self.fail(field, "truncated")
        case .failure(.overflow): throw Self.fail(field, "varint overflows 64 bits")
        case .failure(.notShortest): throw Self.fail(field, "varint not in its shortest form")
        }
    }

    mutating func readSignedVarint(_ field: StaticString) throws(WireError) -> Int64 {
        LEB128.unzigzag(try readVarint(field))
    }

    mutating func readInt(_ field: StaticString) throws(WireError) -> Int {
        guard let value = Int(exactly: try readSignedVarint(field)) else { throw Self.fail(field, "out of range") }
        return value
    }

    mutating func readUnsigned<Value: FixedWidthInteger & UnsignedInteger>(
        _ type: Value.Type, _ field: StaticString
    ) throws(WireError) -> Value {
        guard let value = Value(exactly: try readVarint(field)) else { throw Self.fail(field, "out of range") }
        return value
    }

    /// A length, checked against the bytes left.
    private mutating func readLength(_ field: StaticString) throws(WireError) -> Int {
        let length = try readVarint(field)
        guard length <= UInt64(remaining) else { throw Self.fail(field, "length \(length) with \(remaining) bytes left") }
        return Int(length)
    }

    private mutating func readSlice(count: Int, _ field: StaticString) throws(WireError) -> UnsafeRawBufferPointer {
        guard count <= remaining else { throw Self.fail(field, "truncated") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: buffer[position..<position + count])
    }

    /// A varint length, then that many bytes, without copying them.
    mutating func readSlice(_ field: StaticString) throws(WireError) -> UnsafeRawBufferPointer {
        let length = try readLength(field)
        return try readSlice(count: length, field)
    }

    mutating func readBytes(_ field: StaticString) throws(WireError) -> [UInt8] {
        Array(try readSlice(field))
    }

    /// A length and that many bytes, in place (valid while the input is).
    mutating func readByteSlice(_ field: StaticString) throws(WireError) -> UnsafeRawBufferPointer {
        try readSlice(count: try readLength(field), field)
    }

    mutating func readString(_ field: StaticString) throws(WireError) -> String {
        let length = try readLength(field)
        let slice = try readSlice(count: length, field)
        guard let string = String(validating: slice, as: UTF8.self) else { throw Self.fail(field, "not UTF-8") }
        return string
    }

    mutating func readSessionID(_ field: StaticString) throws(WireError) -> SessionID {
        let slice = try readSlice(count: SessionID.byteCount, field)
        let high = slice.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        let low = slice.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        let tail = slice.loadUnaligned(fromByteOffset: 16, as: UInt16.self)
        return SessionID(high: UInt64(bigEndian: high), low: UInt64(bigEndian: low), tail: UInt16(bigEndian: tail))
    }

    mutating func readOptional<Value>(
        _ field: StaticString, _ read: (inout BinaryReader) throws(WireError) -> Value
    ) throws(WireError) -> Value? {
        switch try readByte(field) {
        case 0: return nil
        case 1: return try read(&self)
        case let other: throw Self.fail(field, "\(other) is not an optional tag")
        }
    }

    /// A count followed by that many elements. A count that the bytes left cannot hold,
    /// at `minimumElementBytes` each, fails before anything is reserved; the reservation
    /// is capped so that memory grows with the elements actually decoded.
    mutating func readArray<Element>(
        _ field: StaticString, minimumElementBytes: Int, _ read: (inout BinaryReader) throws(WireError) -> Element
    ) throws(WireError) -> [Element] {
        let count = try readVarint(field)
        guard count <= UInt64(remaining / max(1, minimumElementBytes)) else {
            throw Self.fail(field, "count \(count) with \(remaining) bytes left")
        }
        var elements: [Element] = []
        elements.reserveCapacity(min(Int(count), 1024))
        for _ in 0..<Int(count) { elements.append(try read(&self)) }
        return elements
    }
}
