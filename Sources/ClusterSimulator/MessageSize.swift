import ClusterProtocol
import SessionCore

/// Estimates a message's encoded size in bytes, for the traffic model and queue checks.
///
/// The estimate follows the shape the wire format will have (a fixed frame header, fixed-width
/// numbers, length-prefixed strings and byte strings, no compression). Tests can replace it with
/// the real encoder through ``Simulation/messageSize`` once the WireFormat module exists.
public enum MessageSize {
    /// Frame header: magic, version, type, flags, lengths (7 bytes for a small compressed
    /// frame), and the HMAC-SHA256 tag truncated to 16 bytes.
    static let frameHeader = 7 + 16

    /// The estimated encoded size of `message`.
    public static func estimate(_ message: ClusterMessage) -> Int {
        frameHeader + body(message)
    }

    static func body(_ message: ClusterMessage) -> Int {
        switch message {
        case .heartbeat(let heartbeat): member(heartbeat.from) + 8 + 8 + 8 + 1
        case .heartbeatReply(let reply): member(reply.from) + 8 + 8 + 8
        case .probeRequest(let probe): string(probe.from.rawValue) + string(probe.target.rawValue) + 8
        case .probeReply(let probe): string(probe.from.rawValue) + string(probe.target.rawValue) + 8 + 1
        case .voteRequest(let request): member(request.candidate) + 16
        case .voteReply(let reply): string(reply.from.rawValue) + 9
        case .joinRequest(let request): member(request.member) + 1
        case .view(let view): 24 + string(view.leader.rawValue) + view.members.reduce(4) { $0 + member($1) }
        case .deltaBatch(let batch): string(batch.from.rawValue) + 16 + batch.deltas.reduce(4) { $0 + delta($1) }
        case .deltaAck(let ack): string(ack.from.rawValue) + 8 + 4 + ack.needSnapshots.count * SessionID.byteCount
        case .forwardedWrite(let write):
            string(write.from.rawValue) + 8 + SessionID.byteCount + operation(write.operation) + 9
        case .writeReply(let reply): string(reply.from.rawValue) + 8 + 9
        case .stateTransferRequest(let request):
            string(request.from.rawValue) + 16 + 4 + request.partitions.count * 2 + 4 + request.sessions.count * SessionID.byteCount
        case .stateTransferChunk(let chunk): string(chunk.from.rawValue) + 13 + chunk.snapshots.reduce(4) { $0 + delta($1) }
        case .readRequest(let request): string(request.from.rawValue) + 8 + SessionID.byteCount + 9
        case .readReply(let reply): string(reply.from.rawValue) + 8 + readResult(reply.result)
        case .error(let error): 2 + string(error.message)
        }
    }

    static func string(_ text: String) -> Int { 2 + text.utf8.count }
    static func member(_ member: Member) -> Int { string(member.id.rawValue) + string(member.address.host) + 2 + 8 }

    /// One delta: id, kind, versions, last access, optional metadata, attribute changes.
    public static func delta(_ delta: SessionDelta) -> Int {
        var size = SessionID.byteCount + 1 + 8 + 8 + 8 + 1
        if let metadata = delta.metadata { size += 8 + 8 + 9 + 8 + 1 + (metadata.principal.map(string) ?? 0) }
        size += 2
        for change in delta.attributes {
            size += string(change.name) + 8 + 1 + (change.value.map { 1 + 4 + $0.bytes.count } ?? 0)
        }
        if delta.invalidation != nil { size += 1 + SessionID.byteCount }
        return size
    }

    static func operation(_ operation: WriteOperation) -> Int {
        switch operation {
        case .create(_, let changes), .update(let changes):
            1 + 40 + changes.updated.reduce(4) { $0 + string($1.key) + 5 + $1.value.bytes.count }
                + changes.removed.reduce(4) { $0 + string($1) }
        case .invalidate: 1
        case .rotate: 1 + SessionID.byteCount
        case .touch: 9
        }
    }

    static func readResult(_ result: ReadResult) -> Int {
        switch result {
        case .found(let found): 1 + delta(found)
        case .notModified: 9
        case .notFound: 1
        case .failed: 2
        }
    }

    /// A short name for `message`'s kind, for traffic tables.
    public static func kind(_ message: ClusterMessage) -> String {
        switch message {
        case .heartbeat: "heartbeat"
        case .heartbeatReply: "heartbeatReply"
        case .probeRequest: "probeRequest"
        case .probeReply: "probeReply"
        case .voteRequest: "voteRequest"
        case .voteReply: "voteReply"
        case .joinRequest: "joinRequest"
        case .view: "view"
        case .deltaBatch: "deltaBatch"
        case .deltaAck: "deltaAck"
        case .forwardedWrite: "forwardedWrite"
        case .writeReply: "writeReply"
        case .stateTransferRequest: "stateTransferRequest"
        case .stateTransferChunk: "stateTransferChunk"
        case .readRequest: "readRequest"
        case .readReply: "readReply"
        case .error: "error"
        }
    }
}
