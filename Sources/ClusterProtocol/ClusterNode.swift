import SessionCore

/// One node's cluster protocol: membership, failure detection, election, views, the
/// partition table, replication, state transfer and request routing, as a deterministic
/// state machine with no I/O, no clock and no randomness of its own.
///
/// The runtime (or the simulator) feeds it ``Input``s (messages, ticks and application
/// requests), each with the current time, and carries out the ``Effect``s it returns. Everything it decides
/// follows from those inputs and ``NodeConfiguration/randomSeed``, so a run replays exactly.
///
/// ```swift
/// let node = ClusterNode(configuration: configuration, store: store, sessionClock: { _ in wallClock() })
/// perform(node.handle(.start, now: clock.now))
/// // on every message:            perform(node.handle(.message(message), now: clock.now))
/// // at node.nextTickDeadline:    perform(node.handle(.tick, now: clock.now))
/// // for a request:               perform(node.handle(.write(.update(changes), to: id, concern: nil, requestID: r), now: clock.now))
/// ```
///
/// Design, in short (each part is argued where it is implemented):
/// - Membership and election (`ClusterNode+Membership.swift`): all-to-all UDP heartbeats;
///   the leader suspects a silent member, probes it through two others, and removes it
///   only once it is silent past `downAfter` and its lease has surely lapsed. Raft-style
///   terms and majority votes; the leader publishes views, one membership change per view.
/// - Leases (`ClusterNode+Membership.swift`): a member's lease is renewed by the leader's
///   *reply* to the member's own heartbeat and counts from the member's send time, so a
///   heartbeat delayed in the network can never extend a lease.
/// - Replication (`ClusterNode+Replication.swift`): the owner applies writes, drains
///   coalesced deltas at each flush and sends one numbered batch per backup; backups
///   apply batches in order only within the same view epoch (the epoch fences a deposed
///   owner's data path) and acknowledge cumulatively. Writes complete when enough backups
///   acknowledged a delta at or beyond their version.
/// - Requests (`ClusterNode+Requests.swift`): a node that does not own a session forwards
///   the write or read to the owner, so the owner stamps every write and concurrent writes
///   of different attributes through different nodes both survive.
///
/// Not `Sendable`: the runtime confines a node to one executor.
package final class ClusterNode {
    /// The configuration the node was made with.
    package let configuration: NodeConfiguration
    /// The node's session store; the runtime may read it directly where
    /// ``canServeReadLocally(_:now:)`` allows.
    package let store: SessionStore

    /// A deliberately broken mode for testing the simulator: writes are acknowledged right
    /// after the local apply, before any backup applied them. The randomized sweep must
    /// catch it (lost acknowledged writes, I1). Never set it outside that test.
    package var unsafeAcknowledgeBeforeReplication = false

    /// Two clocks, both inputs. Every `now` the core is given is the runtime's monotonic
    /// clock: heartbeats, failure detection, elections, leases, flushes and timeouts run on
    /// it, so a step of the wall clock (NTP, an operator) moves none of them. Sessions'
    /// times (creation, last access, expiry, tombstones) are wall-clock times, shared by
    /// every node: this maps the core's `now` to that time. The runtime reads
    /// `CLOCK_REALTIME`; the simulator gives every node its own monotonic origin and a wall
    /// clock it may step. Set at `init`, so no runtime can forget it.
    package var sessionClock: @Sendable (_ now: Timestamp) -> Timestamp

    /// The wall-clock time for session timestamps at the core's `now`.
    func wall(_ now: Timestamp) -> Timestamp { sessionClock(now) }

    // MARK: Identity and time
    var incarnation: UInt64 { didSet { refreshMembership() } }
    var random: SeededRandom
    var started = false
    var lastNow: Timestamp?

    // MARK: Election
    var election: Election
    var term: Term { election.term }
    var role: ClusterStatus.Role { election.role }
    var leaderID: NodeID? { election.leaderID }

    // MARK: Membership
    var view: View? { didSet { refreshMembership() } }
    var table: PartitionTable?
    var known: [NodeID: Member] = [:]
    var detector: FailureDetector
    /// Leader: the send time of the newest heartbeat each peer answered (its own lease).
    var ackedHeartbeatSentAt: [NodeID: Timestamp] = [:]
    /// The last time this node sent each peer its view (a rate limit).
    var lastViewSentAt: [NodeID: Timestamp] = [:]
    /// Heartbeats, replies and probe replies seen, so that a replayed one counts for nothing.
    var freshness = DatagramFreshness()
    var heartbeatSequence: UInt64 = 0
    var heartbeatSentAt: [UInt64: Timestamp] = [:]
    var nextHeartbeatAt = Timestamp.zero
    var leaseUntil: Timestamp?
    /// The leader whose reply granted ``leaseUntil``.
    var leaseGrantedBy: NodeID?
    /// True from when this node starts, joins again, is elected or sees its clock go back,
    /// until it first holds a lease: a request it refuses meanwhile is worth a retry.
    var awaitingFirstLease = true
    var leaving = false
    var removedIncarnation: [NodeID: UInt64] = [:]
    var pendingJoins: [NodeID: Member] = [:]
    var pendingLeaves: Set<NodeID> = []
    var nextProbeID: UInt64 = 0
    var lastJoinRequestAt: Timestamp?
    var silentRemovals: [Timestamp] = []

    // MARK: Data
    var owned: Set<PartitionID> = []
    var held: Set<PartitionID> = []
    var filled: Set<PartitionID> = []
    var fill: IncomingTransfer?
    var releasedAt: [PartitionID: Timestamp] = [:]
    var outbound: [NodeID: OutboundStream] = [:]
    var inbound: [NodeID: InboundStream] = [:]
    /// The writes this node owns that wait for their concern, and their backups' acks.
    var pendingWrites = PendingWrites()
    /// Requests sent to other owners, waiting for their replies.
    var requests = RequestTable()
    var nextFlushAt: Timestamp?
    var nextTouchFlushAt = Timestamp.zero
    var nextSweepAt = Timestamp.zero
    /// Which slice of the store the next expiry sweep covers (see `Timing.sweepSlices`).
    var sweepSlice = 0
    var unflushedBytes = 0
    var nextTransferID: UInt64 = 0
    /// State transfers this node is serving, by requester.
    var outgoingTransfers: [NodeID: OutgoingTransfer] = [:]
    /// The last transfer sent in full to each requester (its id and view epoch): the
    /// credits for its last few chunks arrive after it ended and must not start it again.
    var finishedTransfers: [NodeID: (transferID: UInt64, viewEpoch: Epoch)] = [:]
    var queueOverflows = 0
    /// Delta batches stamped with a view this node has not installed yet (the owner
    /// installed it first), replayed once it is; bounded, see `handleDeltaBatch`.
    var futureBatches: [DeltaBatch] = []
    /// State-transfer requests for a view this node has not installed yet, answered once it is.
    var futureTransferRequests: [StateTransferRequest] = []

    /// Creates a node; it does nothing until ``start(now:)``.
    package init(
        configuration: NodeConfiguration, store: SessionStore, sessionClock: @escaping @Sendable (_ now: Timestamp) -> Timestamp
    ) {
        self.configuration = configuration
        self.store = store
        self.sessionClock = sessionClock
        self.incarnation = configuration.incarnation
        self.detector = FailureDetector(timing: FailureDetector.Timing(configuration))
        self.election = Election(timeoutMilliseconds: configuration.electionTimeoutMilliseconds)
        self.random = SeededRandom(seed: configuration.randomSeed ^ PartitionTable.idHash(configuration.id))
        // Heartbeat and probe numbers start at random (62 bits), so replies recorded on their
        // way to another node never match this node's (see `DatagramFreshness`). From a
        // generator of their own, so that elections draw what they drew before.
        var numbers = SeededRandom(seed: ~(configuration.randomSeed ^ PartitionTable.idHash(configuration.id)) ^ configuration.incarnation)
        self.heartbeatSequence = (numbers.next() >> 2) + 64
        self.nextProbeID = numbers.next() >> 2
    }

    /// This node as a member, with its current incarnation.
    var me: Member { Member(id: configuration.id, address: configuration.address, incarnation: incarnation) }
    var id: NodeID { configuration.id }

    /// True when the installed view has this node, in this incarnation.
    /// Kept up to date as the view or the incarnation changes, rather than searched for:
    /// every write and every ack asks (through the lease check).
    private(set) var isMember = false

    private func refreshMembership() { isMember = view?.members.contains(me) ?? false }

    /// True once this node is in an installed view.
    package var isReady: Bool { isMember && !leaving }

    // MARK: - Driving the node

    /// Starts the node: contacts the seeds (which may include this node's own address).
    func start(now: Timestamp, into effects: inout [Effect]) {
        guard !started else { return }
        started = true
        lastNow = now
        known[id] = me
        resetElectionDeadline(now: now)
        nextHeartbeatAt = now
        nextTouchFlushAt = now.adding(milliseconds: configuration.touchFlushIntervalMilliseconds)
        nextSweepAt = now.adding(milliseconds: Timing.sweepSliceMilliseconds)
        sendJoinRequests(now: now, into: &effects)
    }

    /// Handles one message from a peer.
    func receive(_ message: ClusterMessage, now: Timestamp, into effects: inout [Effect]) {
        guard started, role != .left || message.isStateTransferRequest else { return }
        observe(now)
        switch message {
        case .heartbeat(let heartbeat): handleHeartbeat(heartbeat, now: now, into: &effects)
        case .heartbeatReply(let reply): handleHeartbeatReply(reply, now: now, into: &effects)
        case .probeRequest(let request): handleProbeRequest(request, now: now, into: &effects)
        case .probeReply(let reply): handleProbeReply(reply, now: now)
        case .voteRequest(let request): handleVoteRequest(request, now: now, into: &effects)
        case .voteReply(let reply): handleVoteReply(reply, now: now, into: &effects)
        case .joinRequest(let request): handleJoinRequest(request, now: now, into: &effects)
        case .view(let view): handleView(view, now: now, into: &effects)
        case .deltaBatch(let batch): handleDeltaBatch(batch, now: now, into: &effects)
        case .deltaAck(let ack): handleDeltaAck(ack, now: now, into: &effects)
        case .forwardedWrite(let write): handleForwardedWrite(write, now: now, into: &effects)
        case .writeReply(let reply): handleWriteReply(reply, now: now, into: &effects)
        case .stateTransferRequest(let request): handleStateTransferRequest(request, now: now, into: &effects)
        case .stateTransferChunk(let chunk): handleStateTransferChunk(chunk, now: now, into: &effects)
        case .readRequest(let request): handleReadRequest(request, now: now, into: &effects)
        case .readReply(let reply): handleReadReply(reply, now: now, into: &effects)
        case .error: break
        }
    }

    /// Heartbeats, failure detection, elections, flushes, retransmissions, timeouts and
    /// expiry sweeps that are due at `now`.
    func tick(now: Timestamp, into effects: inout [Effect]) {
        guard started, role != .left else { return }
        observe(now)
        if now >= nextHeartbeatAt {
            nextHeartbeatAt = now.adding(milliseconds: configuration.heartbeatIntervalMilliseconds)
            sendHeartbeats(now: now, into: &effects)
            detectFailures(now: now, into: &effects)
            retransmit(now: now, into: &effects)
            retryFill(now: now, into: &effects)
            expireRequests(now: now, into: &effects)
            if !isMember, view == nil || lastJoinRequestAt.map({ now.milliseconds(since: $0) >= Timing.joinRetryMilliseconds(configuration) }) ?? true {
                sendJoinRequests(now: now, into: &effects)
            }
        }
        if role == .leader {
            checkQuorum(now: now)
            publishPendingChanges(now: now, into: &effects)
        } else if now >= election.deadline {
            startElection(now: now, into: &effects)
        }
        let touchesDue = now >= nextTouchFlushAt
        if touchesDue { nextTouchFlushAt = now.adding(milliseconds: configuration.touchFlushIntervalMilliseconds) }
        if touchesDue || (nextFlushAt.map { now >= $0 } ?? false) {
            flush(now: now, includeTouches: touchesDue, into: &effects)
        }
        // Every slice that is due, so a late tick (a busy loop) still covers the whole
        // store once a second; at most one pass per tick.
        var slicesSwept = 0
        while now >= nextSweepAt && slicesSwept < Timing.sweepSlices {
            nextSweepAt = nextSweepAt.adding(milliseconds: Timing.sweepSliceMilliseconds)
            sweep(slice: sweepSlice, now: now, into: &effects)
            if sweepSlice == 0 { freshness.prune(keeping: Set((view?.members ?? []).map(\.id))) }
            sweepSlice = (sweepSlice + 1) % Timing.sweepSlices
            slicesSwept += 1
        }
        if now >= nextSweepAt { nextSweepAt = now.adding(milliseconds: Timing.sweepSliceMilliseconds) }
        if pendingWrites.hasCredits { completeMetWrites(now: now, into: &effects) }
    }

    /// When the runtime must call ``tick(now:)`` next at the latest.
    package var nextTickDeadline: Timestamp {
        // Not started, or gone: nothing is due for a long while.
        guard started, role != .left else { return (lastNow ?? .zero).adding(milliseconds: 3_600_000) }
        var deadline = min(nextHeartbeatAt, nextTouchFlushAt, nextSweepAt)
        if role != .leader { deadline = min(deadline, election.deadline) }
        if let nextFlushAt { deadline = min(deadline, nextFlushAt) }
        return deadline
    }

    /// Notes the time; a clock that went backwards voids leases, which were measured on it.
    func observe(_ now: Timestamp) {
        if let lastNow, now < lastNow {
            leaseUntil = nil
            leaseGrantedBy = nil
            awaitingFirstLease = true
            heartbeatSentAt.removeAll()
            ackedHeartbeatSentAt.removeAll()
        }
        lastNow = max(lastNow ?? now, now)
    }

    // MARK: - Queries

    /// True when this node owns the partition of `session` in its installed view.
    package func isOwner(of session: SessionID) -> Bool { isOwner(of: partition(of: session)) }

    /// True when this node owns `partition` in its installed view.
    package func isOwner(of partition: PartitionID) -> Bool {
        guard isReady, let table else { return false }
        return table.owner(of: partition) == id
    }

    /// True when the local store copy of `session` is guaranteed to hold every acknowledged
    /// write: this node owns the session's partition, holds all of its data (no state
    /// transfer running for it) and its lease is valid (no other node can own it now).
    package func canServeReadLocally(_ session: SessionID, now: Timestamp) -> Bool {
        canServeReadsLocally(in: partition(of: session), now: now)
    }

    /// ``canServeReadLocally(_:now:)`` for every session of `partition`.
    package func canServeReadsLocally(in partition: PartitionID, now: Timestamp) -> Bool {
        isOwner(of: partition) && filled.contains(partition) && leaseValid(now: now)
    }

    /// What this node knows about itself and the cluster.
    package var status: ClusterStatus {
        let now = lastNow ?? .zero
        let members = (view?.members ?? []).map { member -> ClusterStatus.MemberStatus in
            guard member.id != id else { return .init(member: member, state: .alive) }
            return .init(member: member, state: detector.state(of: member.id, at: now))
        }
        return ClusterStatus(
            id: id, incarnation: incarnation, term: term, leader: leaderID, role: role, viewEpoch: view?.epoch ?? 0,
            members: members, partitionsOwned: isMember ? owned.count : 0,
            partitionsBacked: isMember ? held.count - owned.count : 0,
            partitionsFilling: isMember ? held.subtracting(filled).count : 0, sessionCount: store.count,
            leaseValid: leaseValid(now: now), maxQueuedBytes: outbound.values.map(\.queuedBytes).max() ?? 0,
            pendingRequests: pendingWrites.count + requests.count)
    }

    /// The partition of `session`.
    func partition(of session: SessionID) -> PartitionID { PartitionID(of: session, count: configuration.partitionCount) }

    /// Sends `message` to the member `node` if this node knows where it is.
    func send(_ message: ClusterMessage, to node: NodeID, _ channel: Effect.Channel, into effects: inout [Effect]) {
        guard node != id else { return }
        guard let member = view?.members.first(where: { $0.id == node }) ?? known[node] else { return }
        effects.append(.send(message, to: member, channel: channel))
    }

    func resetElectionDeadline(now: Timestamp) {
        election.resetDeadline(now: now, using: &random)
    }
}

/// Timings derived from the configuration, named here so that each is explained once.
enum Timing {
    /// Expiry sweeps and evictions run once a second,
    static let sweepIntervalMilliseconds: Int64 = 1000
    /// a tenth of the store's shards every 100 ms: a pass over a million sessions took tens
    /// of milliseconds of the event loop at once.
    static let sweepSlices = 10
    static let sweepSliceMilliseconds = sweepIntervalMilliseconds / Int64(sweepSlices)
    /// Data of a partition this node no longer holds is kept this long, so a new holder's
    /// state transfer still finds it; well below the store's tombstone lifetime.
    static let releasedRetentionMilliseconds: Int64 = 30_000
    /// Delta batches from a view not yet installed that a node keeps for it.
    static let maxFutureBatches = 32
    /// Members asked to probe a suspect.
    static let probeFanout = 2

    /// Unacknowledged batches are resent after this much silence from the peer.
    static func retransmitMilliseconds(_ configuration: NodeConfiguration) -> Int64 {
        3 * configuration.heartbeatIntervalMilliseconds
    }
    /// Chunks of one state transfer in flight at once; each chunk the requester applies
    /// lets the source send one more. 16 chunks of 256 KiB keep both ends busy: with 4 the
    /// requester's loop waited for chunks, and 1M sessions took 18 s against 14 s. But at
    /// most a quarter of the per-peer queue bound (at least one chunk): a window the bound
    /// cannot hold overflows the link, the requester sees a gap and asks afresh, and the new
    /// window overflows again, so a joiner never filled under a 2 MiB bound. A quarter leaves
    /// room for a replaced transfer's chunks still queued and for the delta stream.
    static func transferWindowChunks(_ configuration: NodeConfiguration) -> Int {
        let fitting = configuration.maxQueuedBytesPerPeer / (4 * max(1, configuration.stateTransferChunkBytes))
        return max(1, min(16, fitting))
    }
    /// A state-transfer source that has made no progress is asked again after this long.
    static func transferRetryMilliseconds(_ configuration: NodeConfiguration) -> Int64 {
        5 * configuration.heartbeatIntervalMilliseconds
    }
    /// The time re-replication gets after a member is removed for silence before the next
    /// silent member may go (see `mayRemoveSilentMember`).
    static func reReplicationWindowMilliseconds(_ configuration: NodeConfiguration) -> Int64 {
        10 * configuration.downAfterMilliseconds
    }
    /// A node outside the view asks to join this often.
    static func joinRetryMilliseconds(_ configuration: NodeConfiguration) -> Int64 {
        3 * configuration.heartbeatIntervalMilliseconds
    }
}

extension ClusterMessage {
    var isStateTransferRequest: Bool {
        if case .stateTransferRequest = self { return true }
        return false
    }
}
