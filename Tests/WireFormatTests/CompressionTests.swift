import ClusterProtocol
import SessionCore
import Testing
@testable import WireFormat

@Suite struct CompressionTests {
    let codec = SampleMessages.codec()

    @Test func realisticDeltaBatchTravelsCompressedAndSmaller() throws {
        let batch = ClusterMessage.deltaBatch(DeltaBatch(
            from: "n1", viewEpoch: 3, sequence: 77, deltas: (0..<64).map(SampleMessages.realisticDelta)))
        let frame = codec.encode(batch)
        #expect(frame.compressed)
        let ratio = Double(frame.uncompressedBodyBytes) / Double(frame.bytes.count)
        print("realistic delta batch: \(frame.uncompressedBodyBytes) body bytes -> \(frame.bytes.count) frame bytes, ratio \(ratio)")
        #expect(ratio > 3)
        #expect(try codec.decode(frame.bytes) == batch)
    }

    @Test func incompressibleBatchTravelsUncompressed() throws {
        var random = SeededRandom(seed: 7)
        let noise = AttributeValue(bytes: (0..<2048).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        let batch = ClusterMessage.deltaBatch(DeltaBatch(
            from: "n1", viewEpoch: 3, sequence: 78,
            deltas: [SessionDelta(
                id: SampleMessages.sessionA, kind: .update, version: 5, previousVersion: 4, lastAccessedAt: .zero,
                attributes: [AttributeChange(name: "token", stamp: 5, value: noise)])]))
        let frame = codec.encode(batch)
        #expect(!frame.compressed)
        let headerLength = try codec.unpack(frame.bytes).header.headerLength
        #expect(frame.bytes.count == headerLength + frame.uncompressedBodyBytes + FrameHeader.macLength)
        #expect(try codec.decode(frame.bytes) == batch)
    }

    @Test func otherMessagesAreCompressedOnlyOverTheThreshold() throws {
        func write(valueBytes: Int) -> ClusterMessage {
            .forwardedWrite(ForwardedWrite(
                from: "n2", requestID: RequestID(1), sessionID: SampleMessages.sessionA,
                operation: .update(SessionChanges(updated: [
                    "cart": AttributeValue(encoding: .json, bytes: Array(String(repeating: "{\"sku\":\"A-1\"},", count: valueBytes / 14).utf8))
                ])),
                concern: .replicated(1)))
        }
        #expect(!codec.encode(write(valueBytes: 280)).compressed)
        let large = write(valueBytes: 2800)
        #expect(codec.encode(large).compressed)
        #expect(try codec.decode(codec.encode(large).bytes) == large)

        var configuration = codec.configuration
        configuration.compressionThresholdBytes = 1 << 20
        #expect(!FrameCodec(configuration: configuration).encode(large).compressed)
    }
}
