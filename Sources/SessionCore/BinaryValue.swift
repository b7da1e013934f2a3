import Foundation

/// The tag byte that starts every value of ``BinarySessionSerializer``'s form.
enum BinaryTag: UInt8 {
    case null = 0
    case falseValue = 1
    case trueValue = 2
    case unsigned = 3
    case signed = 4
    case float32 = 5
    case float64 = 6
    case string = 7
    case bytes = 8
    case keyed = 9
    case unkeyed = 10
}

/// A value with no parts: what one tag and its payload hold, short of a container.
enum BinaryScalar {
    case null
    case bool(Bool)
    case unsigned(UInt128)
    case signed(Int128)
    case float(Float)
    case double(Double)
    case string(String)
    case bytes(ArraySlice<UInt8>)
}

/// A decoded value: the whole input is read into these before any `init(from:)` runs, so
/// malformed bytes are refused up front and keyed entries can be read in any order.
enum BinaryValue {
    case scalar(BinaryScalar)
    case keyed([String: BinaryValue])
    case unkeyed([BinaryValue])

    /// What the value is, for error messages.
    var kind: String {
        switch self {
        case .scalar(.null): "nil"
        case .scalar(.bool): "a Bool"
        case .scalar(.unsigned(let number)): "the unsigned integer \(number)"
        case .scalar(.signed(let number)): "the signed integer \(number)"
        case .scalar(.float(let number)): "the Float \(number)"
        case .scalar(.double(let number)): "the Double \(number)"
        case .scalar(.string): "a string"
        case .scalar(.bytes): "bytes"
        case .keyed: "a keyed container"
        case .unkeyed: "an unkeyed container"
        }
    }

    var isNull: Bool {
        if case .scalar(.null) = self { true } else { false }
    }
}

/// The coding key for positions in unkeyed containers and for `super`.
struct BinaryCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }

    init(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }

    static let superKey = BinaryCodingKey(stringValue: "super")
}

/// Why a value did not decode as a primitive; the decoder adds the coding path.
enum BinaryPrimitiveMismatch: Error {
    /// The value is of another kind (a string where a number was expected).
    case wrongKind
    /// The value is a number the type cannot hold exactly.
    case doesNotFit

    func decodingError(_ type: Any.Type, value: BinaryValue, codingPath: [any CodingKey]) -> DecodingError {
        switch self {
        case .wrongKind:
            .mismatch(type, found: value, codingPath: codingPath)
        case .doesNotFit:
            .corrupted("\(value.kind) does not fit exactly in \(type)", codingPath: codingPath)
        }
    }
}

extension DecodingError {
    static func mismatch(_ type: Any.Type, found value: BinaryValue, codingPath: [any CodingKey]) -> DecodingError {
        .typeMismatch(type, Context(codingPath: codingPath, debugDescription: "Expected \(type) but found \(value.kind)"))
    }

    static func corrupted(_ description: String, codingPath: [any CodingKey] = []) -> DecodingError {
        .dataCorrupted(Context(codingPath: codingPath, debugDescription: description))
    }
}

/// A type written as one scalar rather than through its own `Codable` conformance: the
/// standard library's primitives, and the bytes and dates the format stores natively.
protocol BinaryPrimitive {
    var binaryScalar: BinaryScalar { get }
    init(binaryValue value: BinaryValue) throws(BinaryPrimitiveMismatch)
}

extension BinaryPrimitive where Self: FixedWidthInteger {
    var binaryScalar: BinaryScalar {
        Self.isSigned ? .signed(Int128(self)) : .unsigned(UInt128(self))
    }

    init(binaryValue value: BinaryValue) throws(BinaryPrimitiveMismatch) {
        let converted: Self?
        switch value {
        case .scalar(.unsigned(let number)): converted = Self(exactly: number)
        case .scalar(.signed(let number)): converted = Self(exactly: number)
        default: throw .wrongKind
        }
        guard let converted else { throw .doesNotFit }
        self = converted
    }
}

extension BinaryPrimitive where Self: BinaryFloatingPoint {
    init(binaryValue value: BinaryValue) throws(BinaryPrimitiveMismatch) {
        let converted: Self?
        switch value {
        case .scalar(.float(let number)): converted = number.isNaN ? .nan : Self(exactly: number)
        case .scalar(.double(let number)): converted = number.isNaN ? .nan : Self(exactly: number)
        case .scalar(.unsigned(let number)): converted = Self(exactly: number)
        case .scalar(.signed(let number)): converted = Self(exactly: number)
        default: throw .wrongKind
        }
        guard let converted else { throw .doesNotFit }
        self = converted
    }
}

extension Int: BinaryPrimitive {}
extension Int8: BinaryPrimitive {}
extension Int16: BinaryPrimitive {}
extension Int32: BinaryPrimitive {}
extension Int64: BinaryPrimitive {}
extension Int128: BinaryPrimitive {}
extension UInt: BinaryPrimitive {}
extension UInt8: BinaryPrimitive {}
extension UInt16: BinaryPrimitive {}
extension UInt32: BinaryPrimitive {}
extension UInt64: BinaryPrimitive {}
extension UInt128: BinaryPrimitive {}

extension Float: BinaryPrimitive {
    var binaryScalar: BinaryScalar { .float(self) }
}

extension Double: BinaryPrimitive {
    var binaryScalar: BinaryScalar { .double(self) }
}

extension Bool: BinaryPrimitive {
    var binaryScalar: BinaryScalar { .bool(self) }

    init(binaryValue value: BinaryValue) throws(BinaryPrimitiveMismatch) {
        guard case .scalar(.bool(let bool)) = value else { throw .wrongKind }
        self = bool
    }
}

extension String: BinaryPrimitive {
    var binaryScalar: BinaryScalar { .string(self) }

    init(binaryValue value: BinaryValue) throws(BinaryPrimitiveMismatch) {
        guard case .scalar(.string(let string)) = value else { throw .wrongKind }
        self = string
    }
}

/// `[UInt8]` is written as one length and the bytes, not a container of integers.
extension Array: BinaryPrimitive where Element == UInt8 {
    var binaryScalar: BinaryScalar { .bytes(self[...]) }

    init(binaryValue value: BinaryValue) throws(BinaryPrimitiveMismatch) {
        self = try Array(value.bytes())
    }
}

extension Data: BinaryPrimitive {
    var binaryScalar: BinaryScalar { .bytes(ArraySlice(self)) }

    init(binaryValue value: BinaryValue) throws(BinaryPrimitiveMismatch) {
        self = try Data(value.bytes())
    }
}

/// A `Date` is its seconds since 1970 as a `Double`.
extension Date: BinaryPrimitive {
    var binaryScalar: BinaryScalar { .double(timeIntervalSince1970) }

    init(binaryValue value: BinaryValue) throws(BinaryPrimitiveMismatch) {
        self = Date(timeIntervalSince1970: try Double(binaryValue: value))
    }
}

extension BinaryValue {
    func bytes() throws(BinaryPrimitiveMismatch) -> ArraySlice<UInt8> {
        guard case .scalar(.bytes(let bytes)) = self else { throw .wrongKind }
        return bytes
    }
}
