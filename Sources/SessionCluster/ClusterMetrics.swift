import ClusterProtocol
import Metrics
import SessionCore
import Synchronization

/// The runtime's swift-metrics instruments. Every metric carries the `node` dimension, so
/// several nodes in one process (tests) stay apart.
///
/// | metric | type | dimensions |
/// | --- | --- | --- |
/// | `session_cluster_sessions` | gauge | node |
/// | `session_cluster_deltas_sent_total`, `session_cluster_deltas_received_total` | counter | node |
/// | `session_cluster_bytes_sent_total` | counter | node, peer, stage (`uncompressed`: frame bodies before LZ4; `wire`: whole frames) |
/// | `session_cluster_bytes_received_total` | counter | node, peer, stage (`wire`; the codec does not report sizes after decompression) |
/// | `session_cluster_ack_latency` | timer | node, concern |
/// | `session_cluster_failovers_total` | counter | node |
/// | `session_cluster_view_changes_total` | counter | node |
/// | `session_cluster_rejected_frames_total` | counter | node, code (WireError code) |
/// | `session_cluster_send_queue_overflows_total` | counter | node, peer |
/// | `session_cluster_session_events_total` | counter | node, event |
final class ClusterMetrics: Sendable {
    let node: String
    let sessions: Gauge
    let deltasSent: Counter
    let deltasReceived: Counter
    let failovers: Counter
    let viewChanges: Counter
    private let perLabel = Mutex<[String: Counter]>([:])
    /// Byte counters by peer, looked up once per frame: the per-label path would build and
    /// hash its key strings for every frame.
    private let perPeer = Mutex<[String: PeerCounters]>([:])
    private let timers = Mutex<[WriteConcern?: Metrics.Timer]>([:])

    private struct PeerCounters {
        let sentUncompressed: Counter
        let sentWire: Counter
        let receivedWire: Counter
    }
    private let rejectedCount = Atomic<Int>(0)

    init(node: NodeID) {
        self.node = node.rawValue
        let dimensions = [("node", node.rawValue)]
        sessions = Gauge(label: "session_cluster_sessions", dimensions: dimensions)
        deltasSent = Counter(label: "session_cluster_deltas_sent_total", dimensions: dimensions)
        deltasReceived = Counter(label: "session_cluster_deltas_received_total", dimensions: dimensions)
        failovers = Counter(label: "session_cluster_failovers_total", dimensions: dimensions)
        viewChanges = Counter(label: "session_cluster_view_changes_total", dimensions: dimensions)
    }

    /// Frames refused since start (also exported as `session_cluster_rejected_frames_total`).
    var rejectedFrames: Int { rejectedCount.load(ordering: .relaxed) }

    /// Counts a frame sent to `member`: its body before compression, and its bytes on the
    /// wire (header and authentication code included). A seed contacted before its id is
    /// known is labelled by its address.
    func sent(_ message: ClusterMessage, to member: Member, wireBytes: Int, uncompressedBytes: Int) {
        let counters = peerCounters(member.id.rawValue.isEmpty ? member.address.description : member.id.rawValue)
        counters.sentUncompressed.increment(by: Int64(uncompressedBytes))
        counters.sentWire.increment(by: Int64(wireBytes))
        if case .deltaBatch(let batch) = message { deltasSent.increment(by: Int64(batch.deltas.count)) }
    }

    func received(_ frame: ReceivedFrame) {
        peerCounters(frame.message.senderID?.rawValue ?? "unknown").receivedWire.increment(by: Int64(frame.wireBytes))
        if case .deltaBatch(let batch) = frame.message { deltasReceived.increment(by: Int64(batch.deltas.count)) }
    }

    func rejected(code: UInt16) {
        rejectedCount.add(1, ordering: .relaxed)
        counter("session_cluster_rejected_frames_total", [("code", String(code))]).increment()
    }

    func queueOverflow(peer: PeerAddress) {
        counter("session_cluster_send_queue_overflows_total", [("peer", peer.description)]).increment()
    }

    func event(_ event: SessionEvent) {
        let name =
            switch event {
            case .created: "created"
            case .expired: "expired"
            case .invalidated: "invalidated"
            case .idRotated: "id_rotated"
            }
        counter("session_cluster_session_events_total", [("event", name)]).increment()
    }

    func ackLatency(_ duration: Duration, concern: WriteConcern?) {
        let timer = timers.withLock { timers in
            if let timer = timers[concern] { return timer }
            let name =
                switch concern {
                case nil: "default"
                case .local: "local"
                case .replicated(let count): "replicated_\(count)"
                }
            let timer = Metrics.Timer(label: "session_cluster_ack_latency", dimensions: [("node", node), ("concern", name)])
            timers[concern] = timer
            return timer
        }
        let (seconds, attoseconds) = duration.components
        timer.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    private func peerCounters(_ peer: String) -> PeerCounters {
        perPeer.withLock { byPeer in
            if let counters = byPeer[peer] { return counters }
            let counters = PeerCounters(
                sentUncompressed: counter("session_cluster_bytes_sent_total", [("peer", peer), ("stage", "uncompressed")]),
                sentWire: counter("session_cluster_bytes_sent_total", [("peer", peer), ("stage", "wire")]),
                receivedWire: counter("session_cluster_bytes_received_total", [("peer", peer), ("stage", "wire")]))
            byPeer[peer] = counters
            return counters
        }
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return perLabel.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: label, dimensions: [("node", node)] + dimensions)
            counters[key] = counter
            return counter
        }
    }
}
