/// How an attribute's bytes are encoded, so a node can tell whether it can decode them.
///
/// The tag travels with the bytes. A node running an older or newer release that cannot
/// decode an attribute drops that attribute and reports it rather than failing a request.
public struct AttributeEncoding: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Opaque bytes set by the application.
    public static let raw = AttributeEncoding(rawValue: 0)
    /// UTF-8 JSON from ``JSONSessionSerializer``.
    public static let json = AttributeEncoding(rawValue: 1)
    /// The compact form of ``BinarySessionSerializer``.
    public static let binary = AttributeEncoding(rawValue: 2)
    /// A UTF-8 string (what Vapor-style `[String: String]` sessions hold).
    public static let utf8 = AttributeEncoding(rawValue: 3)

    public var description: String {
        switch self {
        case .raw: "raw"
        case .json: "json"
        case .binary: "binary"
        case .utf8: "utf8"
        default: "encoding(\(rawValue))"
        }
    }
}

/// One attribute's value: an encoding tag and the encoded bytes.
public struct AttributeValue: Hashable, Sendable {
    /// How ``bytes`` are encoded.
    public var encoding: AttributeEncoding
    /// The encoded value.
    public var bytes: [UInt8]

    /// Creates a value from encoded bytes.
    public init(encoding: AttributeEncoding = .raw, bytes: [UInt8]) {
        self.encoding = encoding
        self.bytes = bytes
    }

    /// A UTF-8 string value.
    public init(string: String) {
        self.init(encoding: .utf8, bytes: Array(string.utf8))
    }

    /// The value as a string when it is valid UTF-8.
    public var string: String? { String(validating: bytes, as: UTF8.self) }
}
