import ClusterProtocol
import Testing
@testable import WireFormat

/// Several cluster keys: frames go out under the first and are accepted under any, each
/// naming its key's id in the header, so a cluster changes its key by rolling restarts.
@Suite struct KeyRotationTests {
    static let old = WireKey(id: 0, bytes: Array("the-old-cluster-key-0123456789".utf8))
    static let new = WireKey(id: 1, bytes: Array("the-new-cluster-key-abcdefghij".utf8))

    static func codec(_ keys: [WireKey]) throws -> FrameCodec {
        FrameCodec(configuration: try WireConfiguration(keys: keys))
    }

    @Test func aFrameUnderKeyOneCarriesItsIDAndDecodesWhereverThatKeyIsKnown() throws {
        let sender = try Self.codec([Self.new, Self.old])
        for (name, message) in SampleMessages.all {
            let frame = sender.encode(message).bytes
            #expect((frame[4] & 0b0001_1100) >> 2 == 1, "\(name): flags \(frame[4])")
            #expect(try Self.codec([Self.new, Self.old]).decode(frame) == message, "\(name)")
            #expect(try Self.codec([Self.old, Self.new]).decode(frame) == message, "\(name)")
        }
    }

    @Test func aNodeWithoutTheKeyRefusesTheFrameAsAnUnknownKeyID() throws {
        let frame = try Self.codec([Self.new, Self.old]).encode(SampleMessages.message(.heartbeat)).bytes
        #expect(try Self.codec([Self.old]).decodingError(frame) == .unknownKeyID(1))
        #expect(WireError.unknownKeyID(1).code == 109)
    }

    @Test func aFrameNamingAKnownIDButSealedWithAnotherKeyFailsAuthentication() throws {
        // Key id 1 is configured on both sides, but with different bytes.
        let impostor = WireKey(id: 1, bytes: Array("not-the-new-key-but-also-long-enough".utf8))
        let frame = try Self.codec([impostor]).encode(SampleMessages.message(.heartbeat)).bytes
        #expect(try Self.codec([Self.old, Self.new]).decodingError(frame) == .authenticationFailed)
    }

    @Test func aFrameOverALinkHistoryUnderTheSecondKeyDecodes() throws {
        let sender = try Self.codec([Self.new, Self.old])
        let receiver = try Self.codec([Self.old, Self.new])
        let (sent, received) = (LinkHistory(), LinkHistory())
        for (_, message) in SampleMessages.all {
            let frame = sender.encode([message, message], over: sent).bytes
            let decoded = try frame.withUnsafeBytes { try receiver.decode($0, over: received) }
            #expect(decoded == [message, message])
        }
    }

    @Test func keyIDZeroIsTodaysFrame() throws {
        let single = SampleMessages.codec()
        let listed = try Self.codec([WireKey(id: 0, bytes: SampleMessages.goldenKey), Self.new])
        for (name, message) in SampleMessages.all {
            #expect(listed.encode(message).bytes == single.encode(message).bytes, "\(name)")
        }
    }

    @Test func badKeyListsAreRefused() {
        #expect(throws: ClusterKeyError.keyCount(0, maximum: 8)) { try WireConfiguration(keys: []) }
        let nine = (0..<9).map { WireKey(id: UInt8($0 % 8), bytes: Array(repeating: 1, count: 16)) }
        #expect(throws: ClusterKeyError.keyCount(9, maximum: 8)) { try WireConfiguration(keys: nine) }
        #expect(throws: ClusterKeyError.duplicateID(0)) { try WireConfiguration(keys: [Self.old, Self.old]) }
        #expect(throws: ClusterKeyError.idOutOfRange(8)) {
            try WireConfiguration(keys: [WireKey(id: 8, bytes: Self.old.bytes)])
        }
        #expect(throws: ClusterKeyError.tooShort(bytes: 15, minimum: 16)) {
            try WireConfiguration(keys: [Self.old, WireKey(id: 2, bytes: Array(repeating: 1, count: 15))])
        }
    }
}
