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

    /// A short name for `message`'s kind, for traffic tables: its frame type's, as the
    /// runtime's metrics name it.
    package static func kind(_ message: ClusterMessage) -> String { message.frameTypeName }
}
