import ClusterProtocol
import NIOCore

/// The outbound TCP link to one peer address, confined to the node's event loop.
///
/// Frames are written straight to the connection when it is up and queued while it is
/// down or connecting. Queued plus unwritten bytes are bounded
/// (``SessionClusterConfiguration/maxQueuedBytesPerPeer``): on overflow the queue is
/// dropped and the connection closed, and the protocol core repairs the peer from
/// acknowledgements and state transfer, as it does for any lost link.
final class PeerLink {
    let address: PeerAddress
    var channel: (any Channel)?
    var connecting = false
    var queue = CircularBuffer<ByteBuffer>()
    var queuedBytes = 0
    /// Bytes handed to the connection whose write has not completed yet.
    var inFlightBytes = 0
    /// Failed connection attempts in a row, for the backoff.
    var failures = 0
    /// The pending reconnect; no attempt is made before it fires.
    var retry: Scheduled<Void>?
    var needsFlush = false

    init(address: PeerAddress) {
        self.address = address
    }

    var isIdle: Bool { queue.isEmpty && inFlightBytes == 0 }

    /// The pause before the next attempt: `initial`, doubled per failure, at most `maximum`.
    func backoff(initial: Duration, maximum: Duration) -> Duration {
        let exponent = min(max(failures - 1, 0), 16)
        let delay = initial * (1 << exponent)
        return min(delay, maximum)
    }

    func dropQueue() {
        queue.removeAll()
        queuedBytes = 0
    }
}
