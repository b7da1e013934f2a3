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

/// The connecting end of a peer connection, as a node's link runs it: answers the
/// acceptor's challenge with a hello from `sender` and encodes frames with the
/// connection's codec over its history.
struct TestConnector {
    let codec: FrameCodec
    let hello: [UInt8]
    let history = LinkHistory()

    init(answering challenge: [UInt8], from sender: NodeID = "a", clusterCodec: FrameCodec = Samples.codec) {
        let nonce = LinkHandshake.nonce()
        hello = LinkHandshake.hello(answering: challenge, nonce: nonce, from: sender, codec: clusterCodec)
        codec = LinkHandshake.linkCodec(
            clusterCodec, keyID: clusterCodec.sendingKeyID, challenge: challenge, nonce: nonce, connector: sender)!
    }

    func frame(_ messages: ClusterMessage...) -> [UInt8] { codec.encode(messages, over: history).bytes }
}

struct FrameHandlerTests {
    static let challenge = LinkHandshake.nonce()

    /// An accepted connection's pipeline; the connector's hello is already read unless `hello` is false.
    private func makeStreamChannel(
        _ recorder: FrameRecorder, connector: TestConnector = TestConnector(answering: challenge), hello: Bool = true
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(codec: Samples.codec, challenge: Self.challenge)))
        try channel.pipeline.syncOperations.addHandler(
            InboundFrameHandler(onFrame: recorder.onFrame, onRejected: recorder.onRejected))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7002)).wait()
        if hello { try channel.writeInbound(ByteBuffer(bytes: connector.hello)) }
        return channel
    }

    @Test func framesSplitAcrossReadsDecodeOnceAndInOrder() throws {
        let recorder = FrameRecorder()
        let connector = TestConnector(answering: Self.challenge)
        let channel = try makeStreamChannel(recorder, connector: connector, hello: false)
        // The hello and the frames after it, three bytes per read.
        let first = connector.frame(Samples.heartbeat)
        let second = connector.frame(Samples.deltaBatch)
        let stream = connector.hello + first + second
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
        let connector = TestConnector(answering: Self.challenge)
        let channel = try makeStreamChannel(recorder, connector: connector)
        let stream = connector.frame(Samples.deltaBatch) + connector.frame(Samples.heartbeat) + connector.frame(Samples.heartbeat)
        try channel.writeInbound(ByteBuffer(bytes: stream))
        #expect(recorder.messages == [Samples.deltaBatch, Samples.heartbeat, Samples.heartbeat])
    }

    /// What a peer's runtime sends: frames encoded over the link's history, some of them
    /// bundles. The decoder keeps the matching history for the connection.
    @Test func linkFramesAndBundlesDecodeInOrderAgainstTheConnectionsHistory() throws {
        let recorder = FrameRecorder()
        let connector = TestConnector(answering: Self.challenge)
        let channel = try makeStreamChannel(recorder, connector: connector)
        let flushes: [[ClusterMessage]] = [[Samples.deltaBatch], [Samples.heartbeat, Samples.deltaBatch], [Samples.deltaBatch]]
        let frames = flushes.map { connector.codec.encode($0, over: connector.history).bytes }
        try channel.writeInbound(ByteBuffer(bytes: frames[0] + frames[1]))
        try channel.writeInbound(ByteBuffer(bytes: frames[2]))
        #expect(recorder.messages == flushes.flatMap { $0 })
        // Each frame is handed on whole, a bundle's messages together.
        #expect(recorder.frames.withLock { $0.map(\.messages) } == flushes)
        #expect(recorder.frames.withLock { $0.reduce(0) { $0 + $1.wireBytes } } == frames.reduce(0) { $0 + $1.count })
        #expect(recorder.rejectionCodes.isEmpty)
        // The last frame repeats the first, so the history made it far smaller.
        #expect(frames[2].count * 3 < frames[0].count * 2, "\(frames[2].count) B after \(frames[0].count) B")
    }

    /// A captured connection replayed byte for byte onto a new connection meets a new
    /// challenge: its hello is refused before any frame is read.
    @Test func aCapturedStreamReplayedOnANewConnectionIsRefusedAtItsHello() throws {
        let captured = TestConnector(answering: LinkHandshake.nonce())
        let stream = captured.hello + captured.frame(Samples.deltaBatch) + captured.frame(Samples.heartbeat)
        let recorder = FrameRecorder()
        let channel = try makeStreamChannel(recorder, hello: false)
        _ = try? channel.writeInbound(ByteBuffer(bytes: stream))
        #expect(recorder.messages.isEmpty)
        #expect(recorder.rejectionCodes == [WireError.handshakeFailed("").code])
        #expect(!channel.isActive)
    }

    /// Within a connection, a frame sent again (or dropped, or reordered) has the wrong
    /// number for its place and fails authentication.
    @Test func aFrameReplayedWithinItsConnectionIsRefused() throws {
        let recorder = FrameRecorder()
        let connector = TestConnector(answering: Self.challenge)
        let channel = try makeStreamChannel(recorder, connector: connector)
        let first = connector.frame(Samples.heartbeat)
        try channel.writeInbound(ByteBuffer(bytes: first))
        _ = try? channel.writeInbound(ByteBuffer(bytes: first))
        #expect(recorder.messages == [Samples.heartbeat])
        #expect(recorder.rejectionCodes == [WireError.authenticationFailed.code])
        #expect(!channel.isActive)
    }

    /// A connection speaks for the node its hello named, and no other.
    @Test func aMessageFromAnotherNodeThanTheHelloNamedIsRefused() throws {
        let recorder = FrameRecorder()
        let connector = TestConnector(answering: Self.challenge, from: "b")
        let channel = try makeStreamChannel(recorder, connector: connector)
        _ = try? channel.writeInbound(ByteBuffer(bytes: connector.frame(Samples.heartbeat)))
        #expect(recorder.messages.isEmpty)
        #expect(recorder.rejectionCodes == [WireError.senderMismatch(expected: "b", got: "a").code])
        #expect(!channel.isActive)
    }

    /// A view names its leader and a forwarded join request its joiner, yet any member
    /// passes them on: they are not held to the connection's sender.
    @Test func aViewOrAJoinRequestPassedOnByTheConnectionsNodeIsAccepted() throws {
        let recorder = FrameRecorder()
        let connector = TestConnector(answering: Self.challenge, from: "b")
        let channel = try makeStreamChannel(recorder, connector: connector)
        let leader = Member(id: "L", address: PeerAddress(host: "127.0.0.1", port: 7009), incarnation: 1)
        let view = ClusterMessage.view(View(term: 2, epoch: 5, leader: "L", members: [leader]))
        let join = ClusterMessage.joinRequest(JoinRequest(from: Samples.member, leaving: false))
        try channel.writeInbound(ByteBuffer(bytes: connector.frame(view, join)))
        #expect(recorder.messages == [view, join])
        #expect(recorder.rejectionCodes.isEmpty)
        #expect(channel.isActive)
    }

    /// A listener that accepts and never challenges does not hold the link's frames forever.
    @Test func theInitiatorGivesUpWhenNoChallengeComes() throws {
        let recorder = FrameRecorder()
        let loop = EmbeddedEventLoop()
        let connector = EmbeddedChannel(loop: loop)
        try connector.pipeline.syncOperations.addHandler(
            HandshakeInitiator(
                codec: Samples.codec, sender: "a", timeout: .milliseconds(500), onEstablished: { _ in },
                onRejected: recorder.onRejected))
        try connector.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7002)).wait()
        loop.advanceTime(by: .milliseconds(400))
        #expect(connector.isActive)
        loop.advanceTime(by: .milliseconds(200))
        #expect(!connector.isActive)
        #expect(recorder.rejectionCodes == [WireError.handshakeFailed("").code])
    }

    @Test func alteredFrameClosesTheLinkAndIsCounted() throws {
        let recorder = FrameRecorder()
        let connector = TestConnector(answering: Self.challenge)
        let channel = try makeStreamChannel(recorder, connector: connector)
        var altered = connector.frame(Samples.heartbeat)
        altered[altered.count - 1] ^= 0xFF
        _ = try channel.writeInbound(ByteBuffer(bytes: altered + connector.frame(Samples.heartbeat)))
        #expect(recorder.messages.isEmpty)
        #expect(recorder.rejectionCodes == [WireError.authenticationFailed.code])
        #expect(!channel.isActive)
    }

    @Test func aHelloUnderAnotherClusterKeyIsRefused() throws {
        let recorder = FrameRecorder()
        let stranger = FrameCodec(configuration: try WireConfiguration(clusterKey: [UInt8](repeating: 9, count: 32)))
        let connector = TestConnector(answering: Self.challenge, clusterCodec: stranger)
        let channel = try makeStreamChannel(recorder, connector: connector, hello: false)
        _ = try? channel.writeInbound(ByteBuffer(bytes: connector.hello + connector.frame(Samples.heartbeat)))
        #expect(recorder.messages.isEmpty)
        #expect(recorder.rejectionCodes == [WireError.handshakeFailed("").code])
        #expect(!channel.isActive)
    }

    @Test func bytesThatAreNotAFrameCloseTheLink() throws {
        let recorder = FrameRecorder()
        let channel = try makeStreamChannel(recorder, hello: false)
        _ = try? channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: example\r\n\r\n"))
        #expect(recorder.messages.isEmpty)
        #expect(recorder.rejectionCodes.count == 1)
        #expect(!channel.isActive)
    }

    /// The connecting side answers one challenge with one hello whose link codec the
    /// acceptor derives too, and refuses anything else the acceptor might send.
    @Test func theInitiatorAnswersTheChallengeAndAgreesOnTheLinkCodec() throws {
        let established = Mutex<FrameCodec?>(nil)
        let recorder = FrameRecorder()
        let connector = EmbeddedChannel()
        try connector.pipeline.syncOperations.addHandler(
            HandshakeInitiator(
                codec: Samples.codec, sender: "a", onEstablished: { codec in established.withLock { $0 = codec } },
                onRejected: recorder.onRejected))
        try connector.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7002)).wait()
        try connector.writeInbound(ByteBuffer(bytes: LinkHandshake.challenge(nonce: Self.challenge)))
        let hello = try #require(try connector.readOutbound(as: ByteBuffer.self))
        let linkCodec = try #require(established.withLock { $0 })
        // The acceptor reads the hello and decodes what the link codec encodes.
        let acceptor = try makeStreamChannel(recorder, hello: false)
        try acceptor.writeInbound(hello)
        try acceptor.writeInbound(ByteBuffer(bytes: linkCodec.encode([Samples.heartbeat], over: LinkHistory()).bytes))
        #expect(recorder.messages == [Samples.heartbeat])
        // More bytes after the challenge: refused.
        _ = try? connector.writeInbound(ByteBuffer(bytes: [1, 2, 3]))
        #expect(recorder.rejectionCodes == [WireError.handshakeFailed("").code])
        #expect(!connector.isActive)
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
