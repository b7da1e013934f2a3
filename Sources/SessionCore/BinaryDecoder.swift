/// Reads untrusted bytes into a ``BinaryValue`` tree, refusing anything malformed.
///
/// Every count and length is checked against the bytes that remain before anything is
/// reserved: each value takes at least one byte (its tag) and each keyed entry at least
/// two (an empty key's length and a tag), so a claim of 10^9 elements in five bytes is an
/// error, not an allocation.
struct BinaryReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private var remaining: Int { bytes.count - offset }

    /// Reads the one value the input holds; bytes after it are an error.
    mutating func readRoot() throws -> BinaryValue {
        let value = try readValue(depth: 0)
        guard remaining == 0 else {
            throw DecodingError.corrupted("\(remaining) bytes after the value, at byte \(offset)")
        }
        return value
    }

    private mutating func readValue(depth: Int) throws -> BinaryValue {
        let tagOffset = offset
        let tagByte = try readByte()
        guard let tag = BinaryTag(rawValue: tagByte) else {
            throw DecodingError.corrupted("Unknown tag \(tagByte) at byte \(tagOffset)")
        }
        switch tag {
        case .null: return .scalar(.null)
        case .falseValue: return .scalar(.bool(false))
        case .trueValue: return .scalar(.bool(true))
        case .unsigned: return .scalar(.unsigned(try readVarint()))
        case .signed: return .scalar(.signed(LEB128.unzigzag(try readVarint())))
        case .float32: return .scalar(.float(Float(bitPattern: UInt32(try readLittleEndian(byteCount: 4)))))
        case .float64: return .scalar(.double(Double(bitPattern: try readLittleEndian(byteCount: 8))))
        case .string: return .scalar(.string(try readString()))
        case .bytes: return .scalar(.bytes(try readCounted()))
        case .keyed: return try readKeyed(depth: depth, at: tagOffset)
        case .unkeyed: return try readUnkeyed(depth: depth, at: tagOffset)
        }
    }

    private mutating func readKeyed(depth: Int, at tagOffset: Int) throws -> BinaryValue {
        try checkDepth(depth, at: tagOffset)
        let count = try readCount(minimumBytesEach: 2)
        var entries = [String: BinaryValue](minimumCapacity: count)
        for _ in 0..<count {
            let keyOffset = offset
            let key = try readString()
            guard entries.updateValue(try readValue(depth: depth + 1), forKey: key) == nil else {
                throw DecodingError.corrupted("Key '\(key)' repeated at byte \(keyOffset)")
            }
        }
        return .keyed(entries)
    }

    private mutating func readUnkeyed(depth: Int, at tagOffset: Int) throws -> BinaryValue {
        try checkDepth(depth, at: tagOffset)
        let count = try readCount(minimumBytesEach: 1)
        var elements: [BinaryValue] = []
        elements.reserveCapacity(count)
        for _ in 0..<count {
            elements.append(try readValue(depth: depth + 1))
        }
        return .unkeyed(elements)
    }

    private func checkDepth(_ depth: Int, at tagOffset: Int) throws {
        guard depth <= BinarySessionSerializer.maximumNestingDepth else {
            throw DecodingError.corrupted(
                "Containers nest deeper than \(BinarySessionSerializer.maximumNestingDepth) levels at byte \(tagOffset)"
            )
        }
    }

    private mutating func readByte() throws -> UInt8 {
        guard offset < bytes.count else {
            throw DecodingError.corrupted("Input ends at byte \(offset) inside a value")
        }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// An unsigned LEB128 varint of at most 128 bits, in its shortest form.
    private mutating func readVarint() throws -> UInt128 {
        let start = offset
        let read = bytes.withUnsafeBytes { LEB128.read(UInt128.self, from: $0, at: &offset) }
        switch read {
        case .success(let value): return value
        case .failure(.truncated): throw DecodingError.corrupted("Input ends at byte \(bytes.count) inside a value")
        case .failure(.overflow): throw DecodingError.corrupted("Varint longer than 128 bits at byte \(start)")
        case .failure(.notShortest): throw DecodingError.corrupted("Varint not in its shortest form at byte \(start)")
        }
    }

    /// A count of things each taking at least `minimumBytesEach` of the remaining input.
    private mutating func readCount(minimumBytesEach: Int) throws -> Int {
        let start = offset
        let count = try readVarint()
        guard count <= UInt128(remaining / minimumBytesEach) else {
            throw DecodingError.corrupted("Count \(count) at byte \(start) exceeds what the remaining \(remaining) bytes can hold")
        }
        return Int(count)
    }

    private mutating func readCounted() throws -> ArraySlice<UInt8> {
        let length = try readCount(minimumBytesEach: 1)
        defer { offset += length }
        return bytes[offset..<offset + length]
    }

    private mutating func readString() throws -> String {
        let start = offset
        guard let string = String(validating: try readCounted(), as: UTF8.self) else {
            throw DecodingError.corrupted("Invalid UTF-8 in the string at byte \(start)")
        }
        return string
    }

    private mutating func readLittleEndian(byteCount: Int) throws -> UInt64 {
        guard remaining >= byteCount else {
            throw DecodingError.corrupted("Input ends at byte \(bytes.count) inside a \(byteCount)-byte number")
        }
        var bits: UInt64 = 0
        for index in 0..<byteCount {
            bits |= UInt64(bytes[offset + index]) << (8 * index)
        }
        offset += byteCount
        return bits
    }
}

/// The `Decoder` handed to `init(from:)`; also its own single-value container.
///
/// Its generic `decode(_:)` witnesses every primitive requirement of
/// `SingleValueDecodingContainer` (as the containers' generic methods do theirs), and
/// dispatches on ``BinaryPrimitive``.
final class BinaryDecoderImpl: Decoder, SingleValueDecodingContainer {
    let value: BinaryValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(value: BinaryValue, codingPath: [any CodingKey]) {
        self.value = value
        self.codingPath = codingPath
    }

    /// Decodes a `type` from `value`: primitives directly, anything else through its
    /// `init(from:)`. `codingPath` is only built for a nested decoder or an error.
    static func decode<T: Decodable>(
        _ type: T.Type, from value: BinaryValue, codingPath: @autoclosure () -> [any CodingKey]
    ) throws -> T {
        guard let primitiveType = type as? any BinaryPrimitive.Type else {
            return try T(from: BinaryDecoderImpl(value: value, codingPath: codingPath()))
        }
        do throws(BinaryPrimitiveMismatch) {
            if let decoded = try primitiveType.init(binaryValue: value) as? T { return decoded }
            throw BinaryPrimitiveMismatch.wrongKind
        } catch {
            throw error.decodingError(type, value: value, codingPath: codingPath())
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .keyed(let entries) = value else {
            throw DecodingError.mismatch([String: Any].self, found: value, codingPath: codingPath)
        }
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<Key>(entries: entries, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .unkeyed(let elements) = value else {
            throw DecodingError.mismatch([Any].self, found: value, codingPath: codingPath)
        }
        return BinaryUnkeyedDecodingContainer(elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueDecodingContainer { self }

    func decodeNil() -> Bool { value.isNull }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try Self.decode(type, from: value, codingPath: codingPath)
    }

    // The standard library's defaults for 128-bit integers throw, and win over the generic
    // method, so these two are spelled out (likewise in the containers below).
    func decode(_ type: Int128.Type) throws -> Int128 { try Self.decode(type, from: value, codingPath: codingPath) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try Self.decode(type, from: value, codingPath: codingPath) }
}

struct BinaryKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let entries: [String: BinaryValue]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { entries.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { entries[key.stringValue] != nil }

    private func value(forKey key: Key) throws -> BinaryValue {
        guard let value = entries[key.stringValue] else {
            throw DecodingError.keyNotFound(
                key, DecodingError.Context(codingPath: codingPath, debugDescription: "No value for key '\(key.stringValue)'")
            )
        }
        return value
    }

    /// A decoder for the entry `key`, over nil when there is none (for super decoders).
    private func decoder(forKey key: some CodingKey) -> BinaryDecoderImpl {
        BinaryDecoderImpl(value: entries[key.stringValue] ?? .scalar(.null), codingPath: codingPath + [key])
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try value(forKey: key).isNull
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try BinaryDecoderImpl.decode(type, from: value(forKey: key), codingPath: codingPath + [key])
    }

    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 {
        try BinaryDecoderImpl.decode(type, from: value(forKey: key), codingPath: codingPath + [key])
    }

    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 {
        try BinaryDecoderImpl.decode(type, from: value(forKey: key), codingPath: codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        try BinaryDecoderImpl(value: value(forKey: key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try BinaryDecoderImpl(value: value(forKey: key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    /// A decoder for the `super` entry; over nil when there is none, as JSON's does.
    func superDecoder() -> any Decoder {
        decoder(forKey: BinaryCodingKey.superKey)
    }

    func superDecoder(forKey key: Key) -> any Decoder {
        decoder(forKey: key)
    }
}

struct BinaryUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let elements: [BinaryValue]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(elements: [BinaryValue], codingPath: [any CodingKey]) {
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    private var currentPath: [any CodingKey] { codingPath + [BinaryCodingKey(intValue: currentIndex)] }

    private func checkNotAtEnd(expecting type: Any.Type) throws {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type, DecodingError.Context(codingPath: currentPath, debugDescription: "Unkeyed container is at its end")
            )
        }
    }

    /// Reads the current element; the index moves on only when `read` succeeds.
    private mutating func next<Result>(
        _ type: Any.Type, _ read: (BinaryValue, _ path: () -> [any CodingKey]) throws -> Result
    ) throws -> Result {
        try checkNotAtEnd(expecting: type)
        let path = { [codingPath, currentIndex] in codingPath + [BinaryCodingKey(intValue: currentIndex)] }
        let result = try read(elements[currentIndex], path)
        currentIndex += 1
        return result
    }

    mutating func decodeNil() throws -> Bool {
        try checkNotAtEnd(expecting: Never?.self)
        guard elements[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try next(type) { value, path in try BinaryDecoderImpl.decode(type, from: value, codingPath: path()) }
    }

    mutating func decode(_ type: Int128.Type) throws -> Int128 {
        try next(type) { value, path in try BinaryDecoderImpl.decode(type, from: value, codingPath: path()) }
    }

    mutating func decode(_ type: UInt128.Type) throws -> UInt128 {
        try next(type) { value, path in try BinaryDecoderImpl.decode(type, from: value, codingPath: path()) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next(type) { value, path in try BinaryDecoderImpl(value: value, codingPath: path()).container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next([Any].self) { value, path in try BinaryDecoderImpl(value: value, codingPath: path()).unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder {
        try next(Any.self) { value, path in BinaryDecoderImpl(value: value, codingPath: path()) }
    }
}
