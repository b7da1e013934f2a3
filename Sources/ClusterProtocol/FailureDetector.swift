import SessionCore

/// Whom this node hears, whom it suspects and whom, as leader, it may remove: the failure
/// detector as a value, stepped with what arrives and the (monotonic) time, and tested on
/// its own (`FailureDetectorTests`). `ClusterNode` feeds it every sign of life and asks it
/// before probing, standing for election and removing a member.
struct FailureDetector {
    /// The thresholds, in milliseconds.
    struct Timing {
        /// Silence after which a peer is suspect (probed through others, not a helper).
        var suspectAfter: Int64
        /// Silence after which the leader may remove a peer (twice that when vouched for).
        var downAfter: Int64
        /// How long after its last lease renewal a peer may still acknowledge writes:
        /// the lease plus the clock-drift bound. No peer is removed before that.
        var leaseLapse: Int64

        init(_ configuration: NodeConfiguration) {
            suspectAfter = configuration.suspectAfterMilliseconds
            downAfter = configuration.downAfterMilliseconds
            leaseLapse = configuration.leaseMilliseconds + configuration.maxClockDriftMilliseconds
        }
    }

    /// What the detector knows of one peer.
    struct Peer: Hashable {
        /// The last time anything arrived from the peer.
        var lastHeard: Timestamp
        /// When the current suspicion started (probes went out); nil while it is heard.
        var probingSince: Timestamp?
        /// The last time a probe through another member said the peer is alive.
        var probeAliveAt: Timestamp?
        /// Leader: the last time it renewed the peer's lease (answered its heartbeat).
        var lastLeaseReplyAt: Timestamp

        mutating func wasHeard(at now: Timestamp) {
            lastHeard = max(lastHeard, now)
            probingSince = nil
        }
    }

    let timing: Timing
    private(set) var peers: [NodeID: Peer] = [:]

    init(timing: Timing) {
        self.timing = timing
    }

    /// True when `node` is tracked at all.
    func isTracked(_ node: NodeID) -> Bool { peers[node] != nil }

    /// Starts tracking `node`, as heard and renewed at `now`, unless it already is: a
    /// member is given a full `downAfter` and lease from the moment this node learns of it.
    mutating func track(_ node: NodeID, at now: Timestamp) {
        if peers[node] == nil { peers[node] = Peer(lastHeard: now, lastLeaseReplyAt: now) }
    }

    /// Tracks `node` afresh, as heard and renewed at `now` (a joiner, a new incarnation).
    mutating func reset(_ node: NodeID, at now: Timestamp) {
        peers[node] = Peer(lastHeard: now, lastLeaseReplyAt: now)
    }

    /// Something arrived from `node` at `now`: it is heard, and no longer suspected.
    /// Every message goes through here: one lookup, changed in place.
    mutating func heard(_ node: NodeID, at now: Timestamp) {
        peers[node, default: Peer(lastHeard: now, lastLeaseReplyAt: now)].wasHeard(at: now)
    }

    /// This node, as leader, renewed `node`'s lease at `now`.
    mutating func renewedLease(of node: NodeID, at now: Timestamp) {
        peers[node]?.lastLeaseReplyAt = now
    }

    /// A probe through another member said `node` is alive at `now`.
    mutating func vouched(for node: NodeID, at now: Timestamp) {
        peers[node]?.probeAliveAt = now
    }

    /// A new leader has heard nobody yet: everyone counts as heard and renewed at `now`,
    /// so nobody is removed before a full lease has surely lapsed.
    mutating func restartAll(at now: Timestamp) {
        for key in peers.keys {
            peers[key]!.lastHeard = now
            peers[key]!.lastLeaseReplyAt = now
            peers[key]!.probingSince = nil
        }
    }

    /// True when something arrived from `node` less than `window` milliseconds before `now`.
    func heard(_ node: NodeID, within window: Int64, at now: Timestamp) -> Bool {
        peers[node].map { now.milliseconds(since: $0.lastHeard) < window } ?? false
    }

    /// The nodes of `nodes`, in order, that fell silent past `suspectAfter` and are not
    /// being probed yet; they are marked as probed from `now`. Untracked nodes start being
    /// tracked instead.
    mutating func newSuspects(among nodes: [NodeID], at now: Timestamp) -> [NodeID] {
        var suspects: [NodeID] = []
        for node in nodes {
            guard let peer = peers[node] else {
                track(node, at: now)
                continue
            }
            if now.milliseconds(since: peer.lastHeard) >= timing.suspectAfter, peer.probingSince == nil {
                peers[node]!.probingSince = now
                suspects.append(node)
            }
        }
        return suspects
    }

    /// True when the leader may remove `node`: silent past `downAfter` (twice that while a
    /// recent probe vouched for it), and the lease it last renewed has surely lapsed.
    func isDown(_ node: NodeID, at now: Timestamp) -> Bool {
        guard let peer = peers[node] else { return false }
        let silence = now.milliseconds(since: peer.lastHeard)
        let vouched = peer.probeAliveAt.map { now.milliseconds(since: $0) < timing.suspectAfter } ?? false
        let limit = vouched ? 2 * timing.downAfter : timing.downAfter
        return silence >= limit && now.milliseconds(since: peer.lastLeaseReplyAt) >= timing.leaseLapse
    }

    /// How `node` looks at `now`, for status reports (untracked: alive).
    func state(of node: NodeID, at now: Timestamp) -> ClusterStatus.MemberState {
        guard let peer = peers[node] else { return .alive }
        let silence = now.milliseconds(since: peer.lastHeard)
        return silence >= timing.downAfter ? .down : silence >= timing.suspectAfter ? .suspect : .alive
    }
}
