import ClusterProtocol
import SessionCore
import Testing
@testable import WireFormat

@Suite struct RobustnessTests {
    let codec = SampleMessages.codec()

    @Test(arguments: SampleMessages.all.map(\.name))
    func everyTruncationIsRefusedAsTruncated(name: String) throws {
        let message = try #require(SampleMessages.all.first { $0.name == name }).message
        let frame = codec.encode(message).bytes
        for length in 0..<frame.count {
            #expect(codec.decodingError(Array(frame[..<length])) == .truncated, "\(name) cut at \(length) of \(frame.count)")
        }
    }

    @Test(arguments: SampleMessages.all.map(\.name))
    func frameLengthAnswersOnceTheHeaderIsThere(name: String) throws {
        let message = try #require(SampleMessages.all.first { $0.name == name }).message
        let encoded = codec.encode(message)
        let headerLength = try codec.unpack(encoded.bytes).header.headerLength
        let stream = encoded.bytes + codec.encode(message).bytes
        for available in 0...(headerLength + 2) {
            let length = try stream.withUnsafeBytes { buffer throws(WireError) in
                try codec.frameLength(peeking: UnsafeRawBufferPointer(rebasing: buffer[..<available]))
            }
            #expect(length == (available < headerLength ? nil : encoded.bytes.count), "\(name) with \(available) bytes")
        }
    }

    /// What a TCP link does: bytes arrive in arbitrary pieces; `frameLength` says when the
    /// buffer holds a whole frame, which is cut off and decoded.
    @Test func aByteStreamInRandomPiecesSplitsIntoItsFrames() throws {
        var generator = MessageGenerator(seed: 0x57_2E_A1)
        let messages = (0..<200).map { _ in generator.message() } + SampleMessages.all.map(\.message)
        let stream = messages.flatMap { codec.encode($0).bytes }
        var buffer: [UInt8] = []
        var received: [ClusterMessage] = []
        var offset = 0
        while offset < stream.count {
            let piece = 1 + Int(generator.random.next() % 700)
            buffer += stream[offset..<min(stream.count, offset + piece)]
            offset += piece
            while let length = try buffer.withUnsafeBytesTyped({ (bytes) throws(WireError) in try codec.frameLength(peeking: bytes) }),
                  buffer.count >= length {
                received.append(try codec.decode(Array(buffer[..<length])))
                buffer.removeFirst(length)
            }
        }
        #expect(buffer.isEmpty)
        #expect(received == messages)
    }

    @Test func wrongClusterKeyIsRefused() throws {
        let other = SampleMessages.codec(key: Array("another-cluster-key-with-enough-bytes".utf8))
        for (name, message) in SampleMessages.all {
            #expect(other.decodingError(codec.encode(message).bytes) == .authenticationFailed, "\(name)")
        }
    }

    @Test func everySingleBitFlipWithoutResealingIsRefused() {
        let frame = codec.encode(SampleMessages.message(.heartbeat)).bytes
        for bit in 0..<(frame.count * 8) {
            var mutated = frame
            mutated[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(codec.decodingError(mutated) != nil, "bit \(bit)")
        }
    }

    @Test func clusterKeyShorterThanSixteenBytesIsRejected() throws {
        #expect(throws: ClusterKeyError.tooShort(bytes: 15, minimum: 16)) {
            try WireConfiguration(clusterKey: Array(repeating: 7, count: 15))
        }
        #expect(throws: ClusterKeyError.tooShort(bytes: 0, minimum: 16)) { try WireConfiguration(clusterKey: []) }
        #expect(try WireConfiguration(clusterKey: Array(repeating: 7, count: 16)).clusterKey.count == 16)
    }

    @Test func lz4BombIsRefusedBeforeDecompressing() throws {
        let oneGiB = 1 << 30
        let header = FrameHeader(
            version: 2, type: FrameType.deltaBatch.rawValue, compressed: true, linked: false, keyID: 0, bodyLength: 24,
            uncompressedLength: oneGiB)
        // 24 bytes of an LZ4 block that would expand a run of zeros.
        let bomb = codec.resealed(header: header, carrying: [0x1F, 0x00, 0x01, 0x00] + [UInt8](repeating: 0xFF, count: 20))
        let expected = WireError.decompressedTooLarge(claimed: oneGiB, limit: 64 * 1024 * 1024)
        #expect(codec.decodingError(bomb) == expected)
        #expect(throws: expected) { try bomb.withUnsafeBytes { buffer throws(WireError) in try codec.frameLength(peeking: buffer) } }
    }

    @Test func claimBeyondWhatLZ4CanExpandIsRefusedUnallocated() {
        let header = FrameHeader(
            version: 2, type: FrameType.deltaBatch.rawValue, compressed: true, linked: false, keyID: 0, bodyLength: 8,
            uncompressedLength: 60_000_000)
        let frame = codec.resealed(header: header, carrying: [UInt8](repeating: 0xFF, count: 8))
        #expect(codec.decodingError(frame) == .decompressionFailed)
    }

    @Test func compressedBodyThatDecompressesToAnotherSizeIsRefused() throws {
        let encoded = codec.encode(SampleMessages.message(.deltaBatch))
        try #require(encoded.compressed)
        let header = try codec.unpack(encoded.bytes).header
        let carried = codec.unsealed(encoded.bytes)[header.headerLength...]
        for change in [-1, 1, 1000] {
            var claim = header
            claim.uncompressedLength += change
            #expect(codec.decodingError(codec.resealed(header: claim, carrying: carried)) == .decompressionFailed, "claim changed by \(change)")
        }
    }

    @Test func framesOverMaxFrameBytesAreRefusedFromTheHeader() throws {
        var configuration = try WireConfiguration(clusterKey: SampleMessages.goldenKey)
        configuration.maxFrameBytes = 1024
        let small = FrameCodec(configuration: configuration)
        var generator = MessageGenerator(seed: 42)
        let noise = AttributeValue(bytes: (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.random.next()) })
        let delta = SessionDelta(
            id: SampleMessages.sessionA, kind: .update, version: 2, previousVersion: 1, lastAccessedAt: .zero,
            attributes: [AttributeChange(name: "blob", stamp: 2, value: noise)])
        let frame = small.encode(.deltaBatch(DeltaBatch(from: "n1", viewEpoch: 1, sequence: 1, deltas: [delta]))).bytes
        let expected = WireError.frameTooLarge(bytes: frame.count, limit: 1024)
        #expect(throws: expected) {
            try frame.withUnsafeBytes { buffer throws(WireError) in
                try small.frameLength(peeking: UnsafeRawBufferPointer(rebasing: buffer[..<FrameCodec.maximumHeaderBytes]))
            }
        }
        #expect(small.decodingError(frame) == expected)
        #expect(try codec.decode(frame) == .deltaBatch(DeltaBatch(from: "n1", viewEpoch: 1, sequence: 1, deltas: [delta])))
    }

    @Test func foreignBytesAreRefusedByTheirFirstBadByte() {
        #expect(throws: WireError.badMagic) { try [UInt8]("G".utf8).withUnsafeBytes { b throws(WireError) in try codec.frameLength(peeking: b) } }
        #expect(throws: WireError.badMagic) { try [UInt8]("GET / HTTP/1.1\r\n".utf8).withUnsafeBytes { b throws(WireError) in try codec.frameLength(peeking: b) } }
        #expect(throws: WireError.unsupportedVersion(3)) { try ([0x53, 0x43, 3] as [UInt8]).withUnsafeBytes { b throws(WireError) in try codec.frameLength(peeking: b) } }
        #expect(codec.decodingError([0x53, 0x43, 0]) == .unsupportedVersion(0))
        #expect(codec.decodingError([0x53, 0x43, 1]) == .unsupportedVersion(1), "version 1 had a 32-byte tag")
    }

    @Test func unknownFrameTypeAtAKnownVersionIsATypedError() {
        var unsealed = codec.unsealed(codec.encode(SampleMessages.message(.heartbeat)).bytes)
        for type: UInt8 in [0, 20, 200, 255] {
            unsealed[3] = type
            #expect(codec.decodingError(codec.resealed(unsealed)) == .unknownFrameType(type))
        }
    }

    @Test func unknownFlagsAndTrailingBytesAreMalformed() {
        let frame = codec.encode(SampleMessages.message(.heartbeat)).bytes
        var flagged = codec.unsealed(frame)
        flagged[4] |= 0b1000_0000
        #expect(codec.decodingError(codec.resealed(flagged)) == .malformed("header.flags: unknown bits 128"))
        #expect(codec.decodingError(frame + [0]) == .malformed("frame: 1 bytes after the frame"))
    }

    @Test func malformedBodyNamesTheField() {
        let body = codec.body(of: SampleMessages.message(.heartbeat))
        let frame = codec.frame(type: FrameType.heartbeat.rawValue, body: Array(body.dropLast()) + [7], compress: false)
        #expect(codec.decodingError(frame) == .malformed("heartbeat.fromLeader: 7 is not a boolean"))
        let longer = codec.frame(type: FrameType.heartbeat.rawValue, body: body + [0], compress: false)
        #expect(codec.decodingError(longer) == .malformed("heartbeat.body: 1 bytes after the end"))
    }

    /// Mutates whole frames (bit flips, byte changes, insertions, deletions, length-field
    /// edits) and bodies before framing, re-sealing each so that the parser is what judges.
    @Test(.tags(.fuzzing)) func seededMutationsDecodeToAMessageOrATypedError() throws {
        let seed: UInt64 = 0xF0F0_2026
        var random = SeededRandom(seed: seed)
        var generator = MessageGenerator(seed: seed ^ 0xABCD)
        var outcomes: [String: Int] = [:]
        let mutationCount = 24_000
        for iteration in 0..<mutationCount {
            let message = iteration % 3 == 0 ? SampleMessages.all[iteration / 3 % SampleMessages.all.count].message : generator.message()
            let mutationSeed = random.next()
            var mutator = SeededRandom(seed: mutationSeed)
            let mutated: [UInt8]
            if iteration % 2 == 0 {
                mutated = codec.resealed(Self.mutate(codec.unsealed(codec.encode(message).bytes), using: &mutator, headerAware: true))
            } else {
                let type = mutator.next() % 16 == 0 ? UInt8(truncatingIfNeeded: mutator.next()) : message.frameType.rawValue
                let body = Self.mutate(codec.body(of: message), using: &mutator, headerAware: false)
                mutated = codec.frame(type: type, body: body, compress: mutator.next() & 1 == 0)
            }
            do {
                let decoded = try codec.decode(mutated)
                outcomes["decoded", default: 0] += 1
                #expect(try codec.decode(codec.encode(decoded).bytes) == decoded, "iteration \(iteration), mutation seed \(mutationSeed)")
            } catch {
                outcomes[Self.kind(of: error), default: 0] += 1
                #expect(error != .authenticationFailed, "iteration \(iteration), mutation seed \(mutationSeed): resealed frame failed the MAC")
            }
        }
        print("mutation outcomes (seed \(seed)):", outcomes.sorted { $0.key < $1.key })
        #expect(outcomes.values.reduce(0, +) == mutationCount)
        #expect(outcomes["decoded", default: 0] > 100)
        #expect(outcomes["malformed", default: 0] > 1_000)
        #expect(outcomes["truncated", default: 0] > 0)
        #expect(outcomes["decompressionFailed", default: 0] > 0)
        #expect(outcomes["unknownFrameType", default: 0] > 0)
    }

    private static func kind(of error: WireError) -> String {
        switch error {
        case .truncated: "truncated"
        case .badMagic: "badMagic"
        case .unsupportedVersion: "unsupportedVersion"
        case .unknownFrameType: "unknownFrameType"
        case .frameTooLarge: "frameTooLarge"
        case .authenticationFailed: "authenticationFailed"
        case .decompressedTooLarge: "decompressedTooLarge"
        case .decompressionFailed: "decompressionFailed"
        case .malformed: "malformed"
        case .unknownKeyID: "unknownKeyID"
        case .handshakeFailed: "handshakeFailed"
        case .senderMismatch: "senderMismatch"
        }
    }

    /// One to three mutations of `bytes`. `headerAware` adds edits of the frame's length fields.
    private static func mutate(_ bytes: [UInt8], using random: inout SeededRandom, headerAware: Bool) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<(1 + random.next() % 3) {
            guard !bytes.isEmpty else {
                bytes.append(UInt8(truncatingIfNeeded: random.next()))
                continue
            }
            let position = Int(random.next() % UInt64(bytes.count))
            switch random.next() % (headerAware ? 7 : 6) {
            case 0: bytes[position] ^= 1 << UInt8(random.next() % 8)
            case 1: bytes[position] = UInt8(truncatingIfNeeded: random.next())
            case 2: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
            case 3: bytes.remove(at: position)
            case 4: bytes[position] = [0x00, 0x7F, 0x80, 0xFF][Int(random.next() % 4)]
            case 5:
                let end = min(bytes.count, position + 1 + Int(random.next() % 8))
                bytes.insert(contentsOf: bytes[position..<end], at: position)
            default:
                // A byte of the length varints (the body length, then the uncompressed length).
                let offset = FrameHeader.fixedLength + Int(random.next() % 4)
                guard bytes.count > offset else { continue }
                bytes[offset] = random.next() % 4 == 0 ? UInt8(truncatingIfNeeded: random.next()) : bytes[offset] ^ 0x80
            }
        }
        return bytes
    }
}

