import Foundation

/// Turns typed attribute values into bytes and back. Pluggable: pass your own to
/// ``Session/set(_:_:using:)`` and ``Session/get(_:as:using:)``.
public protocol SessionSerializer: Sendable {
    /// The tag written next to the bytes this serializer produces.
    var encoding: AttributeEncoding { get }
    /// Encodes `value`.
    func encode<Value: Encodable>(_ value: Value) throws -> [UInt8]
    /// Decodes a value of `type` from `bytes`.
    func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8]) throws -> Value
}

/// JSON through Foundation's coders: readable, and understood by any client. The default.
public struct JSONSessionSerializer: SessionSerializer {
    /// A JSON serializer with Foundation's default coder settings.
    public init() {}
    public var encoding: AttributeEncoding { .json }

    public func encode<Value: Encodable>(_ value: Value) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(value))
    }

    public func decode<Value: Decodable>(_ type: Value.Type, from bytes: [UInt8]) throws -> Value {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}

/// Why a stored attribute could not be read as the type asked for.
public struct AttributeDecodingError: Error, Sendable, CustomStringConvertible {
    /// The attribute's name.
    public var name: String
    /// The encoding the attribute was stored with.
    public var storedEncoding: AttributeEncoding
    /// The encoding the serializer reads.
    public var expectedEncoding: AttributeEncoding
    /// The decoder's own error, when it got that far.
    public var underlying: String?

    public var description: String {
        if let underlying {
            return "attribute '\(name)' (\(storedEncoding)) could not be decoded: \(underlying)"
        }
        return "attribute '\(name)' is encoded as \(storedEncoding), the serializer reads \(expectedEncoding)"
    }
}
