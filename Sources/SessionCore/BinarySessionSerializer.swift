/// A compact binary form for `Codable` values, for attributes written and read often.
///
/// The output is smaller than ``JSONSessionSerializer``'s (no quotes, braces or decimal
/// digits) and still self-describing enough for a rolling deploy: every value carries a
/// one-byte tag and every field its name, so a node running the next release skips the
/// fields it does not know and reads a field it expects but does not find as `nil` when
/// the field is optional.
///
/// ```swift
/// let serializer = BinarySessionSerializer()
/// try session.set("cart", cart, using: serializer)
/// let cart = try session.get("cart", as: Cart.self, using: serializer)
/// ```
///
/// ## Format
///
/// A value is one tag byte followed by its payload. Varints are unsigned LEB128 (seven
/// bits a byte, least significant group first, the high bit set on every byte but the
/// last), at most 19 bytes for 128 bits and always in their shortest form.
///
/// | Tag | Value | Payload |
/// | --- | --- | --- |
/// | 0 | nil | none |
/// | 1 | `false` | none |
/// | 2 | `true` | none |
/// | 3 | unsigned integer | varint |
/// | 4 | signed integer | varint of the zigzag form (0, -1, 1, -2… as 0, 1, 2, 3…) |
/// | 5 | `Float` | 4 bytes, IEEE 754 binary32, little-endian |
/// | 6 | `Double` | 8 bytes, IEEE 754 binary64, little-endian |
/// | 7 | `String` | varint byte count, then UTF-8 |
/// | 8 | bytes (`[UInt8]`, `Data`) | varint byte count, then the bytes |
/// | 9 | keyed container | varint count, then per entry a key (varint byte count, UTF-8) and a value |
/// | 10 | unkeyed container | varint count, then the values |
///
/// A `Date` is a `Double` of seconds since 1970-01-01T00:00:00Z. Dictionaries keyed by
/// `String` or `Int` are keyed containers (an `Int` key written as its decimal text);
/// other dictionaries are unkeyed containers of alternating keys and values, as `Codable`
/// lays them out. Keyed entries are written in ascending key order, so equal values
/// always encode to equal bytes and a save that changed nothing is seen as unchanged.
///
/// The encoded value fills the whole input: no header (the ``AttributeEncoding/binary``
/// tag travels next to the bytes) and nothing after it.
///
/// ## Reading untrusted bytes
///
/// Decoding checks the whole input before building any value: an unknown tag, a varint
/// longer than 128 bits, a count or length larger than the remaining bytes could hold,
/// invalid UTF-8, a repeated key, containers nested deeper than
/// ``maximumNestingDepth``, or bytes left over all throw `DecodingError.dataCorrupted`.
/// Nothing is allocated beyond what the remaining input can justify.
///
/// Numbers decode into any type that holds them exactly, so a field widened from
/// `Int32` to `Int64` (or from `Float` to `Double`) in a later release still reads.
public struct BinarySessionSerializer: SessionSerializer {
    /// The deepest nesting of containers the format allows: the root value is at depth 0,
    /// the values inside it at depth 1. Encoding a deeper value throws `EncodingError`;
    /// decoding one throws `DecodingError`. Fixed, so every node of a cluster agrees.
    public static let maximumNestingDepth = 100

    /// Creates the serializer. It has no options: every node must write the same form.
    public init() {}

    /// ``AttributeEncoding/binary``.
    public var encoding: AttributeEncoding { .binary }

    /// Encodes `value` in the binary form.
    ///
    /// Throws `EncodingError.invalidValue` when containers nest deeper than
    /// ``maximumNestingDepth``, or whatever `value`'s own `encode(to:)` throws.
    public func encode<Value: Encodable>(_ value: Value) throws -> [UInt8] {
        let root = try BinaryEncoderImpl.slot(for: value, codingPath: [])
        var writer = BinaryWriter()
        try writer.write(root, depth: 0)
        return writer.bytes
    }

    /// Decodes a value of `type` from `bytes`.
    ///
    /// Throws `DecodingError`: `dataCorrupted` when the bytes are not a well-formed
    /// encoding, `typeMismatch`, `keyNotFound` or `valueNotFound` when they are
    /// well-formed but do not hold a `type`.
    public func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8]) throws -> Value {
        var reader = BinaryReader(bytes: bytes)
        let root = try reader.readRoot()
        return try BinaryDecoderImpl.decode(type, from: root, codingPath: [])
    }
}
