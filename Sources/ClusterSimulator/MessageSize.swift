import ClusterProtocol
import WireFormat

/// What the simulator counts of a message: its size as the wire encoder writes it, and
/// its kind for the traffic tables.
package enum MessageSize {
    /// The message's size as a frame of its own, from the real encoder (before compression,
    /// which depends on a link's history).
    package static func encoded(_ message: ClusterMessage) -> Int {
        FrameCodec.uncompressedFrameLength(of: message)
    }

    /// A short name for `message`'s kind, for traffic tables.
    package static func kind(_ message: ClusterMessage) -> String {
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
