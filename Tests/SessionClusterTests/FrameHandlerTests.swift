import ClusterProtocol
import NIOCore
import NIOEmbedded
import SessionCore
import Synchronization
import Testing
import WireFormat

@testable import SessionCluster

/// What the handlers under test handed on.
final class FrameRecorder: Sendable {
    let frames = Mutex<[ReceivedFrame]>([])
    let rejections = Mutex<[UInt16]>([])

    var messages: [ClusterMessage] { frames.withLock { $0.flatMap(\.messages) } }
    var rejectionCodes: [UInt16] { rejections.withLock { $0 } }

    func onFrame(_ frame: ReceivedFrame) { frames.withLock { $0.append(frame) } }
    func onRejected(_ error: WireError, _ address: SocketAddress?) { rejections.withLock { $0.append(error.code) } }
}

enum Samples {
    static let key = [UInt8](repeating: 7, count: 32)
    static let codec = FrameCodec(configuration: try! WireConfiguration(clusterKey: key))
    static let member = Member(id: "a", address: PeerAddress(host: "127.0.0.1", port: 7001), incarnation: 1)

    static let heartbeat = ClusterMessage.heartbeat(
        Heartbeat(from: member, term: 3, viewEpoch: 9, sequence: 42, fromLeader: true))

    /// A batch big enough to be compressed on the wire.
    static let deltaBatch: ClusterMessage = {
        let id = SessionID(high: 1, low: 2, tail: 3)
        let value = AttributeValue(encoding: .utf8, bytes: Array(String(repeating: "cart item; ", count: 200).utf8))
        let delta = SessionDelta(
            id: id, kind: .update, version: 2, previousVersion: 1, lastAccessedAt: Timestamp(milliseconds: 1000),
            attributes: [AttributeChange(name: "cart", stamp: 2, value: value)])
        return .deltaBatch(DeltaBatch(from: "a", viewEpoch: 9, sequence: 1, deltas: [delta]))
    }()

    static func bytes(_ message: ClusterMessage, codec: FrameCodec = codec) -> [UInt8] {
        codec.encode(message).bytes
    }
}

struct FrameHandlerTests {
    private func makeStreamChannel(_ recorder: FrameRecorder) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(codec: Samples.codec)))
        try channel.pipeline.syncOperations.addHandler(
            InboundFrameHandler(onFrame: recorder.onFrame, onRejected: recorder.onRejected))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7002)).wait()
        return channel
    }

    @Test func framesSplitAcrossReadsDecodeOnceAndInOrder() throws {
        let recorder = FrameRecorder()
        let channel = try makeStreamChannel(recorder)
        let first = Samples.bytes(Samples.heartbeat)
        let second = Samples.bytes(Samples.deltaBatch)
        let stream = first + second
        for start in stride(from: 0, to: stream.count, by: 3) {
            try channel.writeInbound(ByteBuffer(bytes: stream[start..<min(start + 3, stream.count)]))
        }
        #expect(recorder.messages == [Samples.heartbeat, Samples.deltaBatch])
        #expect(recorder.frames.withLock { $0.map(\.wireBytes) } == [first.count, second.count])
        #expect(recorder.rejectionCodes.isEmpty)
        #expect(channel.isActive)
    }

    @Test func severalFramesInOneReadAllDecode() throws {
        let recorder = FrameRecorder()
        let channel = try makeStreamChannel(recorder)
        let stream = Samples.bytes(Samples.deltaBatch) + Samples.bytes(Samples.heartbeat) + Samples.bytes(Samples.heartbeat)
        try channel.writeInbound(ByteBuffer(bytes: stream))
        #expect(recorder.messages == [Samples.deltaBatch, Samples.heartbeat, Samples.heartbeat])
    }

    /// What a peer's runtime sends: frames encoded over the link's history, some of them
    /// bundles. The decoder keeps the matching history for the connection.
    @Test func linkFramesAndBundlesDecodeInOrderAgainstTheConnectionsHistory() throws {
        let recorder = FrameRecorder()
        let channel = try makeStreamChannel(recorder)
        let sender = LinkHistory()
        let flushes: [[ClusterMessage]] = [[Samples.deltaBatch], [Samples.heartbeat, Samples.deltaBatch], [Samples.deltaBatch]]
        let frames = flushes.map { Samples.codec.encode($0, over: sender).bytes }
        try channel.writeInbound(ByteBuffer(bytes: frames[0] + frames[1]))
        try channel.writeInbound(ByteBuffer(bytes: frames[2]))
        #expect(recorder.messages == flushes.flatMap { $0 })
        // Each frame is handed on whole, a bundle's messages together.
        #expect(recorder.frames.withLock { $0.map(\.messages) } == flushes)
        #expect(recorder.frames.withLock { $0.reduce(0) { $0 + $1.wireBytes } } == frames.reduce(0) { $0 + $1.count })
        #expect(recorder.rejectionCodes.isEmpty)
        // The last frame repeats the first, so the history made it far smaller.
        #expect(frames[2].count * 3 < frames[0].count * 2, "\(frames[2].count) B after \(frames[0].count) B")

        // A new connection starts a new history: a frame that needs the old one is refused.
        let other = FrameRecorder()
        let reconnected = try makeStreamChannel(other)
        _ = try? reconnected.writeInbound(ByteBuffer(bytes: frames[2]))
        #expect(other.messages.isEmpty)
        #expect(other.rejectionCodes.count == 1)
        #expect(!reconnected.isActive)
    }

    @Test func alteredFrameClosesTheLinkAndIsCounted() throws {
        let recorder = FrameRecorder()
        let channel = try makeStreamChannel(recorder)
        var altered = Samples.bytes(Samples.heartbeat)
        altered[altered.count - 1] ^= 0xFF
        _ = try channel.writeInbound(ByteBuffer(bytes: altered + Samples.bytes(Samples.heartbeat)))
        #expect(recorder.messages.isEmpty)
        #expect(recorder.rejectionCodes == [WireError.authenticationFailed.code])
        #expect(!channel.isActive)
    }

    @Test func frameSignedWithAnotherClusterKeyIsRefused() throws {
        let recorder = FrameRecorder()
        let channel = try makeStreamChannel(recorder)
        let stranger = FrameCodec(configuration: try WireConfiguration(clusterKey: [UInt8](repeating: 9, count: 32)))
        _ = try channel.writeInbound(ByteBuffer(bytes: Samples.bytes(Samples.heartbeat, codec: stranger)))
        #expect(recorder.messages.isEmpty)
        #expect(recorder.rejectionCodes == [WireError.authenticationFailed.code])
        #expect(!channel.isActive)
    }

    @Test func bytesThatAreNotAFrameCloseTheLink() throws {
        let recorder = FrameRecorder()
        let channel = try makeStreamChannel(recorder)
        _ = try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: example\r\n\r\n"))
        #expect(recorder.messages.isEmpty)
        #expect(recorder.rejectionCodes.count == 1)
        #expect(!channel.isActive)
    }

    @Test func badDatagramIsCountedAndTheSocketStaysOpen() throws {
        let recorder = FrameRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            DatagramFrameHandler(codec: Samples.codec, onFrame: recorder.onFrame, onRejected: recorder.onRejected))
        let sender = try SocketAddress(ipAddress: "127.0.0.1", port: 7003)
        try channel.connect(to: sender).wait()
        try channel.writeInbound(AddressedEnvelope(remoteAddress: sender, data: ByteBuffer(string: "not a frame")))
        try channel.writeInbound(AddressedEnvelope(remoteAddress: sender, data: ByteBuffer(bytes: Samples.bytes(Samples.heartbeat))))
        #expect(recorder.rejectionCodes.count == 1)
        #expect(recorder.messages == [Samples.heartbeat])
        #expect(channel.isActive)
    }

    @Test func everyMessageNamesItsSenderForPerPeerMetrics() {
        #expect(Samples.heartbeat.senderID == "a")
        #expect(Samples.deltaBatch.senderID == "a")
        #expect(ClusterMessage.error(ProtocolErrorMessage(code: 1, message: "x")).senderID == nil)
    }
}
