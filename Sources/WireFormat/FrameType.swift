import ClusterProtocol
import SessionCore

/// The frame type byte: one per ``ClusterMessage`` case. Numbers are part of the format
/// and never reused; 0 is reserved.
enum FrameType: UInt8, CaseIterable, Sendable {
    case heartbeat = 1
    case heartbeatReply = 2
    case probeRequest = 3
    case probeReply = 4
    case voteRequest = 5
    case voteReply = 6
    case joinRequest = 7
    case view = 8
    case deltaBatch = 9
    case deltaAck = 10
    case forwardedWrite = 11
    case writeReply = 12
    case stateTransferRequest = 13
    case stateTransferChunk = 14
    case readRequest = 15
    case readReply = 16
    case error = 17
    // 18 is the bundle (`FrameCodec.bundleType`).
    /// A forwarded write that carries a deadline: its own type, so a node of an older
    /// release refuses it with a typed error (and closes the link) instead of misreading
    /// the extra field.
    case forwardedWriteWithDeadline = 19

    /// Batches are compressed whatever their size (when LZ4 shrinks them); other bodies
    /// only over the configured threshold.
    var alwaysCompressed: Bool { self == .deltaBatch || self == .stateTransferChunk }

    /// Case names by raw value, made once.
    static let names: [String] = {
        var names = Array(repeating: "", count: Int(allCases.map(\.rawValue).max()!) + 1)
        for type in allCases { names[Int(type.rawValue)] = "\(type)" }
        return names
    }()
}

extension ClusterMessage {
    /// The name of the message's frame type (`deltaBatch`, `deltaAck`, ...), for metrics.
    package var frameTypeName: String { FrameType.names[Int(frameType.rawValue)] }

    var frameType: FrameType {
        switch self {
        case .heartbeat: .heartbeat
        case .heartbeatReply: .heartbeatReply
        case .probeRequest: .probeRequest
        case .probeReply: .probeReply
        case .voteRequest: .voteRequest
        case .voteReply: .voteReply
        case .joinRequest: .joinRequest
        case .view: .view
        case .deltaBatch: .deltaBatch
        case .deltaAck: .deltaAck
        case .forwardedWrite(let write): write.deadline == nil ? .forwardedWrite : .forwardedWriteWithDeadline
        case .writeReply: .writeReply
        case .stateTransferRequest: .stateTransferRequest
        case .stateTransferChunk: .stateTransferChunk
        case .readRequest: .readRequest
        case .readReply: .readReply
        case .error: .error
        }
    }

    /// A guess at the body size before compression, to reserve the frame buffer once and
    /// to bound send queues before encoding.
    package var estimatedBodyBytes: Int {
        switch self {
        case .deltaBatch(let batch):
            return 32 + SessionDelta.estimatedBytes(of: batch.deltas)
        case .stateTransferChunk(let chunk):
            return 32 + SessionDelta.estimatedBytes(of: chunk.snapshots)
        case .readReply(let reply):
            guard case .found(let delta) = reply.result else { return 64 }
            return 64 + SessionDelta.estimatedBytes(of: [delta])
        case .forwardedWrite(let write):
            switch write.operation {
            case .create(_, let changes), .update(let changes):
                var total = 128
                for (name, value) in changes.updated { total += name.utf8.count + value.bytes.count + 8 }
                return total
            case .invalidate, .rotate, .touch:
                return 64
            }
        case .view(let view):
            return 32 + view.members.count * 48
        case .deltaAck(let ack):
            return 32 + ack.needSnapshots.count * SessionID.byteCount
        case .stateTransferRequest(let request):
            return 48 + request.partitions.count * 2 + request.sessions.count * SessionID.byteCount
        default:
            return 96
        }
    }

    func writeBody(to writer: inout BinaryWriter) {
        switch self {
        case .heartbeat(let body): writer.write(body)
        case .heartbeatReply(let body): writer.write(body)
        case .probeRequest(let body): writer.write(body)
        case .probeReply(let body): writer.write(body)
        case .voteRequest(let body): writer.write(body)
        case .voteReply(let body): writer.write(body)
        case .joinRequest(let body): writer.write(body)
        case .view(let body): writer.write(body)
        case .deltaBatch(let body): writer.write(body)
        case .deltaAck(let body): writer.write(body)
        case .forwardedWrite(let body):
            writer.write(body)
            if let deadline = body.deadline { writer.writeTimestamp(deadline) }
        case .writeReply(let body): writer.write(body)
        case .stateTransferRequest(let body): writer.write(body)
        case .stateTransferChunk(let body): writer.write(body)
        case .readRequest(let body): writer.write(body)
        case .readReply(let body): writer.write(body)
        case .error(let body): writer.write(body)
        }
    }

    /// Decodes a whole body of `type`; a malformed one names the frame type in its path.
    init(type: FrameType, body: UnsafeRawBufferPointer) throws(WireError) {
        var reader = BinaryReader(body)
        do {
            self = try Self.readBody(type: type, from: &reader)
            try reader.expectEnd("body")
        } catch .malformed(let path) {
            throw .malformed("\(type).\(path)")
        }
    }

    private static func readForwardedWriteWithDeadline(from reader: inout BinaryReader) throws(WireError) -> ForwardedWrite {
        var write = try reader.read(ForwardedWrite.self)
        write.deadline = try reader.readTimestamp("deadline")
        return write
    }

    private static func readBody(type: FrameType, from reader: inout BinaryReader) throws(WireError) -> ClusterMessage {
        switch type {
        case .heartbeat: .heartbeat(try reader.read())
        case .heartbeatReply: .heartbeatReply(try reader.read())
        case .probeRequest: .probeRequest(try reader.read())
        case .probeReply: .probeReply(try reader.read())
        case .voteRequest: .voteRequest(try reader.read())
        case .voteReply: .voteReply(try reader.read())
        case .joinRequest: .joinRequest(try reader.read())
        case .view: .view(try reader.read())
        case .deltaBatch: .deltaBatch(try reader.read())
        case .deltaAck: .deltaAck(try reader.read())
        case .forwardedWrite: .forwardedWrite(try reader.read())
        case .forwardedWriteWithDeadline:
            .forwardedWrite(try readForwardedWriteWithDeadline(from: &reader))
        case .writeReply: .writeReply(try reader.read())
        case .stateTransferRequest: .stateTransferRequest(try reader.read())
        case .stateTransferChunk: .stateTransferChunk(try reader.read())
        case .readRequest: .readRequest(try reader.read())
        case .readReply: .readReply(try reader.read())
        case .error: .error(try reader.read())
        }
    }
}
