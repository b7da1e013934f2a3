/// What a node knows about itself and the cluster, for the admin endpoint, logs and tests.
public struct ClusterStatus: Hashable, Sendable {
    /// This node's part in the election.
    public enum Role: Hashable, Sendable {
        /// Follows a leader (or waits for one).
        case follower
        /// Asking for votes.
        case candidate
        /// Publishes views.
        case leader
        /// Left the cluster gracefully; still answers state transfers for a while.
        case left
    }

    /// How this node sees a member.
    public enum MemberState: Hashable, Sendable {
        /// Heard from recently.
        case alive
        /// Silent for longer than the suspect timeout; being probed.
        case suspect
        /// Silent for longer than the down timeout; the leader removes it.
        case down
    }

    /// One member as this node sees it.
    public struct MemberStatus: Hashable, Sendable {
        /// The member: id, address, incarnation.
        public var member: Member
        /// Alive, suspected or down, as this node's failure detector sees it.
        public var state: MemberState
    }

    /// This node.
    public var id: NodeID
    /// This node's current incarnation (raised when it rejoins after being declared down).
    public var incarnation: UInt64
    /// The election term this node is in.
    public var term: Term
    /// The leader this node follows, if known.
    public var leader: NodeID?
    /// This node's role.
    public var role: Role
    /// The installed view's epoch (0 before any view).
    public var viewEpoch: Epoch
    /// The installed view's members with the state this node sees them in.
    public var members: [MemberStatus]
    /// Partitions this node owns.
    public var partitionsOwned: Int
    /// Partitions this node backs up.
    public var partitionsBacked: Int
    /// Partitions this node holds whose data has not fully arrived yet (state transfer running).
    public var partitionsFilling: Int
    /// Live sessions in this node's store.
    public var sessionCount: Int
    /// True while this node may acknowledge writes (its lease from the leader is valid).
    public var leaseValid: Bool
    /// Bytes queued, not yet acknowledged, for the peer with the most (I6).
    public var maxQueuedBytes: Int
    /// Writes, reads and transfers this node is waiting on.
    public var pendingRequests: Int
}
