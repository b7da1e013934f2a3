import SessionCore

/// Appends the body encoding of a message: LEB128 varints for integers (zigzag for signed
/// ones), length-prefixed strings and byte arrays, session ids as 18 raw bytes.
///
/// The writer owns the frame buffer from the start (callers reserve the header in front),
/// so an uncompressed body is never copied again.
struct BinaryWriter {
    private(set) var bytes: [UInt8]

    init(reservingCapacity capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    /// Takes the buffer out, leaving the writer empty.
    mutating func finish() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }

    /// Empties the writer but keeps its buffer, for the next message of a bundle.
    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
    }

    mutating func writeZeros(_ count: Int) {
        bytes.append(contentsOf: repeatElement(0, count: count))
    }

    mutating func writeByte(_ byte: UInt8) {
        bytes.append(byte)
    }

    mutating func writeBool(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    mutating func writeVarint(_ value: UInt64) {
        if value < 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value))
            return
        }
        // At most 10 bytes: assemble them on the stack and append once.
        var scratch: (UInt64, UInt64) = (0, 0)
        let length = withUnsafeMutableBytes(of: &scratch) { raw in
            var length = 0
            LEB128.write(value, into: raw, at: &length)
            return length
        }
        withUnsafeBytes(of: &scratch) { raw in
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[..<length]))
        }
    }

    mutating func writeVarint(_ value: Int64) {
        writeVarint(LEB128.zigzag(value))
    }

    mutating func writeVarint(_ value: Int) {
        writeVarint(Int64(value))
    }

    /// A length and the bytes.
    mutating func writeBytes(_ value: [UInt8]) {
        writeVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// A length and the bytes.
    mutating func writeBytes(_ value: UnsafeRawBufferPointer) {
        writeVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// The UTF-8 length and the UTF-8 bytes.
    mutating func writeString(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            writeVarint(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func writeSessionID(_ id: SessionID) {
        var raw = (id.high.bigEndian, id.low.bigEndian, id.tail.bigEndian)
        withUnsafeBytes(of: &raw) { buffer in
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<SessionID.byteCount]))
        }
    }

    mutating func writeOptional<Value>(_ value: Value?, _ write: (inout BinaryWriter, Value) -> Void) {
        guard let value else {
            bytes.append(0)
            return
        }
        bytes.append(1)
        write(&self, value)
    }

    mutating func writeArray<Element>(_ elements: some Collection<Element>, _ write: (inout BinaryWriter, Element) -> Void) {
        writeVarint(UInt64(elements.count))
        for element in elements { write(&self, element) }
    }
}
