/// A session identifier: 144 bits from a cryptographically secure generator, written as
/// 24 characters of URL-safe base64 (RFC 4648 §5, no padding).
///
/// 144 bits rather than the usual 128 leaves more than 128 bits of entropy even after the
/// runtime picks ids that land on a partition the creating node owns (a choice among
/// about N ids costs log2(N) bits). Ids are compared as integers, so the store's hot path
/// never hashes strings.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    /// The first 64 bits; they choose the session's partition.
    package let high: UInt64
    /// The next 64 bits; they choose the store's shard.
    package let low: UInt64
    /// The last 16 bits.
    package let tail: UInt16

    /// The number of bytes in the binary form.
    public static let byteCount = 18
    /// The number of characters in the text form.
    public static let textLength = 24

    /// Creates an id from its three parts.
    package init(high: UInt64, low: UInt64, tail: UInt16) {
        self.high = high
        self.low = low
        self.tail = tail
    }

    /// A new id from the system's secure generator (getrandom on Linux, arc4random on Darwin).
    public static func random() -> SessionID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// A new id from `generator`. Production code passes a secure generator; the simulator
    /// passes a seeded one so that runs replay.
    package static func random<G: RandomNumberGenerator>(using generator: inout G) -> SessionID {
        SessionID(high: generator.next(), low: generator.next(), tail: UInt16(truncatingIfNeeded: generator.next() as UInt64))
    }

    /// Parses the 24-character text form, as found in a cookie.
    public init(_ text: some StringProtocol) throws(SessionIDError) {
        let utf8 = Array(text.utf8)
        guard utf8.count == Self.textLength else { throw .wrongLength(utf8.count) }
        var bytes = [UInt8](repeating: 0, count: Self.byteCount)
        for group in 0..<6 {
            var word: UInt32 = 0
            for index in 0..<4 {
                let character = utf8[group * 4 + index]
                guard let value = Base64URL.decodeTable[Int(character)] else {
                    throw .invalidCharacter(position: group * 4 + index)
                }
                word = word << 6 | UInt32(value)
            }
            bytes[group * 3] = UInt8(truncatingIfNeeded: word >> 16)
            bytes[group * 3 + 1] = UInt8(truncatingIfNeeded: word >> 8)
            bytes[group * 3 + 2] = UInt8(truncatingIfNeeded: word)
        }
        self.init(bytes: bytes)!
    }

    /// Creates an id from its 18-byte binary form; nil when `bytes` has another length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var tail: UInt16 = 0
        for (index, byte) in bytes.enumerated() {
            switch index {
            case 0..<8: high = high << 8 | UInt64(byte)
            case 8..<16: low = low << 8 | UInt64(byte)
            default: tail = tail << 8 | UInt16(byte)
            }
        }
        self.init(high: high, low: low, tail: tail)
    }

    /// A fixed total order, so that work done over many ids (effects, expiries, transfer
    /// chunks) comes out the same in a replayed run. Ids are random; any fixed order will do.
    package func precedes(_ other: SessionID) -> Bool { (high, low, tail) < (other.high, other.low, other.tail) }

    /// The 18-byte binary form, big-endian.
    public var bytes: [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(Self.byteCount)
        for shift in stride(from: 56, through: 0, by: -8) { result.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { result.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
        result.append(UInt8(truncatingIfNeeded: tail >> 8))
        result.append(UInt8(truncatingIfNeeded: tail))
        return result
    }

    /// The 24-character URL-safe text form.
    public var text: String {
        let bytes = self.bytes
        var characters = [UInt8]()
        characters.reserveCapacity(Self.textLength)
        for group in 0..<6 {
            let word = UInt32(bytes[group * 3]) << 16 | UInt32(bytes[group * 3 + 1]) << 8 | UInt32(bytes[group * 3 + 2])
            for shift in [18, 12, 6, 0] {
                characters.append(Base64URL.alphabet[Int((word >> UInt32(shift)) & 63)])
            }
        }
        return String(decoding: characters, as: UTF8.self)
    }

    /// The first six characters and an ellipsis: enough to correlate log lines, too little
    /// to hijack a session.
    public var redacted: String { String(text.prefix(6)) + "…" }

    /// The partition this session belongs to among `partitionCount` partitions. Stable
    /// across processes and releases: it uses the id's bits, not Swift's seeded hasher.
    package func partition(of partitionCount: Int) -> Int {
        Int(high % UInt64(partitionCount))
    }

    /// The redacted form: ids do not leak whole into logs through interpolation.
    public var description: String { redacted }
}

/// Why a text is not a session id.
public enum SessionIDError: Error, Hashable, Sendable {
    /// The text does not have the 24 characters of an id.
    case wrongLength(Int)
    /// The character at `position` is outside the URL-safe base64 alphabet.
    case invalidCharacter(position: Int)
}

enum Base64URL {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    static let decodeTable: [UInt8?] = {
        var table = [UInt8?](repeating: nil, count: 256)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = UInt8(index) }
        return table
    }()
}
