import ClusterProtocol
import SessionCore
import Testing
@testable import WireFormat

/// What a TCP link sends: everything for the peer in one flush as one frame (a bundle when
/// there are several messages), compressed against the bodies the link carried before.
@Suite struct LinkFramingTests {
    let codec = SampleMessages.codec()

    /// A one-delta batch as an owner sends it for a single-attribute update.
    static func smallBatch(_ index: Int) -> ClusterMessage {
        let id = SessionID(high: 0x5EED_0000 &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15, low: UInt64(index) &* 0xC2B2_AE3D, tail: UInt16(truncatingIfNeeded: index))
        let flash = #"{"level":"info","text":"Added to your cart: Merino wool crew socks, charcoal (\#(index))","n":1}"#
        let delta = SessionDelta(
            id: id, kind: .update, version: SessionVersion(rawValue: UInt64(10 + index)), previousVersion: SessionVersion(rawValue: UInt64(9 + index)),
            lastAccessedAt: Timestamp(milliseconds: 1_764_169_800_000 + Int64(index)),
            attributes: [AttributeChange(name: "flash", stamp: SessionVersion(rawValue: UInt64(10 + index)), value: AttributeValue(string: flash))])
        return .deltaBatch(DeltaBatch(from: "app-server-1", viewEpoch: 12, sequence: UInt64(index), deltas: [delta]))
    }

    @Test func bundleCarriesEveryMessageInOrderInOneSmallerFrame() throws {
        let messages = SampleMessages.all.map(\.message)
        let bundle = codec.encode(messages, over: LinkHistory())
        let separately = messages.reduce(0) { $0 + codec.encode($1).bytes.count }
        #expect(bundle.bytes.count < separately)
        let decoded = try bundle.bytes.withUnsafeBytes { try codec.decode($0, over: LinkHistory()) }
        #expect(decoded == messages)
    }

    @Test func linkHistoryShrinksSmallFramesThatRepeatTheLink() throws {
        let sender = LinkHistory()
        let receiver = LinkHistory()
        var linked = 0
        var alone = 0
        for index in 0..<200 {
            let message = Self.smallBatch(index)
            let frame = codec.encode([message], over: sender)
            #expect(try frame.bytes.withUnsafeBytes { try codec.decode($0, over: receiver) } == [message], "frame \(index)")
            if index >= 100 {
                linked += frame.bytes.count
                alone += codec.encode(message).bytes.count
            }
        }
        print("one-delta batch: \(alone / 100) B alone, \(linked / 100) B over a link")
        #expect(linked * 3 < alone * 2, "the link history saves at least a third: \(linked) vs \(alone)")
    }

    @Test func linkedFrameNeedsItsLinksHistory() throws {
        let sender = LinkHistory()
        _ = codec.encode([Self.smallBatch(0)], over: sender)
        let second = codec.encode([Self.smallBatch(1)], over: sender)
        let header = try #require(try second.bytes.withUnsafeBytes { try FrameHeader.parse($0, configuration: codec.configuration) })
        try #require(header.linked)
        // A datagram (no link) may not refer to a history.
        #expect(codec.decodingError(second.bytes) == .malformed("header.flags: compressed against a link history outside a link"))
        // A receiver that missed the first frame cannot rebuild the second: typed error, no crash.
        let fresh = LinkHistory()
        let result = Result { () throws(WireError) in try second.bytes.withUnsafeBytesTyped { (b) throws(WireError) in try codec.decode(b, over: fresh) } }
        if case .success(let messages) = result { Issue.record("decoded \(messages) without the history it refers to") }
        // Linked without compressed is refused from the header.
        var flags = codec.unsealed(codec.encode(SampleMessages.message(.heartbeat)).bytes)
        flags[4] = FrameHeader.linkedFlag
        #expect(codec.decodingError(codec.resealed(flags)) == .malformed("header.flags: history without compression"))
    }

    @Test func badBundlesAreTypedErrors() {
        func body(_ parts: [(UInt8, [UInt8])], count: Int? = nil) -> [UInt8] {
            var writer = BinaryWriter(reservingCapacity: 256)
            writer.writeVarint(UInt64(count ?? parts.count))
            for (type, bytes) in parts {
                writer.writeByte(type)
                writer.writeBytes(bytes)
            }
            return writer.finish()
        }
        func error(_ body: [UInt8]) -> WireError? {
            codec.decodingError(codec.frame(type: FrameCodec.bundleType, body: body, compress: false))
        }
        let ack = (FrameType.deltaAck.rawValue, codec.body(of: SampleMessages.message(.deltaAck)))
        let heartbeat = (FrameType.heartbeat.rawValue, codec.body(of: SampleMessages.message(.heartbeat)))
        // Sound bundles decode, but not as a single message.
        #expect(error(body([ack, heartbeat])) == .malformed("bundle: 2 messages where one was expected"))
        #expect(error(body([ack])) == .malformed("bundle.count: 1 messages in \(1 + 1 + ack.1.count) bytes"))
        #expect(error(body([ack, heartbeat], count: 200)) != nil)
        #expect(error(body([ack, (FrameCodec.bundleType, body([ack, heartbeat]))])) == .malformed("bundle.type: a bundle inside a bundle"))
        #expect(error(body([ack, (77, [1, 2, 3])])) == .unknownFrameType(77))
        #expect(error(body([ack, (heartbeat.0, Array(heartbeat.1.dropLast()))])) != nil)
        #expect(error(body([ack, heartbeat]) + [0]) == .malformed("bundle: 1 bytes after the end"))
        if case .malformed(let path) = error(body([ack, (heartbeat.0, heartbeat.1 + [9])])) {
            #expect(path.hasPrefix("bundle.heartbeat."), "\(path)")
        } else {
            Issue.record("a bad message inside a bundle is malformed")
        }
    }

    /// The sender compresses in place after its history and keeps LZ4's tables between
    /// bodies; the receiver decompresses against its last `windowBytes`. Over thousands of
    /// bodies of every size (a small window, so that the sender slides often and old text
    /// repeats from beyond the window; bodies sent uncompressed; bodies larger than the
    /// window and than the sender's buffer), both keep the same dictionary.
    @Test(arguments: [1_024, LinkHistory.defaultWindowBytes])
    func streamedSenderAndWindowedReceiverAgreeOverManyBodies(windowBytes: Int) throws {
        var random = SeededRandom(seed: 0x5EED_1111 &+ UInt64(windowBytes))
        let vocabulary = (0..<64).map { _ in (0..<40).map { _ in UInt8(truncatingIfNeeded: random.next() % 26 + 97) } }
        let sender = LinkHistory(windowBytes: windowBytes)
        let receiver = LinkHistory(windowBytes: windowBytes)
        var raw = 0
        var compressed = 0
        for index in 0..<3_000 {
            let roll = random.next() % 100
            let chunks: Int =
                roll < 85 ? 1 + Int(random.next() % 10) : roll < 97 ? 50 + Int(random.next() % 200) : 1_700 + Int(random.next() % 3_300)
            var body = [UInt8]()
            for _ in 0..<chunks { body += vocabulary[Int(random.next() % UInt64(vocabulary.count))] }
            if random.next() % 10 == 0 {
                // Sent uncompressed: both sides record it all the same.
                body.withUnsafeBytes { sender.record($0) }
                body.withUnsafeBytes { receiver.record($0) }
                continue
            }
            let (decoded, written) = try Self.carry(body, from: sender, to: receiver)
            #expect(decoded == body, "body \(index) of \(body.count) B")
            guard decoded == body else { return }
            if chunks <= 10 {
                raw += body.count
                compressed += written
            }
        }
        // Small bodies repeat the link's recent text: a window that holds the vocabulary
        // still does its work.
        guard windowBytes > 64 * 40 else { return }
        #expect(compressed * 2 < raw, "\(compressed) B of \(raw) B")
    }

    /// A history of 1 to 7 bytes is too small for LZ4 to load as a dictionary. The sender
    /// must not then take its stream for the window (trimming it in place moved the wrong
    /// bytes over the history). Every later body decodes, also after the sender's buffer
    /// slides and the dictionary is loaded from that history again.
    @Test(arguments: 1...7)
    func aHistoryTooSmallForLZ4LeavesBothSidesInStep(tinyBytes: Int) throws {
        let sender = LinkHistory()
        let receiver = LinkHistory()
        let tiny = (0..<tinyBytes).map { UInt8(0x30 + $0) }
        tiny.withUnsafeBytes { sender.record($0) }
        tiny.withUnsafeBytes { receiver.record($0) }
        var random = SeededRandom(seed: 0x7155 &+ UInt64(tinyBytes))
        // About 120 KB in all: more than the sender's buffer holds, so it slides and reloads.
        for index in 0..<400 {
            let body = (0..<(100 + Int(random.next() % 400))).map { _ in UInt8(truncatingIfNeeded: 0x41 + random.next() % 8) }
            let decoded = try Self.carry(body, from: sender, to: receiver).decoded
            #expect(decoded == body, "body \(index)")
            guard decoded == body else { return }
        }
    }

    /// One compressed body over a link, as the codec carries it: compressed against the
    /// sender's history and recorded there, decompressed against the receiver's and
    /// recorded there. Returns what the receiver got and the compressed size.
    static func carry(_ body: [UInt8], from sender: LinkHistory, to receiver: LinkHistory) throws -> (decoded: [UInt8], compressedBytes: Int) {
        var output = [UInt8](repeating: 0, count: LZ4.compressBound(body.count))
        let written = try #require(body.withUnsafeBytes { input in output.withUnsafeMutableBytes { sender.compress(input, into: $0) } })
        body.withUnsafeBytes { sender.record($0) }
        let decoded = try output[..<written].withUnsafeBytes { try receiver.decompress($0, expectedCount: body.count) }
        decoded.withUnsafeBytes { receiver.record($0) }
        return (decoded, written)
    }

    /// Seeded mutations of bundle bodies, sealed again, over a link: each decodes to messages
    /// or to a typed error.
    @Test(.tags(.fuzzing)) func mutatedBundlesDecodeToMessagesOrATypedError() throws {
        var random = SeededRandom(seed: 0xB0_4D1E)
        var generator = MessageGenerator(seed: 0xB0_4D1F)
        var outcomes: [String: Int] = [:]
        for iteration in 0..<4_000 {
            let messages = (0..<(2 + Int(random.next() % 4))).map { _ in generator.message() }
            var body = FrameCodec.bundleBody(of: messages)
            for _ in 0..<(1 + random.next() % 3) where !body.isEmpty {
                let position = Int(random.next() % UInt64(body.count))
                switch random.next() % 3 {
                case 0: body[position] ^= 1 << UInt8(random.next() % 8)
                case 1: body.remove(at: position)
                default: body.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                }
            }
            let sender = LinkHistory()
            let frame = codec.seal(type: FrameCodec.bundleType, body: body, mayCompress: random.next() & 1 == 0, history: sender)
            do {
                let decoded = try frame.bytes.withUnsafeBytesTyped { (b) throws(WireError) in try codec.decode(b, over: LinkHistory()) }
                outcomes["decoded", default: 0] += 1
                #expect(!decoded.isEmpty, "iteration \(iteration)")
            } catch {
                let kind =
                    switch error {
                    case .malformed: "malformed"
                    case .unknownFrameType: "unknownFrameType"
                    default: "\(error)"
                    }
                outcomes[kind, default: 0] += 1
                #expect(error != .authenticationFailed, "iteration \(iteration)")
            }
        }
        print("bundle mutation outcomes:", outcomes.sorted { $0.key < $1.key })
        #expect(outcomes["decoded", default: 0] > 0)
        #expect(outcomes.count > 2)
    }
}
