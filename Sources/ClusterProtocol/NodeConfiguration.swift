import SessionCore

/// Every knob of one node's protocol core, with defaults chosen for a LAN and explained.
///
/// Timing: heartbeats every 100 ms; a peer silent for 300 ms is suspect and probed through
/// others; silent for 600 ms it is declared down by the leader. A member acknowledges
/// writes only within `leaseMilliseconds` of its last heartbeat from the leader, and the
/// leader moves a lost member's partitions only once that lease plus the drift bound has
/// surely lapsed, so a cut-off owner stops acknowledging before anyone takes over.
///
/// Failover arithmetic for a crashed owner (not the leader). Both removal conditions
/// count from the member's last heartbeat, so they run concurrently, not one after the
/// other: removal comes at max(`downAfter`, `lease + maxClockDrift`) = 600 ms after the
/// last heartbeat, checked on the leader's 100 ms beat, i.e. 500-700 ms after the crash.
/// Requests held for the dead owner (or for a dead backup's ack) are answered at the new
/// view (`.retry`, or a snapshot to the new backup), and the promoted backup fills in a
/// round trip: writes succeed again 0.6-0.8 s after the crash. Lease safety needs only
/// `lease + maxClockDrift` ≤ the wait; `downAfter` = `lease + maxClockDrift` makes neither
/// wait for the other. A leader crash adds an election (400-800 ms of silence) and the new
/// leader's full `lease + maxClockDrift`, since it cannot know when the old leader last
/// renewed a lease: about 1.5 s. Shortening these means a smaller lease, hence more
/// heartbeat traffic per lease and less tolerance for a lost heartbeat reply (a lease of
/// 500 ms survives four lost beats of 100 ms); the test profile (`SessionClusterConfiguration.local`) roughly halves them.
package struct NodeConfiguration: Hashable, Sendable {
    /// This node.
    package var id: NodeID
    /// Where this node listens for peers.
    package var address: PeerAddress
    /// Raised on every start (the runtime uses the start time in milliseconds).
    package var incarnation: UInt64
    /// Addresses to contact at start; may include this node's own address.
    package var seeds: [PeerAddress]
    /// Partitions sessions hash to. 271 (prime) spreads well over up to a few dozen nodes.
    package var partitionCount: Int = 271
    /// Copies of each session: the owner plus `replicationFactor - 1` backups. Default 2.
    package var replicationFactor: Int = 2
    /// The write concern used when the caller names none. Default `.replicated(1)`.
    package var defaultWriteConcern: WriteConcern = .replicated(1)
    /// Heartbeat period. Default 100 ms.
    package var heartbeatIntervalMilliseconds: Int64 = 100
    /// Silence after which a peer is suspect and probed through others. Default 300 ms.
    package var suspectAfterMilliseconds: Int64 = 300
    /// Silence after which the leader declares a peer down. Default 600 ms: equal to
    /// `lease + maxClockDrift`, the wait lease safety imposes anyway, so a shorter value
    /// would not fail over sooner and a longer one would delay every failover.
    package var downAfterMilliseconds: Int64 = 600
    /// Election timeout range; each node draws within it from its seeded generator.
    package var electionTimeoutMilliseconds: ClosedRange<Int64> = 400...800
    /// How long a heartbeat from the leader lets a member acknowledge writes. Default 500 ms:
    /// five heartbeat intervals, so four lost replies in a row do not stop a healthy owner,
    /// yet with the drift bound it keeps owner-crash failover near 0.6-0.7 s.
    package var leaseMilliseconds: Int64 = 500
    /// The most two nodes' clocks may run apart over a lease. Default 100 ms: 20 % of the
    /// lease, far above the rate error of any real clock (NTP slews at most 0.05 %).
    package var maxClockDriftMilliseconds: Int64 = 100
    /// Deltas wait at most this long before they are flushed. Default 1 ms. Deltas that an
    /// acknowledged write waits for leave sooner, when the runtime calls
    /// ``Input/endOfTurn`` at the end of its event-loop turn.
    package var flushIntervalMilliseconds: Int64 = 1
    /// A batch is flushed at once when it reaches this many payload bytes. Default 64 KiB.
    package var flushThresholdBytes: Int = 64 * 1024
    /// Touches (last-access moves) travel on this slower beat. Default 5 s.
    package var touchFlushIntervalMilliseconds: Int64 = 5000
    /// A write not acknowledged by enough replicas within this fails. Default 2 s.
    package var writeTimeoutMilliseconds: Int64 = 2000
    /// Unacknowledged bytes queued for one peer beyond which the queue is dropped and the
    /// peer is repaired by state transfer instead. Default 32 MiB.
    package var maxQueuedBytesPerPeer: Int = 32 * 1024 * 1024
    /// Payload bytes per state-transfer chunk. Default 256 KiB.
    package var stateTransferChunkBytes: Int = 256 * 1024
    /// Seed of the core's own generator (election jitter). The runtime passes a random seed;
    /// the simulator passes one derived from the run's seed.
    package var randomSeed: UInt64 = 0

    /// A configuration with the documented defaults.
    package init(id: NodeID, address: PeerAddress, incarnation: UInt64, seeds: [PeerAddress]) {
        self.id = id
        self.address = address
        self.incarnation = incarnation
        self.seeds = seeds
    }

    /// This node as a member.
    package var member: Member { Member(id: id, address: address, incarnation: incarnation) }
}
