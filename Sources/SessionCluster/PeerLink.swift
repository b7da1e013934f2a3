import ClusterProtocol
import NIOCore
import WireFormat

/// The outbound TCP link to one peer address, confined to the node's event loop.
///
/// Messages wait here until the runtime flushes (once per event-loop turn) and then travel
/// as one frame, compressed against what the connection carried before; while the link is
/// down or connecting they keep waiting. Waiting plus unwritten bytes are bounded
/// (``SessionClusterConfiguration/maxQueuedBytesPerPeer``): on overflow the queue is
/// dropped and the connection closed, and the protocol core repairs the peer from
/// acknowledgements and state transfer, as it does for any lost link.
final class PeerLink {
    let address: PeerAddress
    var channel: (any Channel)?
    /// The connection's codec once its handshake is done; frames wait until then.
    var codec: FrameCodec?
    var connecting = false
    /// Messages not yet encoded, in order, with their estimated body bytes.
    var queue: [(message: ClusterMessage, bytes: Int)] = []
    /// The sum of their estimated body bytes.
    var queuedBytes = 0
    /// The peer's name for metrics (its id, or its address before the id is known).
    var peerLabel: String
    /// The compression history of the current connection: a new connection starts a new
    /// one, as the peer's decoder does.
    var history = LinkHistory()
    /// Bytes the connection still held unwritten after the last flush: what the socket
    /// did not take yet. Refreshed once per flush, and before a send is refused for it.
    var unwrittenBytes = 0
    /// When to reconnect after a failure: the backoff, shared with the simulator's model.
    var recovery: SocketRecovery
    /// The pending reconnect; no attempt is made before it fires.
    var retry: Scheduled<Void>?
    var needsFlush = false

    init(address: PeerAddress, recovery: SocketRecovery) {
        self.address = address
        self.peerLabel = address.description
        self.recovery = recovery
    }

    var isIdle: Bool {
        refreshUnwrittenBytes()
        return queue.isEmpty && unwrittenBytes == 0
    }

    /// Asks the connection (on its loop) for the bytes it has not written yet. One query
    /// per flush costs less than a promise and a callback per frame.
    func refreshUnwrittenBytes() {
        unwrittenBytes = channel.flatMap { try? $0.syncOptions?.getOption(.bufferedWritableBytes) } ?? 0
    }

    /// Empties the queue once it was encoded, keeping its buffer for the next turn's messages.
    func clearSentQueue() {
        queue.removeAll(keepingCapacity: true)
        queuedBytes = 0
    }

    func dropQueue() {
        queue.removeAll()
        queuedBytes = 0
    }
}
