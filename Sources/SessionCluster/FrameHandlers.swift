import ClusterProtocol
import NIOCore
import WireFormat

/// One frame taken off a link: its messages, in order (one, or a bundle's), and the bytes
/// it took on the wire. A frame travels the pipeline whole: a value this small is not boxed
/// by `NIOAny`, where one message per read cost an allocation each.
struct ReceivedFrame: Sendable {
    var messages: [ClusterMessage]
    var wireBytes: Int
    /// Who sent it: the node a connection's handshake authenticated, or the one a
    /// datagram's message names (nil for an error message).
    var sender: NodeID?
}

/// The accepting side of a peer connection: checks the connector's hello against the
/// challenge this side sent (``LinkHandshake``), then cuts the byte stream into frames with
/// ``FrameCodec/frameLength(peeking:)`` and decodes each with the connection's own codec and
/// ``LinkHistory``, passing on each frame's messages together, each of which must come from
/// the node the hello named. A frame may arrive split across any number of reads; several
/// frames may arrive in one. A bad hello or frame throws its `WireError`, which
/// ``InboundFrameHandler`` counts before it closes the link.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ReceivedFrame

    /// The cluster's codec: the keys a hello may be under.
    let codec: FrameCodec
    /// The nonce of the challenge this side sent.
    let challenge: [UInt8]
    /// With TLS: the hello must name a node the peer's certificate names.
    let requiresCertifiedSender: Bool
    /// After the hello: the connection's codec and the node it speaks for.
    private var link: (codec: FrameCodec, sender: NodeID)?
    /// One per connection: the pipeline makes a decoder for each channel.
    let history = LinkHistory()

    /// Told once the hello checked out.
    let onHello: @Sendable () -> Void

    init(codec: FrameCodec, challenge: [UInt8], requiresCertifiedSender: Bool = false, onHello: @escaping @Sendable () -> Void = {}) {
        self.codec = codec
        self.challenge = challenge
        self.requiresCertifiedSender = requiresCertifiedSender
        self.onHello = onHello
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let link else { return try readHello(&buffer, context: context) }
        let history = self.history
        let length = try buffer.withUnsafeReadableBytes { bytes throws(WireError) in try link.codec.frameLength(peeking: bytes) }
        guard let length, buffer.readableBytes >= length else { return .needMoreData }
        let messages = try buffer.withUnsafeReadableBytes { bytes throws(WireError) in
            try link.codec.decode(UnsafeRawBufferPointer(rebasing: bytes[..<length]), over: history)
        }
        for message in messages {
            if let sender = message.connectionSenderID, sender != link.sender {
                throw WireError.senderMismatch(expected: link.sender.rawValue, got: sender.rawValue)
            }
        }
        buffer.moveReaderIndex(forwardBy: length)
        context.fireChannelRead(wrapInboundOut(ReceivedFrame(messages: messages, wireBytes: length, sender: link.sender)))
        return .continue
    }

    private mutating func readHello(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) throws -> DecodingState {
        let (codec, challenge) = (self.codec, self.challenge)
        let hello = try buffer.withUnsafeReadableBytes { bytes throws(WireError) in
            try LinkHandshake.readHello(bytes, challenge: challenge, codec: codec)
        }
        guard let hello else { return .needMoreData }
        if requiresCertifiedSender {
            let names = PeerTLSContexts.peerNames(on: context.pipeline.syncOperations)
            guard names.contains(hello.sender.rawValue) else {
                throw WireError.handshakeFailed("hello names '\(hello.sender)', the peer's certificate \(names.sorted())")
            }
        }
        guard let linkCodec = LinkHandshake.linkCodec(
            codec, keyID: hello.keyID, challenge: challenge, nonce: hello.nonce, connector: hello.sender)
        else { throw WireError.unknownKeyID(hello.keyID) }
        buffer.moveReaderIndex(forwardBy: hello.length)
        link = (linkCodec, hello.sender)
        onHello()
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Sends the accepting side's challenge as soon as the connection is up.
final class ChallengeSender: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let challenge: [UInt8]

    init(challenge: [UInt8]) { self.challenge = challenge }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { send(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        send(context: context)
        context.fireChannelActive()
    }

    private func send(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapInboundOut(ByteBuffer(bytes: LinkHandshake.challenge(nonce: challenge))), promise: nil)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// The connecting side of a peer connection: waits for the acceptor's challenge, answers
/// with this node's hello and hands the connection's codec to `onEstablished`. The
/// acceptor sends nothing else; more bytes, or a bad challenge, close the connection after
/// `onRejected` counted it.
final class HandshakeInitiator: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let codec: FrameCodec
    private let sender: NodeID
    private let onEstablished: (FrameCodec) -> Void
    private let onRejected: @Sendable (WireError, SocketAddress?) -> Void
    private let timeout: TimeAmount
    private var received = ByteBuffer()
    private var established = false
    private var timer: Scheduled<Void>?

    init(
        codec: FrameCodec, sender: NodeID, timeout: Duration = .seconds(10), onEstablished: @escaping (FrameCodec) -> Void,
        onRejected: @escaping @Sendable (WireError, SocketAddress?) -> Void
    ) {
        self.codec = codec
        self.sender = sender
        self.timeout = TimeAmount(timeout)
        self.onEstablished = onEstablished
        self.onRejected = onRejected
    }

    /// A peer that accepts and never challenges (a paused process, a stranger's listener)
    /// would hold the link's frames forever: give up after the handshake timeout.
    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            guard !handler.established else { return }
            handler.reject(.handshakeFailed("no challenge within the handshake timeout"), context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !established else { return reject(.handshakeFailed("bytes after the challenge"), context: context) }
        received.writeBuffer(&bytes)
        do {
            let challenge = try received.withUnsafeReadableBytes { bytes throws(WireError) in try LinkHandshake.readChallenge(bytes) }
            guard let challenge else { return }
            guard received.readableBytes == LinkHandshake.challengeBytes else {
                return reject(.handshakeFailed("bytes after the challenge"), context: context)
            }
            let nonce = LinkHandshake.nonce()
            guard let linkCodec = LinkHandshake.linkCodec(
                codec, keyID: codec.sendingKeyID, challenge: challenge, nonce: nonce, connector: sender)
            else { return reject(.unknownKeyID(codec.sendingKeyID), context: context) }
            established = true
            timer?.cancel()
            timer = nil
            let hello = LinkHandshake.hello(answering: challenge, nonce: nonce, from: sender, codec: codec)
            context.writeAndFlush(NIOAny(ByteBuffer(bytes: hello)), promise: nil)
            onEstablished(linkCodec)
        } catch {
            reject(error, context: context)
        }
    }

    private func reject(_ error: WireError, context: ChannelHandlerContext) {
        onRejected(error, context.remoteAddress)
        context.close(promise: nil)
    }
}

/// The end of a peer link's pipeline: hands each decoded frame to `onFrame`, and closes
/// the link on the first bad frame after reporting its `WireError` to `onRejected`.
/// Other errors (a reset or timed-out connection) go to `onError` and close the link too.
final class InboundFrameHandler: ChannelInboundHandler {
    typealias InboundIn = ReceivedFrame

    private let onFrame: @Sendable (ReceivedFrame) -> Void
    private let onRejected: @Sendable (WireError, SocketAddress?) -> Void
    private let onError: @Sendable (any Error, SocketAddress?) -> Void

    init(
        onFrame: @escaping @Sendable (ReceivedFrame) -> Void, onRejected: @escaping @Sendable (WireError, SocketAddress?) -> Void,
        onError: @escaping @Sendable (any Error, SocketAddress?) -> Void = { _, _ in }
    ) {
        self.onFrame = onFrame
        self.onRejected = onRejected
        self.onError = onError
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onFrame(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wireError = Self.wireError(in: error) {
            onRejected(wireError, context.remoteAddress)
        } else {
            onError(error, context.remoteAddress)
        }
        context.close(promise: nil)
    }

    /// `ByteToMessageHandler` passes the decoder's error through, possibly wrapped.
    static func wireError(in error: any Error) -> WireError? {
        if let wireError = error as? WireError { return wireError }
        if let decoderError = error as? ByteToMessageDecoderError,
            case .dataReceivedInErrorState(let underlying, _) = decoderError
        {
            return underlying as? WireError
        }
        return nil
    }
}

/// The UDP side: each datagram is one frame. A bad datagram is counted and dropped; there
/// is no link to close. Socket errors go to `onError`.
final class DatagramFrameHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let codec: FrameCodec
    private let onFrame: @Sendable (ReceivedFrame) -> Void
    private let onRejected: @Sendable (WireError, SocketAddress?) -> Void
    private let onError: @Sendable (any Error, SocketAddress?) -> Void

    init(
        codec: FrameCodec, onFrame: @escaping @Sendable (ReceivedFrame) -> Void,
        onRejected: @escaping @Sendable (WireError, SocketAddress?) -> Void,
        onError: @escaping @Sendable (any Error, SocketAddress?) -> Void = { _, _ in }
    ) {
        self.codec = codec
        self.onFrame = onFrame
        self.onRejected = onRejected
        self.onError = onError
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let codec = self.codec
        let result: Result<ClusterMessage, WireError> = envelope.data.withUnsafeReadableBytes { bytes in
            do throws(WireError) { return .success(try codec.decode(bytes)) } catch { return .failure(error) }
        }
        switch result {
        case .success(let message): onFrame(ReceivedFrame(messages: [message], wireBytes: envelope.data.readableBytes, sender: message.senderID))
        case .failure(let error): onRejected(error, envelope.remoteAddress)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A refusal the kernel learnt from ICMP (ECONNREFUSED after a send to a stopped
        // peer) surfaces on the next read and leaves the channel open: the failure detector
        // notices the silence. Errors that close the channel are handled where it closes.
        onError(error, context.remoteAddress)
    }
}

extension ClusterMessage {
    /// The message's type and sequence numbers, for trace logs (never session contents).
    var traceSummary: String {
        switch self {
        case .heartbeat(let message): "heartbeat seq=\(message.sequence) term=\(message.term) epoch=\(message.viewEpoch)"
        case .heartbeatReply(let message): "heartbeatReply seq=\(message.sequence)"
        case .probeRequest: "probeRequest"
        case .probeReply: "probeReply"
        case .voteRequest(let message): "voteRequest term=\(message.term)"
        case .voteReply(let message): "voteReply term=\(message.term) granted=\(message.granted)"
        case .joinRequest(let message): "joinRequest leaving=\(message.leaving)"
        case .view(let view): "view epoch=\(view.epoch) members=\(view.members.count)"
        case .deltaBatch(let batch): "deltaBatch seq=\(batch.sequence) epoch=\(batch.viewEpoch) deltas=\(batch.deltas.count)"
        case .deltaAck(let ack): "deltaAck seq=\(ack.sequence) needSnapshots=\(ack.needSnapshots.count)"
        case .forwardedWrite(let write): "forwardedWrite \(write.requestID)"
        case .writeReply(let reply): "writeReply \(reply.requestID)"
        case .stateTransferRequest(let request): "stateTransferRequest id=\(request.transferID)"
        case .stateTransferChunk(let chunk): "stateTransferChunk id=\(chunk.transferID) index=\(chunk.index) last=\(chunk.last)"
        case .readRequest(let request): "readRequest \(request.requestID)"
        case .readReply(let reply): "readReply \(reply.requestID)"
        case .error(let error): "error code=\(error.code)"
        }
    }
}

extension ClusterMessage {
    /// The node that must have sent this message on its connection, for the handshake's
    /// one-sender rule; nil for the messages a node passes on unchanged: a view names its
    /// leader but any member sends it on to a peer that lags, and a join request names the
    /// joiner but a member that is not the leader forwards it.
    var connectionSenderID: NodeID? {
        switch self {
        case .view, .joinRequest: nil
        default: senderID
        }
    }
}
