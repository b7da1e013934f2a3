import Foundation
import SessionCore
import Testing

// MARK: - Sample attribute values

private enum Currency: String, Codable, Equatable {
    case euro = "EUR"
    case dollar = "USD"
}

private struct CartLine: Codable, Equatable {
    var sku: String
    var name: String
    var quantity: Int
    var unitPriceCents: Int64
    var options: [String: String]
}

private struct ShoppingCart: Codable, Equatable {
    var lines: [CartLine]
    var currency: Currency
    var couponCode: String?
    var updatedAt: Date
    var discountRate: Double

    static let sample = ShoppingCart(
        lines: [
            CartLine(sku: "TSHIRT-RED-M", name: "T-shirt, red, M", quantity: 2, unitPriceCents: 1_999, options: ["size": "M", "colour": "red"]),
            CartLine(sku: "MUG-LOGO", name: "Mug with logo", quantity: 1, unitPriceCents: 1_250, options: [:]),
            CartLine(sku: "SOCKS-3PK", name: "Socks, pack of 3", quantity: 4, unitPriceCents: 899, options: ["size": "43-46"]),
            CartLine(sku: "GIFT-WRAP", name: "Gift wrapping", quantity: 1, unitPriceCents: 300, options: ["message": "Happy birthday!"]),
        ],
        currency: .euro,
        couponCode: "WINTER10",
        updatedAt: Date(timeIntervalSince1970: 1_795_000_000.25),
        discountRate: 0.1
    )
}

private enum Role: String, Codable, Equatable {
    case customer, support, admin
}

private struct SignedInUser: Codable, Equatable {
    var userID: UInt64
    var displayName: String
    var email: String
    var roles: [Role]
    var csrfToken: [UInt8]
    var signedInAt: Date
    var mfaVerified: Bool
    var recentAddresses: [String]

    static let sample = SignedInUser(
        userID: 4_815_162_342,
        displayName: "Zoë Ångström",
        email: "zoe@example.com",
        roles: [.customer, .support],
        csrfToken: (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) },
        signedInAt: Date(timeIntervalSince1970: 1_795_000_123),
        mfaVerified: true,
        recentAddresses: ["192.0.2.10", "2001:db8::7"]
    )
}

private enum FormStep: Int, Codable, Equatable {
    case contact = 1, shipping, payment, review
}

private struct Address: Codable, Equatable {
    var line1: String
    var line2: String?
    var city: String
    var postcode: String
    var country: String
}

private enum PaymentChoice: Codable, Equatable {
    case card(last4: String, expiryMonth: UInt8, expiryYear: UInt16)
    case invoice(reference: String?)
    case giftCard(Data)
}

private struct CheckoutForm: Codable, Equatable {
    var step: FormStep
    var completedSteps: [FormStep]
    var shipping: Address?
    var billing: Address?
    var sameAsShipping: Bool
    var payment: PaymentChoice?
    var notes: String?
    var answers: [Int: String]

    static let sample = CheckoutForm(
        step: .payment,
        completedSteps: [.contact, .shipping],
        shipping: Address(line1: "12 Rue des Fleurs", line2: nil, city: "Lyon", postcode: "69002", country: "FR"),
        billing: nil,
        sameAsShipping: true,
        payment: .card(last4: "4242", expiryMonth: 12, expiryYear: 2029),
        notes: nil,
        answers: [1: "gift", 7: "leave at the door"]
    )
}

private struct IntegerLimits: Codable, Equatable {
    var int8Min = Int8.min, int8Max = Int8.max
    var int16Min = Int16.min, int16Max = Int16.max
    var int32Min = Int32.min, int32Max = Int32.max
    var int64Min = Int64.min, int64Max = Int64.max
    var intMin = Int.min, intMax = Int.max
    var int128Min = Int128.min, int128Max = Int128.max
    var uint8Max = UInt8.max, uint16Max = UInt16.max, uint32Max = UInt32.max
    var uint64Max = UInt64.max, uintMax = UInt.max, uint128Max = UInt128.max
    var zero = 0, minusOne = -1
}

private struct FloatingLimits: Codable, Equatable {
    var doubleMax = Double.greatestFiniteMagnitude
    var doubleTiny = Double.leastNonzeroMagnitude
    var doubleNegativeInfinity = -Double.infinity
    var floatMax = Float.greatestFiniteMagnitude
    var floatTiny = Float.leastNonzeroMagnitude
    var floatInfinity = Float.infinity
}

private struct EmptyCollections: Codable, Equatable {
    var array: [Int] = []
    var dictionary: [String: Int] = [:]
    var intKeyed: [Int: String] = [:]
    var string = ""
    var bytes: [UInt8] = []
    var data = Data()
    var nested: [[String]] = [[]]
}

/// Encodes by hand with nested containers and super encoders, the paths synthesized
/// conformances rarely take.
private struct HandWritten: Codable, Equatable {
    var id: Int
    var latitude: Double
    var longitude: Double
    var label: String
    var flags: [Bool]
    var base: Address
    var audit: [String: Int]
    var trailer: String

    enum CodingKeys: String, CodingKey { case id, position, details, audit }
    enum DetailKeys: String, CodingKey { case label, flags }

    init(id: Int, latitude: Double, longitude: Double, label: String, flags: [Bool], base: Address, audit: [String: Int], trailer: String) {
        (self.id, self.latitude, self.longitude, self.label) = (id, latitude, longitude, label)
        (self.flags, self.base, self.audit, self.trailer) = (flags, base, audit, trailer)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        var position = container.nestedUnkeyedContainer(forKey: .position)
        try position.encode(latitude)
        try position.encode(longitude)
        try trailer.encode(to: position.superEncoder())
        var details = container.nestedContainer(keyedBy: DetailKeys.self, forKey: .details)
        try details.encode(label, forKey: .label)
        var flagList = details.nestedUnkeyedContainer(forKey: .flags)
        try flagList.encode(contentsOf: flags)
        try base.encode(to: container.superEncoder())
        try audit.encode(to: container.superEncoder(forKey: .audit))
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(Int.self, forKey: .id)
        var position = try container.nestedUnkeyedContainer(forKey: .position)
        latitude = try position.decode(Double.self)
        longitude = try position.decode(Double.self)
        trailer = try String(from: position.superDecoder())
        let details = try container.nestedContainer(keyedBy: DetailKeys.self, forKey: .details)
        label = try details.decode(String.self, forKey: .label)
        var flagList = try details.nestedUnkeyedContainer(forKey: .flags)
        flags = []
        while !flagList.isAtEnd {
            flags.append(try flagList.decode(Bool.self))
        }
        base = try Address(from: container.superDecoder())
        audit = try [String: Int](from: container.superDecoder(forKey: .audit))
    }
}

/// The same attribute as two releases of an application define it.
private enum ReleaseN {
    struct Profile: Codable, Equatable {
        var a: String
        var b: Int
    }
}

private enum ReleaseNPlus1 {
    struct Profile: Codable, Equatable {
        var a: String
        var b: Int
        var c: Preferences?
    }

    struct Preferences: Codable, Equatable {
        var theme: String
        var favourites: [String: [Int]]
        var lastVisit: Date
    }
}

/// Containers nested `links` structs deep, each struct a keyed container holding an
/// unkeyed one: `2 * links` levels in all.
private struct Chain: Codable, Equatable {
    var next: [Chain]

    init(links: Int) {
        next = links > 1 ? [Chain(links: links - 1)] : []
    }
}

/// SeededRandom: a seeded source, so a failure replays from its seed.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}

private func varint(_ number: UInt64) -> [UInt8] {
    var bytes: [UInt8] = []
    var rest = number
    while rest >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
        rest >>= 7
    }
    return bytes + [UInt8(rest)]
}

private func roundTrip<Value: Codable>(_ value: Value) throws -> Value {
    let serializer = BinarySessionSerializer()
    return try serializer.decode(Value.self, from: serializer.encode(value))
}

private func isDataCorrupted(_ error: DecodingError) -> Bool {
    if case .dataCorrupted = error { true } else { false }
}

// MARK: - Tests

@Suite struct BinarySessionSerializerTests {
    let serializer = BinarySessionSerializer()

    @Test func writesTheBinaryEncodingTag() {
        #expect(serializer.encoding == .binary)
    }

    @Test func shoppingCartRoundTrips() throws {
        #expect(try roundTrip(ShoppingCart.sample) == ShoppingCart.sample)
    }

    @Test func signedInUserWithRolesAndCSRFTokenRoundTrips() throws {
        #expect(try roundTrip(SignedInUser.sample) == SignedInUser.sample)
    }

    @Test func multiStepFormWithOptionalsAndNestedStructsRoundTrips() throws {
        #expect(try roundTrip(CheckoutForm.sample) == CheckoutForm.sample)
        var later = CheckoutForm.sample
        later.step = .review
        later.billing = Address(line1: "1 Main St", line2: "Apt 4", city: "Boston", postcode: "02110", country: "US")
        later.sameAsShipping = false
        later.notes = "Ring twice"
        later.payment = .invoice(reference: nil)
        #expect(try roundTrip(later) == later)
        later.payment = .giftCard(Data([0xDE, 0xAD, 0xBE, 0xEF]))
        #expect(try roundTrip(later) == later)
    }

    @Test func enumsWithRawValuesRoundTrip() throws {
        #expect(try roundTrip([Role.admin, .customer]) == [.admin, .customer])
        #expect(try roundTrip([FormStep.review: Currency.dollar]) == [.review: .dollar])
        #expect(try roundTrip(Currency.euro) == .euro)
    }

    @Test func unknownRawValueIsADecodingError() throws {
        let bytes = try serializer.encode("superuser")
        #expect(throws: DecodingError.self) { try serializer.decode(Role.self, from: bytes) }
    }

    @Test func datesRoundTripAsSecondsSince1970() throws {
        let dates = [
            Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: -1_000.5),
            Date(timeIntervalSince1970: 1_795_000_000.123), .distantPast, .distantFuture,
        ]
        #expect(try roundTrip(dates) == dates)
        let bytes = try serializer.encode(Date(timeIntervalSince1970: 1_000))
        #expect(try serializer.decode(Double.self, from: bytes) == 1_000)
    }

    @Test func integersAtTheirLimitsRoundTrip() throws {
        #expect(try roundTrip(IntegerLimits()) == IntegerLimits())
    }

    @Test func floatingPointExtremesRoundTrip() throws {
        #expect(try roundTrip(FloatingLimits()) == FloatingLimits())
        #expect(try roundTrip(-0.0).sign == .minus)
        #expect(try roundTrip(Double.nan).isNaN)
        #expect(try roundTrip(Float.nan).isNaN)
    }

    @Test func emptyCollectionsRoundTrip() throws {
        #expect(try roundTrip(EmptyCollections()) == EmptyCollections())
    }

    @Test func optionalsInsideCollectionsRoundTrip() throws {
        let values: [Int?] = [1, nil, 3]
        #expect(try roundTrip(values) == values)
        let nested: [String: String??] = ["set": "x", "none": .some(nil)]
        #expect(try roundTrip(nested)["set"] == "x")
        #expect(try roundTrip(String?.none) == nil)
    }

    @Test func nestedContainersAndSuperEncodersRoundTrip() throws {
        let value = HandWritten(
            id: 7, latitude: 45.764, longitude: 4.8357, label: "depot", flags: [true, false, true],
            base: Address(line1: "3 Quai", line2: nil, city: "Lyon", postcode: "69001", country: "FR"), audit: ["created": 3, "edited": 9], trailer: "end"
        )
        #expect(try roundTrip(value) == value)
    }

    @Test func bytesAreWrittenAsOneLengthAndTheBytes() throws {
        let payload = (0..<1_000).map { UInt8(truncatingIfNeeded: $0) }
        let bytes = try serializer.encode(payload)
        #expect(bytes.count == 1 + 2 + payload.count)
        #expect(try serializer.decode([UInt8].self, from: bytes) == payload)
        #expect(try serializer.decode(Data.self, from: bytes) == Data(payload))
        #expect(try serializer.encode(Data(payload)) == bytes)
    }

    @Test func equalValuesEncodeToEqualBytesWhateverTheDictionaryOrder() throws {
        var roomy = [String: Int](minimumCapacity: 1_024)
        var tight = [String: Int]()
        for index in 0..<50 { roomy["key\(index)"] = index }
        for index in (0..<50).reversed() { tight["key\(index)"] = index }
        #expect(Array(roomy.keys) != Array(tight.keys))
        #expect(try serializer.encode(roomy) == serializer.encode(tight))
    }

    @Test func savingAnEqualValueAgainRecordsNoChange() throws {
        let stored = try serializer.encode(ShoppingCart.sample)
        var session = Session(
            id: .random(), version: 1, createdAt: .zero, lastAccessedAt: .zero, maxInactiveMilliseconds: 60_000,
            attributes: ["cart": AttributeValue(encoding: .binary, bytes: stored)]
        )
        try session.set("cart", ShoppingCart.sample, using: serializer)
        #expect(!session.hasChanges)
        #expect(try session.get("cart", as: ShoppingCart.self, using: serializer) == ShoppingCart.sample)
    }

    @Test func binaryFormIsSmallerThanJSONForEverySample() throws {
        let json = JSONSessionSerializer()
        #expect(try serializer.encode(ShoppingCart.sample).count < json.encode(ShoppingCart.sample).count)
        #expect(try serializer.encode(SignedInUser.sample).count < json.encode(SignedInUser.sample).count)
        #expect(try serializer.encode(CheckoutForm.sample).count < json.encode(CheckoutForm.sample).count)
    }

    @Test func valueFromReleaseNDecodesInReleaseNPlus1WithTheNewOptionalFieldNil() throws {
        let bytes = try serializer.encode(ReleaseN.Profile(a: "hello", b: -42))
        let decoded = try serializer.decode(ReleaseNPlus1.Profile.self, from: bytes)
        #expect(decoded == ReleaseNPlus1.Profile(a: "hello", b: -42, c: nil))
    }

    @Test func valueFromReleaseNPlus1DecodesInReleaseNSkippingTheUnknownField() throws {
        let preferences = ReleaseNPlus1.Preferences(
            theme: "dark", favourites: ["recent": [1, 2, 3], "saved": []], lastVisit: Date(timeIntervalSince1970: 12)
        )
        let bytes = try serializer.encode(ReleaseNPlus1.Profile(a: "hello", b: 42, c: preferences))
        #expect(try serializer.decode(ReleaseN.Profile.self, from: bytes) == ReleaseN.Profile(a: "hello", b: 42))
    }

    @Test func integerFieldWidenedInALaterReleaseStillDecodes() throws {
        let small = try serializer.encode([Int32.min, 0, Int32.max])
        #expect(try serializer.decode([Int64].self, from: small) == [Int64(Int32.min), 0, Int64(Int32.max)])
        let float = try serializer.encode(Float(1.5))
        #expect(try serializer.decode(Double.self, from: float) == 1.5)
    }

    @Test func numberTooLargeForTheTypeIsADecodingError() throws {
        let bytes = try serializer.encode(300)
        #expect(throws: DecodingError.self) { try serializer.decode(Int8.self, from: bytes) }
        let negative = try serializer.encode(-1)
        #expect(throws: DecodingError.self) { try serializer.decode(UInt.self, from: negative) }
    }

    @Test func valueOfAnotherTypeIsATypeMismatch() throws {
        let bytes = try serializer.encode(ReleaseN.Profile(a: "x", b: 1))
        let error = #expect(throws: DecodingError.self) { try serializer.decode([String: String].self, from: bytes) }
        guard case .typeMismatch = error else {
            Issue.record("expected a type mismatch, got \(String(describing: error))")
            return
        }
    }

    @Test func missingRequiredFieldIsKeyNotFound() throws {
        let bytes = try serializer.encode(["a": "only a"])
        let error = #expect(throws: DecodingError.self) { try serializer.decode(ReleaseN.Profile.self, from: bytes) }
        guard case .keyNotFound(let key, _) = error else {
            Issue.record("expected a missing key, got \(String(describing: error))")
            return
        }
        #expect(key.stringValue == "b")
    }

    @Test func nestingUpToTheLimitRoundTripsAndBeyondItIsRefused() throws {
        let deepest = Chain(links: BinarySessionSerializer.maximumNestingDepth / 2)
        #expect(try roundTrip(deepest) == deepest)
        #expect(throws: EncodingError.self) {
            try serializer.encode(Chain(links: BinarySessionSerializer.maximumNestingDepth / 2 + 1))
        }
    }

    @Test(arguments: [
        ("a count of 10^9 elements with 5 bytes left", [10] + varint(1_000_000_000) + [0, 0, 0, 0, 0]),
        ("a count of 10^9 entries with 5 bytes left", [9] + varint(1_000_000_000) + [0, 0, 0, 0, 0]),
        ("a string of 2^62 bytes", [7] + varint(1 << 62) + Array("abc".utf8)),
        ("bytes of 2^63 bytes", [8] + varint(1 << 63)),
        ("a varint longer than 128 bits", [3] + [UInt8](repeating: 0xFF, count: 19) + [0x01]),
        ("a varint not in its shortest form", [3, 0x80, 0x00]),
        ("an unknown tag", [0xEE]),
        ("bytes after the value", [1, 2]),
        ("invalid UTF-8", [7, 2, 0xC3, 0x28]),
        ("a repeated key", [9, 2, 1, 0x61, 0, 1, 0x61, 0]),
        ("containers nested 10,000 deep", Array([[UInt8]](repeating: [10, 1], count: 10_000).joined()) + [0]),
        ("no bytes at all", []),
    ] as [(String, [UInt8])])
    func malformedInputIsDataCorrupted(_ description: String, bytes: [UInt8]) {
        let error = #expect(throws: DecodingError.self) { try serializer.decode([String: [Int]].self, from: bytes) }
        #expect(error.map(isDataCorrupted) == true, "\(description)")
    }

    @Test func everyTruncationOfAValidEncodingThrows() throws {
        for sample in [try serializer.encode(ShoppingCart.sample), try serializer.encode(CheckoutForm.sample)] {
            for length in 0..<sample.count {
                #expect(throws: DecodingError.self) { try serializer.decode(ShoppingCart.self, from: Array(sample[..<length])) }
            }
        }
    }

    @Test func fiveThousandSeededRandomByteStringsThrow() {
        var random = SeededGenerator(state: 0x5E55_10_C1)
        var refused = 0
        for _ in 0..<5_000 {
            // Half the bytes are small, so many inputs get past the tag into counts,
            // keys and nested containers instead of failing at the first byte.
            let bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in
                Bool.random(using: &random) ? UInt8.random(in: 0...11, using: &random) : UInt8.random(in: 0...255, using: &random)
            }
            do {
                _ = try serializer.decode(ShoppingCart.self, from: bytes)
            } catch is DecodingError {
                refused += 1
            } catch {
                Issue.record("\(bytes) threw \(error), not a DecodingError")
            }
        }
        #expect(refused == 5_000)
    }
}
