import ClusterProtocol
import Metrics
import SessionCore
import Synchronization
import WireFormat

/// The runtime's swift-metrics instruments. Every metric carries the `node` dimension, so
/// several nodes in one process (tests) stay apart.
///
/// | metric | type | dimensions |
/// | --- | --- | --- |
/// | `session_cluster_sessions` | gauge | node |
/// | `session_cluster_store_bytes` | gauge | node (what the sessions count against `SessionLimits.maxStoreBytes`) |
/// | `session_cluster_deltas_sent_total`, `session_cluster_deltas_received_total` | counter | node |
/// | `session_cluster_bytes_sent_total` | counter | node, peer, stage (`uncompressed`: frame bodies before LZ4; `wire`: whole frames) |
/// | `session_cluster_frames_sent_total` | counter | node (a frame may carry several messages) |
/// | `session_cluster_messages_sent_total` | counter | node, type (`deltaBatch`, `deltaAck`, ...) |
/// | `session_cluster_bytes_received_total` | counter | node, peer, stage (`wire`; the codec does not report sizes after decompression) |
/// | `session_cluster_ack_latency` | timer | node, concern |
/// | `session_cluster_failovers_total` | counter | node |
/// | `session_cluster_view_changes_total` | counter | node |
/// | `session_cluster_rejected_frames_total` | counter | node, code (WireError code) |
/// | `session_cluster_send_queue_overflows_total` | counter | node, peer |
/// | `session_cluster_peer_connections_closed_total` | counter | node, reason (`over_limit`, `handshake_timeout`, `idle_timeout`: accepted peer connections this node closed) |
/// | `session_cluster_session_events_total` | counter | node, event |
/// | `session_cluster_writes_past_deadline_total` | counter | node (writes this node, as the session's owner, refused unapplied past their deadline) |
/// | `session_cluster_transport_errors_total` | counter | node, transport (`udp`, `tcp`), operation (`send`, `receive`, `connect`, `bind`), kind (errno name) |
/// | `session_cluster_transport_reopens_total` | counter | node, transport (`udp`: the endpoint was bound again after it closed) |
final class ClusterMetrics: Sendable {
    let node: String
    let sessions: Gauge
    let storeBytes: Gauge
    let deltasSent: Counter
    let deltasReceived: Counter
    let failovers: Counter
    let viewChanges: Counter
    let framesSent: Counter
    private let perLabel = Mutex<[String: Counter]>([:])
    /// Byte counters by peer, looked up once per frame: the per-label path would build and
    /// hash its key strings for every frame.
    private let perPeer = Mutex<[String: PeerCounters]>([:])
    /// Message counters by type, looked up once per message for the same reason.
    private let perMessageType = Mutex<[String: Counter]>([:])
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
        storeBytes = Gauge(label: "session_cluster_store_bytes", dimensions: dimensions)
        deltasSent = Counter(label: "session_cluster_deltas_sent_total", dimensions: dimensions)
        deltasReceived = Counter(label: "session_cluster_deltas_received_total", dimensions: dimensions)
        failovers = Counter(label: "session_cluster_failovers_total", dimensions: dimensions)
        viewChanges = Counter(label: "session_cluster_view_changes_total", dimensions: dimensions)
        framesSent = Counter(label: "session_cluster_frames_sent_total", dimensions: dimensions)
    }

    /// Frames refused since start (also exported as `session_cluster_rejected_frames_total`).
    var rejectedFrames: Int { rejectedCount.load(ordering: .relaxed) }

    /// Counts a frame sent to `peer` (see ``Member/metricsLabel``) that carries `messages`:
    /// its body before compression, its bytes on the wire (header and authentication code
    /// included), the frame, and its messages by type.
    func sent(_ messages: [ClusterMessage], to peer: String, frame: EncodedFrame) {
        let counters = peerCounters(peer)
        counters.sentUncompressed.increment(by: Int64(frame.uncompressedBodyBytes))
        counters.sentWire.increment(by: Int64(frame.bytes.count))
        framesSent.increment()
        for message in messages {
            messagesSent(ofType: message.frameTypeName).increment()
            if case .deltaBatch(let batch) = message { deltasSent.increment(by: Int64(batch.deltas.count)) }
        }
    }

    func received(_ frame: ReceivedFrame) {
        peerCounters(frame.sender?.rawValue ?? "unknown").receivedWire.increment(by: Int64(frame.wireBytes))
        for case .deltaBatch(let batch) in frame.messages { deltasReceived.increment(by: Int64(batch.deltas.count)) }
    }

    func rejected(code: UInt16) {
        rejectedCount.add(1, ordering: .relaxed)
        counter("session_cluster_rejected_frames_total", [("code", String(code))]).increment()
    }

    /// A write this node owns refused unapplied because its deadline had passed.
    func writePastDeadline() {
        counter("session_cluster_writes_past_deadline_total", []).increment()
    }

    func peerConnectionClosed(_ reason: InboundLinkRefusal) {
        counter("session_cluster_peer_connections_closed_total", [("reason", reason.rawValue)]).increment()
    }

    func queueOverflow(peer: PeerAddress) {
        counter("session_cluster_send_queue_overflows_total", [("peer", peer.description)]).increment()
    }

    func transportError(_ site: TransportErrorSite, kind: String) {
        counter(
            "session_cluster_transport_errors_total",
            [("transport", site.transport.rawValue), ("operation", site.operation.rawValue), ("kind", kind)]
        ).increment()
    }

    func transportReopened(_ transport: TransportErrorSite.Transport) {
        counter("session_cluster_transport_reopens_total", [("transport", transport.rawValue)]).increment()
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

    private func messagesSent(ofType type: String) -> Counter {
        perMessageType.withLock { byType in
            if let counter = byType[type] { return counter }
            let counter = counter("session_cluster_messages_sent_total", [("type", type)])
            byType[type] = counter
            return counter
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

extension Member {
    /// How metrics name this peer: its id, or its address while the id is not known yet
    /// (a seed contacted before it answered).
    var metricsLabel: String { id.rawValue.isEmpty ? address.description : id.rawValue }
}
