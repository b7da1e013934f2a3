import ClusterProtocol
import NIOCore
import WireFormat

/// One frame taken off a link: its messages, in order (one, or a bundle's), and the bytes
/// it took on the wire. A frame travels the pipeline whole: a value this small is not boxed
/// by `NIOAny`, where one message per read cost an allocation each.
struct ReceivedFrame: Sendable {
    var messages: [ClusterMessage]
    var wireBytes: Int
}

/// Cuts a TCP byte stream into frames with ``FrameCodec/frameLength(peeking:)`` and decodes
/// each one against the connection's ``LinkHistory``, passing on each frame's messages
/// together. A frame may arrive split across any number of reads; several frames may
/// arrive in one. A bad frame throws its `WireError`,
/// which ``InboundFrameHandler`` counts before it closes the link.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ReceivedFrame

    let codec: FrameCodec
    /// One per connection: the pipeline makes a decoder for each channel.
    let history = LinkHistory()

    init(codec: FrameCodec) {
        self.codec = codec
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let (codec, history) = (self.codec, self.history)
        let length = try buffer.withUnsafeReadableBytes { bytes throws(WireError) in try codec.frameLength(peeking: bytes) }
        guard let length, buffer.readableBytes >= length else { return .needMoreData }
        let messages = try buffer.withUnsafeReadableBytes { bytes throws(WireError) in
            try codec.decode(UnsafeRawBufferPointer(rebasing: bytes[..<length]), over: history)
        }
        buffer.moveReaderIndex(forwardBy: length)
        context.fireChannelRead(wrapInboundOut(ReceivedFrame(messages: messages, wireBytes: length)))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
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
        case .success(let message): onFrame(ReceivedFrame(messages: [message], wireBytes: envelope.data.readableBytes))
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
