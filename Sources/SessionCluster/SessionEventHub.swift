import Metrics
import SessionCore
import Synchronization

/// Hands the node's session events to every subscriber (``SessionCluster/events(bufferingNewest:)``).
///
/// Each subscriber has its own bounded buffer: a subscriber that falls behind loses its
/// oldest unread events (counted in `session_cluster_session_events_dropped_total`), and
/// never slows the node down.
final class SessionEventHub: Sendable {
    /// Nil once the node stopped: a late subscriber's stream ends at once.
    private let subscribers = Mutex<[UInt64: AsyncStream<SessionEvent>.Continuation]?>([:])
    private let nextID = Atomic<UInt64>(0)
    private let dropped: Counter

    init(node: NodeID) {
        dropped = Counter(label: "session_cluster_session_events_dropped_total", dimensions: [("node", node.rawValue)])
    }

    func subscribe(bufferingNewest limit: Int) -> AsyncStream<SessionEvent> {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(of: SessionEvent.self, bufferingPolicy: .bufferingNewest(max(1, limit)))
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0?.removeValue(forKey: id) }
        }
        let open = subscribers.withLock { subscribers in
            subscribers?[id] = continuation
            return subscribers != nil
        }
        if !open { continuation.finish() }
        return stream
    }

    func publish(_ event: SessionEvent) {
        let continuations = subscribers.withLock { Array(($0 ?? [:]).values) }
        for continuation in continuations {
            if case .dropped = continuation.yield(event) { dropped.increment() }
        }
    }

    /// Ends every subscription (the node stopped).
    func finish() {
        let continuations = subscribers.withLock { subscribers in
            defer { subscribers = nil }
            return Array((subscribers ?? [:]).values)
        }
        for continuation in continuations { continuation.finish() }
    }
}
