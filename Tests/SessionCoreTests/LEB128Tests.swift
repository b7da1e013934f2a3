@testable import SessionCore
import Testing

/// The one varint: every width the project reads it at, its limits and its refusals.
@Suite struct LEB128Tests {
    func read(_ type: UInt64.Type, _ bytes: [UInt8]) -> (Result<UInt64, LEB128.ReadFailure>, offset: Int) {
        var offset = 0
        let result = bytes.withUnsafeBytes { LEB128.read(type, from: $0, at: &offset) }
        return (result, offset)
    }

    func read(_ type: UInt32.Type, _ bytes: [UInt8]) -> (Result<UInt32, LEB128.ReadFailure>, offset: Int) {
        var offset = 0
        let result = bytes.withUnsafeBytes { LEB128.read(type, from: $0, at: &offset) }
        return (result, offset)
    }

    func read(_ type: UInt128.Type, _ bytes: [UInt8]) -> (Result<UInt128, LEB128.ReadFailure>, offset: Int) {
        var offset = 0
        let result = bytes.withUnsafeBytes { LEB128.read(type, from: $0, at: &offset) }
        return (result, offset)
    }

    @Test func valuesRoundTripAndTakeTheBytesByteCountSays() throws {
        let values: [UInt64] = [0, 1, 127, 128, 255, 16_383, 16_384, UInt64(UInt32.max), 1 << 56, UInt64.max]
        for value in values {
            var bytes: [UInt8] = []
            LEB128.append(value, to: &bytes)
            #expect(bytes.count == LEB128.byteCount(value), "\(value)")
            let (result, offset) = read(UInt64.self, bytes)
            #expect(try result.get() == value)
            #expect(offset == bytes.count)
        }
        #expect(LEB128.byteCount(UInt64.max) == 10)
        #expect(LEB128.byteCount(UInt128.max) == 19)
        var written = [UInt8](repeating: 0, count: 10)
        var cursor = 0
        written.withUnsafeMutableBytes { LEB128.write(UInt64(300), into: $0, at: &cursor) }
        #expect(Array(written[..<cursor]) == [0xAC, 0x02])
    }

    @Test func eachWidthRefusesAValueItCannotHold() throws {
        // UInt32: the fifth byte carries four bits and no continuation.
        #expect(try read(UInt32.self, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).0.get() == UInt32.max)
        #expect(read(UInt32.self, [0xFF, 0xFF, 0xFF, 0xFF, 0x10]).0 == .failure(.overflow))
        #expect(read(UInt32.self, [0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).0 == .failure(.overflow))
        // UInt64: the tenth byte carries one bit.
        #expect(try read(UInt64.self, [UInt8](repeating: 0xFF, count: 9) + [0x01]).0.get() == UInt64.max)
        #expect(read(UInt64.self, [UInt8](repeating: 0xFF, count: 9) + [0x02]).0 == .failure(.overflow))
        // UInt128: the nineteenth byte carries two bits.
        #expect(try read(UInt128.self, [UInt8](repeating: 0xFF, count: 18) + [0x03]).0.get() == UInt128.max)
        #expect(read(UInt128.self, [UInt8](repeating: 0xFF, count: 18) + [0x04]).0 == .failure(.overflow))
    }

    @Test func onlyTheShortestFormIsAcceptedAndAFailureDoesNotMove() throws {
        let (overlong, offset) = read(UInt64.self, [0x81, 0x00])
        #expect(overlong == .failure(.notShortest))
        #expect(offset == 0)
        #expect(try read(UInt64.self, [0x00]).0.get() == 0)
        let (truncated, after) = read(UInt64.self, [0xFF, 0xFF])
        #expect(truncated == .failure(.truncated))
        #expect(after == 0)
        #expect(read(UInt64.self, []).0 == .failure(.truncated))
    }
}
