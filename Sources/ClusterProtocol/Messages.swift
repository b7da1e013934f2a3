import SessionCore

/// Every message nodes exchange. The wire format (module WireFormat) encodes each case as
/// one frame type; the protocol core only ever sees these values.
package enum ClusterMessage: Hashable, Sendable {
    /// Liveness and the leader's lease renewal; sent over UDP.
    case heartbeat(Heartbeat)
    /// The answer to a heartbeat; sent over UDP.
    case heartbeatReply(HeartbeatReply)
    /// "Check whether `target` is alive for me": a suspect is confirmed through another
    /// path before it is declared down.
    case probeRequest(ProbeRequest)
    /// The result of a probe.
    case probeReply(ProbeReply)
    /// A candidate asks for a vote.
    case voteRequest(VoteRequest)
    /// A vote, granted or not.
    case voteReply(VoteReply)
    /// A node asks the leader to be added to the view (or says it is leaving).
    case joinRequest(JoinRequest)
    /// The leader publishes a view.
    case view(View)
    /// Deltas for the sessions of partitions the receiver holds; LZ4-compressed on the wire.
    case deltaBatch(DeltaBatch)
    /// A replica confirms it applied a batch.
    case deltaAck(DeltaAck)
    /// A node that does not own a session sends a write to the owner.
    case forwardedWrite(ForwardedWrite)
    /// The owner's answer to a forwarded write.
    case writeReply(WriteReply)
    /// A node asks for the sessions of some partitions (joining, returning, repairing a gap).
    case stateTransferRequest(StateTransferRequest)
    /// One chunk of a state transfer; LZ4-compressed on the wire.
    case stateTransferChunk(StateTransferChunk)
    /// A node that holds no copy of a session asks a replica for it.
    case readRequest(ReadRequest)
    /// The answer to a read.
    case readReply(ReadReply)
    /// The sender refused something; typed, never a crash.
    case error(ProtocolErrorMessage)
}

extension ClusterMessage {
    /// The node that sent the message, whatever the message: every message but a view and
    /// an error names it in `from` (a view names its leader, which may have been relayed).
    package var senderID: NodeID? {
        switch self {
        case .heartbeat(let message): message.from.id
        case .heartbeatReply(let message): message.from.id
        case .probeRequest(let message): message.from
        case .probeReply(let message): message.from
        case .voteRequest(let message): message.from.id
        case .voteReply(let message): message.from
        case .joinRequest(let message): message.from.id
        case .view(let message): message.leader
        case .deltaBatch(let message): message.from
        case .deltaAck(let message): message.from
        case .forwardedWrite(let message): message.from
        case .writeReply(let message): message.from
        case .stateTransferRequest(let message): message.from
        case .stateTransferChunk(let message): message.from
        case .readRequest(let message): message.from
        case .readReply(let message): message.from
        case .error: nil
        }
    }
}

/// Sent every heartbeat interval to every member. From the leader it also renews the
/// receiver's lease: a member acknowledges writes only while its lease is valid.
package struct Heartbeat: Hashable, Sendable {
    package var from: Member
    package var term: Term
    package var viewEpoch: Epoch
    /// Numbers heartbeats from this sender, so a reply can be matched to the send time.
    package var sequence: UInt64
    /// True when the sender is the leader of `term` (the receiver renews its lease).
    package var fromLeader: Bool
    package init(from: Member, term: Term, viewEpoch: Epoch, sequence: UInt64, fromLeader: Bool) {
        self.from = from
        self.term = term
        self.viewEpoch = viewEpoch
        self.sequence = sequence
        self.fromLeader = fromLeader
    }
}

/// The answer to a ``Heartbeat``.
package struct HeartbeatReply: Hashable, Sendable {
    package var from: Member
    package var term: Term
    package var viewEpoch: Epoch
    /// The sequence of the heartbeat answered.
    package var sequence: UInt64
    package init(from: Member, term: Term, viewEpoch: Epoch, sequence: UInt64) {
        self.from = from
        self.term = term
        self.viewEpoch = viewEpoch
        self.sequence = sequence
    }
}

/// Asks the receiver to check `target` and report.
package struct ProbeRequest: Hashable, Sendable {
    package var from: NodeID
    package var target: NodeID
    package var probeID: UInt64
    package init(from: NodeID, target: NodeID, probeID: UInt64) {
        self.from = from
        self.target = target
        self.probeID = probeID
    }
}

/// Whether the prober heard from the target recently.
package struct ProbeReply: Hashable, Sendable {
    package var from: NodeID
    package var target: NodeID
    package var probeID: UInt64
    package var alive: Bool
    package init(from: NodeID, target: NodeID, probeID: UInt64, alive: Bool) {
        self.from = from
        self.target = target
        self.probeID = probeID
        self.alive = alive
    }
}

/// A candidate's request for a vote in `term`.
package struct VoteRequest: Hashable, Sendable {
    /// The candidate.
    package var from: Member
    package var term: Term
    /// The newest view epoch the candidate knows; voters refuse candidates behind them.
    package var lastViewEpoch: Epoch
    package init(from: Member, term: Term, lastViewEpoch: Epoch) {
        self.from = from
        self.term = term
        self.lastViewEpoch = lastViewEpoch
    }
}

/// A voter's answer.
package struct VoteReply: Hashable, Sendable {
    package var from: NodeID
    package var term: Term
    package var granted: Bool
    package init(from: NodeID, term: Term, granted: Bool) {
        self.from = from
        self.term = term
        self.granted = granted
    }
}

/// A node asks to join (or, with `leaving`, to leave) the view.
package struct JoinRequest: Hashable, Sendable {
    /// The node that asks.
    package var from: Member
    package var leaving: Bool
    package init(from: Member, leaving: Bool = false) {
        self.from = from
        self.leaving = leaving
    }
}

/// Deltas from one sender to one receiver, numbered so the receiver's ack releases the
/// writes waiting on them and a reconnect resends what was not acknowledged.
package struct DeltaBatch: Hashable, Sendable {
    package var from: NodeID
    /// The view epoch the sender routed the batch by.
    package var viewEpoch: Epoch
    /// Grows by one per batch from this sender to this receiver.
    package var sequence: UInt64
    package var deltas: [SessionDelta]
    package init(from: NodeID, viewEpoch: Epoch, sequence: UInt64, deltas: [SessionDelta]) {
        self.from = from
        self.viewEpoch = viewEpoch
        self.sequence = sequence
        self.deltas = deltas
    }
}

/// The receiver applied every batch up to and including `sequence`.
package struct DeltaAck: Hashable, Sendable {
    package var from: NodeID
    package var sequence: UInt64
    /// Sessions the receiver could not apply (unknown, or a gap) and wants snapshots of.
    package var needSnapshots: [SessionID]
    package init(from: NodeID, sequence: UInt64, needSnapshots: [SessionID] = []) {
        self.from = from
        self.sequence = sequence
        self.needSnapshots = needSnapshots
    }
}

/// What a forwarded write does.
package enum WriteOperation: Hashable, Sendable {
    /// Create the session with this metadata and these attributes.
    case create(SessionMetadata, SessionChanges)
    /// Apply these changes.
    case update(SessionChanges)
    /// End the session.
    case invalidate
    /// Move the session to a new id.
    case rotate(to: SessionID)
    /// Only move the last-access time.
    case touch(Timestamp)
}

/// A write sent to the session's owner by a node that is not the owner.
package struct ForwardedWrite: Hashable, Sendable {
    package var from: NodeID
    package var requestID: RequestID
    package var sessionID: SessionID
    package var operation: WriteOperation
    package var concern: WriteConcern
    /// The wall-clock time after which the owner must not apply the write (the load
    /// balancer has given up on the request and may have sent it elsewhere); nil: none.
    package var deadline: Timestamp?
    package init(
        from: NodeID, requestID: RequestID, sessionID: SessionID, operation: WriteOperation, concern: WriteConcern,
        deadline: Timestamp? = nil
    ) {
        self.from = from
        self.requestID = requestID
        self.sessionID = sessionID
        self.operation = operation
        self.concern = concern
        self.deadline = deadline
    }
}

/// Why a write or read failed, as the caller sees it.
package enum ClusterFailure: Hashable, Sendable {
    /// The store refused it (limits, unknown or ended session).
    case store(SessionStoreError)
    /// This node is not in a view with a valid lease (cut off from the majority).
    case notInMajority
    /// Not enough replicas acknowledged in time.
    case replicationTimeout
    /// The owner could not be reached in time.
    case ownerUnreachable
    /// The view changed under the request, a partition is still filling, or the owner
    /// awaits a lease (its first, or the next leader's); the caller may retry.
    case retry
    /// The write's deadline had passed when the owner came to apply it: it was not applied.
    case deadlineExceeded
}

/// The owner's answer to a ``ForwardedWrite``: the version written, or why not.
package struct WriteReply: Hashable, Sendable {
    package var from: NodeID
    package var requestID: RequestID
    package var result: Result<SessionVersion, ClusterFailure>
    package init(from: NodeID, requestID: RequestID, result: Result<SessionVersion, ClusterFailure>) {
        self.from = from
        self.requestID = requestID
        self.result = result
    }
}

extension ClusterFailure: Error {}

/// Asks for every session of `partitions` that the receiver holds.
package struct StateTransferRequest: Hashable, Sendable {
    package var from: NodeID
    package var transferID: UInt64
    package var viewEpoch: Epoch
    package var partitions: [PartitionID]
    /// Single sessions wanted (gap repair); empty for a partition transfer.
    package var sessions: [SessionID]
    package init(from: NodeID, transferID: UInt64, viewEpoch: Epoch, partitions: [PartitionID], sessions: [SessionID] = []) {
        self.from = from
        self.transferID = transferID
        self.viewEpoch = viewEpoch
        self.partitions = partitions
        self.sessions = sessions
    }
}

/// Part of a state transfer: snapshot deltas. `last` closes the transfer.
package struct StateTransferChunk: Hashable, Sendable {
    package var from: NodeID
    package var transferID: UInt64
    package var index: UInt32
    package var last: Bool
    package var snapshots: [SessionDelta]
    package init(from: NodeID, transferID: UInt64, index: UInt32, last: Bool, snapshots: [SessionDelta]) {
        self.from = from
        self.transferID = transferID
        self.index = index
        self.last = last
        self.snapshots = snapshots
    }
}

/// Asks a replica for a session. With `knownVersion`, the reply omits the session when the
/// asker's cached copy is current. With `touch` false the read leaves the last-access time
/// alone on the owner too: a read through any node slides the idle timeout only when asked.
package struct ReadRequest: Hashable, Sendable {
    package var from: NodeID
    package var requestID: RequestID
    package var sessionID: SessionID
    package var knownVersion: SessionVersion?
    package var touch: Bool
    package init(from: NodeID, requestID: RequestID, sessionID: SessionID, knownVersion: SessionVersion? = nil, touch: Bool = true) {
        self.from = from
        self.requestID = requestID
        self.sessionID = sessionID
        self.knownVersion = knownVersion
        self.touch = touch
    }
}

/// What a read found.
package enum ReadResult: Hashable, Sendable {
    /// The session (a snapshot delta, or an invalidate delta for an ended one).
    case found(SessionDelta)
    /// The asker's cached version is current.
    case notModified(version: SessionVersion)
    /// No such session.
    case notFound
    /// The read could not be served.
    case failed(ClusterFailure)
}

/// The answer to a ``ReadRequest``.
package struct ReadReply: Hashable, Sendable {
    package var from: NodeID
    package var requestID: RequestID
    package var result: ReadResult
    package init(from: NodeID, requestID: RequestID, result: ReadResult) {
        self.from = from
        self.requestID = requestID
        self.result = result
    }
}

/// A refusal the receiver sends before closing a link.
package struct ProtocolErrorMessage: Hashable, Sendable {
    /// Stable codes; see WireFormat's `WireError` for the decoding ones.
    package var code: UInt16
    package var message: String
    package init(code: UInt16, message: String) {
        self.code = code
        self.message = message
    }
}
