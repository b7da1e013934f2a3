/// The project's one variable-length integer: unsigned LEB128, seven bits per byte, low
/// bits first, the high bit set on every byte but the last. The session serializer, the
/// packed attribute records, the wire messages and the frame header all use it; each
/// caller turns a ``ReadFailure`` into its own typed error.
///
/// Readers accept only the shortest form, so that one value has one encoding (a frame's
/// MAC and the golden files depend on it), and refuse a value that does not fit the type.
package enum LEB128 {
    /// Why bytes are not a varint of the asked type.
    package enum ReadFailure: Error, Hashable, Sendable {
        /// The input ended inside the varint.
        case truncated
        /// The value needs more bits than the type has.
        case overflow
        /// A longer encoding than needed (a trailing zero byte).
        case notShortest
    }

    // The entry points are concrete: a generic one called from another module runs
    // unspecialized, through witness tables (it cost the wire decoder a third of its
    // speed). Each wraps the one generic algorithm below, specialized here.

    /// The bytes `value` takes: 1 for 0...127, then one more per 7 bits.
    package static func byteCount(_ value: UInt64) -> Int { byteCountOf(value) }
    /// The bytes `value` takes.
    package static func byteCount(_ value: UInt128) -> Int { byteCountOf(value) }
    /// The bytes a non-negative `Int` takes.
    package static func byteCount(_ value: Int) -> Int { byteCountOf(UInt64(value)) }

    /// Appends `value`.
    package static func append(_ value: UInt64, to bytes: inout [UInt8]) { appendValue(value, to: &bytes) }
    /// Appends `value`.
    package static func append(_ value: UInt128, to bytes: inout [UInt8]) { appendValue(value, to: &bytes) }

    /// Writes `value` at `cursor` of a buffer the caller sized with `byteCount`, advancing
    /// the cursor.
    package static func write(_ value: UInt64, into buffer: UnsafeMutableRawBufferPointer, at cursor: inout Int) {
        writeValue(value, into: buffer, at: &cursor)
    }

    /// Reads one varint of at most 64 bits from `bytes` at `offset`, advancing past it only
    /// when it succeeds.
    package static func read(_ type: UInt64.Type, from bytes: UnsafeRawBufferPointer, at offset: inout Int) -> Result<UInt64, ReadFailure> {
        readValue(type, from: bytes, at: &offset)
    }
    /// Reads one varint of at most 32 bits (frame header lengths).
    package static func read(_ type: UInt32.Type, from bytes: UnsafeRawBufferPointer, at offset: inout Int) -> Result<UInt32, ReadFailure> {
        readValue(type, from: bytes, at: &offset)
    }
    /// Reads one varint of at most 128 bits (the session serializer's integers).
    package static func read(_ type: UInt128.Type, from bytes: UnsafeRawBufferPointer, at offset: inout Int) -> Result<UInt128, ReadFailure> {
        readValue(type, from: bytes, at: &offset)
    }

    // Signed values travel zigzag-mapped (0, -1, 1, -2... as 0, 1, 2, 3...), so a small
    // magnitude takes few bytes whatever its sign.

    /// `value` mapped to an unsigned integer for ``append(_:to:)-(UInt64,_)``.
    @inline(__always) package static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
    /// `value` mapped to an unsigned integer.
    @inline(__always) package static func zigzag(_ value: Int128) -> UInt128 { UInt128(bitPattern: (value << 1) ^ (value >> 127)) }
    /// The signed integer a ``zigzag(_:)-(Int64)`` value stands for.
    @inline(__always) package static func unzigzag(_ value: UInt64) -> Int64 { Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1))) }
    /// The signed integer a ``zigzag(_:)-(Int128)`` value stands for.
    @inline(__always) package static func unzigzag(_ value: UInt128) -> Int128 { Int128(bitPattern: (value >> 1) ^ (0 &- (value & 1))) }

    @inline(__always)
    private static func byteCountOf<Value: FixedWidthInteger & UnsignedInteger>(_ value: Value) -> Int {
        max(1, (Value.bitWidth - value.leadingZeroBitCount + 6) / 7)
    }

    @inline(__always)
    private static func appendValue<Value: FixedWidthInteger & UnsignedInteger>(_ value: Value, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    @inline(__always)
    private static func writeValue<Value: FixedWidthInteger & UnsignedInteger>(
        _ value: Value, into buffer: UnsafeMutableRawBufferPointer, at cursor: inout Int
    ) {
        var rest = value
        while rest >= 0x80 {
            buffer[cursor] = UInt8(truncatingIfNeeded: rest) | 0x80
            rest >>= 7
            cursor += 1
        }
        buffer[cursor] = UInt8(truncatingIfNeeded: rest)
        cursor += 1
    }

    @inline(__always)
    private static func readValue<Value: FixedWidthInteger & UnsignedInteger>(
        _ type: Value.Type, from bytes: UnsafeRawBufferPointer, at offset: inout Int
    ) -> Result<Value, ReadFailure> {
        var result: Value = 0
        var shift = 0
        var index = offset
        while true {
            guard index < bytes.count else { return .failure(.truncated) }
            let byte = bytes[index]
            index += 1
            // Past the type's last full group of seven, the byte may carry only the bits left
            // (and no continuation bit).
            if shift > Value.bitWidth - 7, UInt(byte) >> (Value.bitWidth - shift) != 0 { return .failure(.overflow) }
            result |= Value(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                if byte == 0, shift > 0 { return .failure(.notShortest) }
                offset = index
                return .success(result)
            }
            shift += 7
        }
    }
}
