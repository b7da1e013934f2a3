/// Cheap read-outs for the simulator's invariant checks, which run after every step (the
/// package ``ClusterNode/status`` builds a whole report each time).
extension ClusterNode {
    /// This node's role.
    package var currentRole: ClusterStatus.Role { role }
    /// This node's term.
    package var currentTerm: Term { term }
    /// The installed view, if any.
    package var installedView: View? { view }
    /// This node as a member (its incarnation rises when it rejoins after being declared down).
    package var currentMember: Member { me }
    /// The sequence number of the last heartbeat this node sent.
    package var lastHeartbeatSequence: UInt64 { heartbeatSequence }
    /// Bytes queued for the peer with the most (I6).
    package var queuedBytesHighWater: Int { outbound.values.map(\.queuedBytes).max() ?? 0 }
    /// Requests and transfers this node is waiting on (I6).
    package var pendingCount: Int { pendingWrites.count + requests.count + pendingWrites.sessionCount }
    /// True when nothing is queued, unacknowledged or waiting to be re-sent to any peer.
    package var isQuiet: Bool {
        outbound.values.allSatisfy { $0.unacked.isEmpty && $0.waiting.isEmpty && !$0.isResyncing }
    }
    /// How often a peer's queue overflowed and fell back to snapshots (I6).
    package var queueOverflowCount: Int { queueOverflows }
    /// True when every partition this node holds has all its data.
    package var isFilled: Bool { held.isSubset(of: filled) }
}
