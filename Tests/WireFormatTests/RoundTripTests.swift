import ClusterProtocol
import SessionCore
import Testing
@testable import WireFormat

@Suite struct RoundTripTests {
    let codec = SampleMessages.codec()

    @Test func everyMessageCaseHasASampleWithItsOwnFrameType() {
        let types = SampleMessages.all.map(\.message.frameType)
        #expect(types == FrameType.allCases)
        #expect(SampleMessages.all.map(\.name) == FrameType.allCases.map { "\($0)" })
    }

    @Test(arguments: SampleMessages.all.map(\.name))
    func everyMessageCaseRoundTrips(name: String) throws {
        let message = try #require(SampleMessages.all.first { $0.name == name }).message
        let frame = codec.encode(message)
        #expect(frame.bytes[3] == message.frameType.rawValue)
        #expect(try codec.decode(frame.bytes) == message)
        let viaPointer = try frame.bytes.withUnsafeBytes { buffer throws(WireError) in try codec.decode(buffer) }
        #expect(viaPointer == message)
    }

    @Test func seededRandomMessagesRoundTrip() throws {
        let baseSeed: UInt64 = 0x5EED_0001
        for offset in 0..<2_500 as Range<UInt64> {
            let seed = baseSeed + offset
            var generator = MessageGenerator(seed: seed)
            let message = generator.message(kind: Int(offset % UInt64(MessageGenerator.messageKinds)))
            let frame = codec.encode(message)
            let decoded: ClusterMessage
            do {
                decoded = try codec.decode(frame.bytes)
            } catch {
                Issue.record("seed \(seed): \(error)")
                continue
            }
            #expect(decoded == message, "seed \(seed)")
            #expect(frame.bytes.count == codec.frameLength(peekingAll: frame.bytes), "seed \(seed)")
        }
    }

    @Test func optionalFieldsRoundTripBothWays() throws {
        let withAll = ClusterMessage.readRequest(ReadRequest(
            from: "n1", requestID: RequestID(1), sessionID: SampleMessages.sessionA, knownVersion: 0))
        let withNone = ClusterMessage.readRequest(ReadRequest(
            from: "n1", requestID: RequestID(1), sessionID: SampleMessages.sessionA, knownVersion: nil))
        #expect(try codec.decode(codec.encode(withAll).bytes) == withAll)
        #expect(try codec.decode(codec.encode(withNone).bytes) == withNone)
        // A read that must not touch carries an options byte; a touching one is the old bytes.
        let readOnly = ClusterMessage.readRequest(ReadRequest(
            from: "n1", requestID: RequestID(1), sessionID: SampleMessages.sessionA, knownVersion: 3, touch: false))
        #expect(try codec.decode(codec.encode(readOnly).bytes) == readOnly)
        #expect(codec.encode(readOnly).bytes.count == codec.encode(withAll).bytes.count + 1)
        for principal: String?? in [.none, .some(.none), .some("bob")] {
            let write = ClusterMessage.forwardedWrite(ForwardedWrite(
                from: "n2", requestID: RequestID(2), sessionID: SampleMessages.sessionB,
                operation: .update(SessionChanges(principal: principal)), concern: .local))
            #expect(try codec.decode(codec.encode(write).bytes) == write)
        }
    }

    @Test func dictionaryOrderDoesNotChangeTheBytes() {
        var forward = SessionChanges()
        var backward = SessionChanges()
        let names = (0..<20).map { "attribute-\($0)" }
        for name in names { forward.updated[name] = AttributeValue(string: name) }
        for name in names.reversed() { backward.updated[name] = AttributeValue(string: name) }
        forward.removed = Set(names.map { $0 + "-old" })
        backward.removed = Set(names.reversed().map { $0 + "-old" })
        func frame(_ changes: SessionChanges) -> [UInt8] {
            codec.encode(.forwardedWrite(ForwardedWrite(
                from: "n1", requestID: RequestID(3), sessionID: SampleMessages.sessionA, operation: .update(changes),
                concern: .replicated(2)))).bytes
        }
        #expect(frame(forward) == frame(backward))
    }
}

extension FrameCodec {
    /// The frame length announced by the header of a whole frame.
    func frameLength(peekingAll bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBytes { try? frameLength(peeking: $0) }
    }
}
