import SessionCore
import Testing
@testable import WireFormat

@Suite struct BinaryCodingTests {
    private func reading<Value>(_ bytes: [UInt8], _ read: (inout BinaryReader) throws(WireError) -> Value) throws(WireError) -> Value {
        try bytes.withUnsafeBytesTyped { (buffer) throws(WireError) in
            var reader = BinaryReader(buffer)
            let value = try read(&reader)
            try reader.expectEnd("test")
            return value
        }
    }

    @Test func varintsRoundTripAtEveryBoundary() throws {
        let unsigned: [UInt64] = [0, 1, 127, 128, 16_383, 16_384, 1 << 35, UInt64(Int64.max), UInt64.max]
        for value in unsigned {
            var writer = BinaryWriter(reservingCapacity: 10)
            writer.writeVarint(value)
            #expect(try reading(writer.finish()) { reader throws(WireError) in try reader.readVarint("v") } == value)
        }
        for value: Int64 in [0, -1, 1, -64, 64, Int64.min, Int64.max] {
            var writer = BinaryWriter(reservingCapacity: 10)
            writer.writeVarint(value)
            let bytes = writer.finish()
            #expect(try reading(bytes) { reader throws(WireError) in try reader.readSignedVarint("v") } == value)
            if (-64..<64).contains(value) { #expect(bytes.count == 1) }
        }
    }

    @Test func overlongAndOverflowingVarintsAreMalformed() {
        #expect(throws: WireError.malformed("v: varint not in its shortest form")) {
            try reading([0x80, 0x00]) { reader throws(WireError) in try reader.readVarint("v") }
        }
        #expect(throws: WireError.malformed("v: varint overflows 64 bits")) {
            try reading([UInt8](repeating: 0xFF, count: 9) + [0x02]) { reader throws(WireError) in try reader.readVarint("v") }
        }
        #expect(throws: WireError.malformed("v: truncated")) {
            try reading([0xFF, 0xFF]) { reader throws(WireError) in try reader.readVarint("v") }
        }
    }

    @Test func hugeClaimedCountIsMalformedWithoutReserving() {
        var writer = BinaryWriter(reservingCapacity: 16)
        writer.writeVarint(UInt64(1_000_000_000))
        writer.writeZeros(10)
        #expect(throws: WireError.malformed("deltas: count 1000000000 with 10 bytes left")) {
            try reading(writer.finish()) { reader throws(WireError) in try reader.readArray("deltas", of: SessionDelta.self) }
        }
    }

    @Test func claimedLengthsBeyondTheInputAreMalformed() {
        #expect(throws: WireError.malformed("s: length 5 with 2 bytes left")) {
            try reading([5, 0x61, 0x62]) { reader throws(WireError) in try reader.readString("s") }
        }
        #expect(throws: WireError.malformed("b: length 200 with 1 bytes left")) {
            try reading([0xC8, 0x01, 0x00]) { reader throws(WireError) in try reader.readBytes("b") }
        }
        #expect(throws: WireError.malformed("id: truncated")) {
            try reading([UInt8](repeating: 1, count: 17)) { reader throws(WireError) in try reader.readSessionID("id") }
        }
    }

    @Test func invalidUTF8IsMalformed() {
        #expect(throws: WireError.malformed("s: not UTF-8")) {
            try reading([2, 0xC3, 0x28]) { reader throws(WireError) in try reader.readString("s") }
        }
    }

    @Test func sessionIDTravelsAsItsEighteenBigEndianBytes() throws {
        var writer = BinaryWriter(reservingCapacity: 18)
        writer.writeSessionID(SampleMessages.sessionA)
        let bytes = writer.finish()
        #expect(bytes == SampleMessages.sessionA.bytes)
        #expect(try reading(bytes) { reader throws(WireError) in try reader.readSessionID("id") } == SampleMessages.sessionA)
    }

    @Test func errorCodesAreStable() {
        let errors: [WireError] = [
            .truncated, .badMagic, .unsupportedVersion(9), .unknownFrameType(9), .frameTooLarge(bytes: 2, limit: 1),
            .authenticationFailed, .decompressedTooLarge(claimed: 2, limit: 1), .decompressionFailed, .malformed("x"),
            .unknownKeyID(1), .handshakeFailed("x"), .senderMismatch(expected: "a", got: "b"),
        ]
        #expect(errors.map(\.code) == Array(100...111))
    }
}
