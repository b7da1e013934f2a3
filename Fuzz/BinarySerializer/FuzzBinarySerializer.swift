// libFuzzer target: attribute bytes into `BinarySessionSerializer`'s decoder. Attributes
// come from clients' writes and from peers, so the decoder reads untrusted bytes: it must
// answer with a value or a `DecodingError`, and allocate no more than the input justifies.
//
// Each input is decoded as an open value (whatever the bytes hold) and as a typed value
// that uses most of what `Codable` offers (optionals, nested containers, dictionaries with
// `Int` keys, 128-bit integers, floats, dates, bytes). A value that decodes must encode
// again, and that encoding must decode and encode to the same bytes: the form is canonical.
// (No `Set`: it encodes in its own iteration order, which two equal sets need not share.)
//
// SESSION_CLUSTER_FUZZ_WRITE_SEEDS=<dir> writes the seeds instead (scripts/fuzz.sh --seeds):
// the sample sessions of Fixtures/sessions, and typed values, in the binary form.
import Foundation
import FuzzSupport
import SessionCore

private let serializer = BinarySessionSerializer()

/// Any value of the format, as far as `Codable` can tell.
indirect enum OpenValue: Codable, Hashable {
    case null
    case bool(Bool)
    case signed(Int64)
    case unsigned(UInt64)
    case wide(Int128)
    case double(Double)
    case string(String)
    case bytes(Data)
    case list([OpenValue])
    case object([String: OpenValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null; return }
        if let value = try? container.decode(Bool.self) { self = .bool(value); return }
        if let value = try? container.decode(Int64.self) { self = .signed(value); return }
        if let value = try? container.decode(UInt64.self) { self = .unsigned(value); return }
        if let value = try? container.decode(Int128.self) { self = .wide(value); return }
        if let value = try? container.decode(Double.self) { self = .double(value); return }
        if let value = try? container.decode(String.self) { self = .string(value); return }
        if let value = try? container.decode(Data.self) { self = .bytes(value); return }
        if let value = try? container.decode([String: OpenValue].self) { self = .object(value); return }
        self = .list(try container.decode([OpenValue].self))
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .signed(let value): try container.encode(value)
        case .unsigned(let value): try container.encode(value)
        case .wide(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .bytes(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// A typed attribute, as an application stores one.
struct Cart: Codable, Hashable {
    struct Line: Codable, Hashable {
        var sku: String
        var quantity: UInt16
        var priceCents: Int64
        var options: [String: String]?
    }

    enum Status: String, Codable { case open, checkingOut, paid }

    var lines: [Line]
    var coupon: String?
    var status: Status
    var updatedAt: Date
    var discount: Float
    var countsByStore: [Int: Int8]
    var tags: [String]
    var matrix: [[Int32]]
    var token: [UInt8]
    var serial: UInt128?
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBinarySerializer(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    checkCanonical(OpenValue.self, bytes)
    checkCanonical(Cart.self, bytes)
    return 0
}

/// Decodes `bytes` as a `Value`; when that works, encoding must work, and the encoding
/// must decode and re-encode to itself.
private func checkCanonical<Value: Codable>(_ type: Value.Type, _ bytes: [UInt8]) {
    let value: Value
    do {
        value = try serializer.decode(type, from: bytes)
    } catch is DecodingError {
        return
    } catch {
        preconditionFailure("decoding threw \(error), not a DecodingError")
    }
    do {
        let encoded = try serializer.encode(value)
        let again = try serializer.encode(try serializer.decode(type, from: encoded))
        precondition(encoded == again, "\(type): \(encoded) re-encodes as \(again)")
    } catch {
        preconditionFailure("\(type) decoded from \(bytes) does not round-trip: \(error)")
    }
}

// MARK: - Seeds

private func writeSeeds(to output: URL) throws {
    let sessions = fixtures("sessions")
    for file in try FileManager.default.contentsOfDirectory(atPath: sessions.path).sorted() where file.hasSuffix(".json") {
        let session = try JSONDecoder().decode(OpenValue.self, from: Data(contentsOf: sessions.appendingPathComponent(file)))
        try Data(serializer.encode(session)).write(to: output.appendingPathComponent("session-\(file.dropLast(5))"))
    }
    let cart = Cart(
        lines: [
            .init(sku: "SKU-1042", quantity: 2, priceCents: 1999, options: ["size": "M", "colour": "teal"]),
            .init(sku: "SKU-77", quantity: 1, priceCents: -500, options: nil),
        ],
        coupon: "SPRING", status: .checkingOut, updatedAt: Date(timeIntervalSince1970: 1_760_000_000.25), discount: 0.15,
        countsByStore: [3: -1, 12: 7], tags: ["gift", "express"], matrix: [[1, -2], [], [Int32.max]],
        token: [0, 1, 2, 254, 255], serial: UInt128.max - 1)
    try Data(serializer.encode(cart)).write(to: output.appendingPathComponent("typed-cart"))
    let scalars: [OpenValue] = [
        .null, .bool(true), .signed(-1), .unsigned(UInt64.max), .wide(Int128.min), .double(-0.0), .string("é€😀"),
        .bytes(Data([0, 255])), .list([.list([.list([])])]), .object(["": .null, "a": .object([:])]),
    ]
    try Data(serializer.encode(OpenValue.list(scalars))).write(to: output.appendingPathComponent("open-scalars"))
}

@_cdecl("FuzzBinarySerializer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, testOneInput: fuzzBinarySerializer, writeSeeds: writeSeeds)
}
