/// A keyed container being filled. A class, because a nested container handed to the
/// caller keeps writing into it after the parent moved on.
final class BinaryKeyedStorage {
    var entries: [String: BinaryEncodedSlot] = [:]
}

/// An unkeyed container being filled.
final class BinaryUnkeyedStorage {
    var elements: [BinaryEncodedSlot] = []
}

/// One value of the tree the encoder builds; written out once encoding finished, when
/// every container knows its count.
enum BinaryEncodedSlot {
    case scalar(BinaryScalar)
    case keyed(BinaryKeyedStorage)
    case unkeyed(BinaryUnkeyedStorage)
    /// A `superEncoder()` whose value is encoded after the container handed it out.
    case deferred(BinaryEncoderImpl)

    /// The keyed storage in `slot`, created there unless a keyed container already is:
    /// asking twice for a keyed container at one place writes into the same one.
    static func keyedStorage(in slot: inout BinaryEncodedSlot?) -> BinaryKeyedStorage {
        if case .keyed(let existing) = slot { return existing }
        let storage = BinaryKeyedStorage()
        slot = .keyed(storage)
        return storage
    }

    /// The unkeyed storage in `slot`, created there unless an unkeyed container already is.
    static func unkeyedStorage(in slot: inout BinaryEncodedSlot?) -> BinaryUnkeyedStorage {
        if case .unkeyed(let existing) = slot { return existing }
        let storage = BinaryUnkeyedStorage()
        slot = .unkeyed(storage)
        return storage
    }
}

/// The `Encoder` handed to `encode(to:)`; also its own single-value container.
///
/// Its generic `encode(_:)` witnesses every primitive requirement of
/// `SingleValueEncodingContainer` (as the containers' generic methods do theirs), and
/// dispatches on ``BinaryPrimitive``.
final class BinaryEncoderImpl: Encoder, SingleValueEncodingContainer {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    /// What was encoded; nil until something was.
    var slot: BinaryEncodedSlot?

    init(codingPath: [any CodingKey]) {
        self.codingPath = codingPath
    }

    /// The slot for `value`: a scalar for primitives, else whatever its `encode(to:)`
    /// builds (an empty keyed container when it encodes nothing). `codingPath` is only
    /// built for a value that has its own `encode(to:)`.
    static func slot(
        for value: some Encodable, codingPath: @autoclosure () -> [any CodingKey]
    ) throws -> BinaryEncodedSlot {
        if let primitive = value as? any BinaryPrimitive {
            return .scalar(primitive.binaryScalar)
        }
        let encoder = BinaryEncoderImpl(codingPath: codingPath())
        try value.encode(to: encoder)
        return encoder.slot ?? .keyed(BinaryKeyedStorage())
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let storage = BinaryEncodedSlot.keyedStorage(in: &slot)
        return KeyedEncodingContainer(BinaryKeyedEncodingContainer<Key>(storage: storage, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        BinaryUnkeyedEncodingContainer(storage: BinaryEncodedSlot.unkeyedStorage(in: &slot), codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    func encodeNil() {
        slot = .scalar(.null)
    }

    func encode<T: Encodable>(_ value: T) throws {
        slot = try Self.slot(for: value, codingPath: codingPath)
    }

    // The standard library's defaults for 128-bit integers throw, and win over the generic
    // method, so these two are spelled out (likewise in every container below).
    func encode(_ value: Int128) { slot = .scalar(value.binaryScalar) }
    func encode(_ value: UInt128) { slot = .scalar(value.binaryScalar) }
}

struct BinaryKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let storage: BinaryKeyedStorage
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) {
        storage.entries[key.stringValue] = .scalar(.null)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        storage.entries[key.stringValue] = try BinaryEncoderImpl.slot(for: value, codingPath: codingPath + [key])
    }

    mutating func encode(_ value: Int128, forKey key: Key) { storage.entries[key.stringValue] = .scalar(value.binaryScalar) }
    mutating func encode(_ value: UInt128, forKey key: Key) { storage.entries[key.stringValue] = .scalar(value.binaryScalar) }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        let nested = BinaryEncodedSlot.keyedStorage(in: &storage.entries[key.stringValue])
        return KeyedEncodingContainer(BinaryKeyedEncodingContainer<NestedKey>(storage: nested, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = BinaryEncodedSlot.unkeyedStorage(in: &storage.entries[key.stringValue])
        return BinaryUnkeyedEncodingContainer(storage: nested, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder {
        deferredEncoder(forKey: BinaryCodingKey.superKey)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        deferredEncoder(forKey: key)
    }

    private func deferredEncoder(forKey key: some CodingKey) -> any Encoder {
        let encoder = BinaryEncoderImpl(codingPath: codingPath + [key])
        storage.entries[key.stringValue] = .deferred(encoder)
        return encoder
    }
}

struct BinaryUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let storage: BinaryUnkeyedStorage
    let codingPath: [any CodingKey]

    var count: Int { storage.elements.count }

    private var nextKey: BinaryCodingKey { BinaryCodingKey(intValue: count) }

    mutating func encodeNil() {
        storage.elements.append(.scalar(.null))
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        storage.elements.append(try BinaryEncoderImpl.slot(for: value, codingPath: codingPath + [nextKey]))
    }

    mutating func encode(_ value: Int128) { storage.elements.append(.scalar(value.binaryScalar)) }
    mutating func encode(_ value: UInt128) { storage.elements.append(.scalar(value.binaryScalar)) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = BinaryKeyedStorage()
        let path = codingPath + [nextKey]
        storage.elements.append(.keyed(nested))
        return KeyedEncodingContainer(BinaryKeyedEncodingContainer<NestedKey>(storage: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = BinaryUnkeyedStorage()
        let path = codingPath + [nextKey]
        storage.elements.append(.unkeyed(nested))
        return BinaryUnkeyedEncodingContainer(storage: nested, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let encoder = BinaryEncoderImpl(codingPath: codingPath + [nextKey])
        storage.elements.append(.deferred(encoder))
        return encoder
    }
}

/// Writes the encoded tree in the form described on ``BinarySessionSerializer``.
struct BinaryWriter {
    private(set) var bytes: [UInt8] = []

    mutating func write(_ slot: BinaryEncodedSlot, depth: Int) throws {
        switch slot {
        case .scalar(let scalar):
            write(scalar)
        case .keyed(let storage):
            try checkDepth(depth)
            writeTag(.keyed)
            writeVarint(UInt128(storage.entries.count))
            for (key, value) in storage.entries.sorted(by: { $0.key < $1.key }) {
                writeCounted(key.utf8)
                try write(value, depth: depth + 1)
            }
        case .unkeyed(let storage):
            try checkDepth(depth)
            writeTag(.unkeyed)
            writeVarint(UInt128(storage.elements.count))
            for element in storage.elements {
                try write(element, depth: depth + 1)
            }
        case .deferred(let encoder):
            try write(encoder.slot ?? .keyed(BinaryKeyedStorage()), depth: depth)
        }
    }

    private mutating func write(_ scalar: BinaryScalar) {
        switch scalar {
        case .null:
            writeTag(.null)
        case .bool(let bool):
            writeTag(bool ? .trueValue : .falseValue)
        case .unsigned(let number):
            writeTag(.unsigned)
            writeVarint(number)
        case .signed(let number):
            writeTag(.signed)
            writeVarint(LEB128.zigzag(number))
        case .float(let number):
            writeTag(.float32)
            writeLittleEndian(UInt64(number.bitPattern), byteCount: 4)
        case .double(let number):
            writeTag(.float64)
            writeLittleEndian(number.bitPattern, byteCount: 8)
        case .string(let string):
            writeTag(.string)
            writeCounted(string.utf8)
        case .bytes(let payload):
            writeTag(.bytes)
            writeCounted(payload)
        }
    }

    private func checkDepth(_ depth: Int) throws {
        guard depth <= BinarySessionSerializer.maximumNestingDepth else {
            throw EncodingError.invalidValue(
                depth,
                EncodingError.Context(
                    codingPath: [],
                    debugDescription: "Containers nest deeper than \(BinarySessionSerializer.maximumNestingDepth) levels"
                )
            )
        }
    }

    private mutating func writeTag(_ tag: BinaryTag) {
        bytes.append(tag.rawValue)
    }

    private mutating func writeCounted(_ payload: some Collection<UInt8>) {
        writeVarint(UInt128(payload.count))
        bytes.append(contentsOf: payload)
    }

    private mutating func writeVarint(_ number: UInt128) {
        LEB128.append(number, to: &bytes)
    }

    private mutating func writeLittleEndian(_ bits: UInt64, byteCount: Int) {
        for index in 0..<byteCount {
            bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * index)))
        }
    }
}
