import SessionCore

/// A state transfer this node is receiving: the partitions it holds in a new view but
/// lacks, filled by every other member of the view.
///
/// Each source streams numbered chunks of snapshots under the transfer id of this node's
/// latest request to it. A chunk in order is applied and earns the source a credit (the
/// request again, which reopens its window by one chunk); a chunk out of order means the
/// stream broke (a link reset), so the source is asked afresh; anything else is stale. The
/// fill is done when every member of the view has sent its last chunk. Former members (a
/// graceful leaver may still hold data) are asked too, but not waited for.
struct IncomingTransfer {
    /// One source: where its stream is, and since when it made no progress.
    struct Source: Equatable {
        var transferID: UInt64
        var nextIndex: UInt32 = 0
        /// When the request went out or the last chunk arrived: only a transfer that
        /// stopped making progress is asked again, however long a large one takes.
        var progressedAt: Timestamp
    }

    /// What to do with a chunk.
    enum ChunkOutcome: Equatable {
        /// Apply its snapshots (those of ``partitions``); send the credit, if any (none
        /// after the source's last chunk).
        case apply(credit: StateTransferRequest?)
        /// A chunk went missing: ask this source again (``request(from:transferID:now:)``).
        case askAgain
        /// Not of a transfer this fill waits for: drop it.
        case ignore
    }

    /// The view epoch the transfer serves; a new view starts a new fill.
    let epoch: Epoch
    /// The partitions to fill, ascending.
    let partitions: [PartitionID]
    /// This node, which the requests and credits come from.
    let requester: NodeID
    private let partitionSet: Set<PartitionID>
    /// Sources that must finish.
    private(set) var required: [NodeID: Source] = [:]
    /// Sources asked but not waited for.
    private(set) var optional: [NodeID: Source] = [:]

    /// A fill of `partitions` in view `epoch`, from `required` members and `optional` former
    /// ones. Nothing is asked yet: ``request(from:transferID:now:)`` each of ``sources``.
    init(epoch: Epoch, partitions: [PartitionID], requester: NodeID, required: [NodeID], optional: [NodeID], now: Timestamp) {
        self.epoch = epoch
        self.partitions = partitions.sorted()
        self.requester = requester
        partitionSet = Set(partitions)
        for source in required { self.required[source] = Source(transferID: 0, progressedAt: now) }
        for source in optional where self.required[source] == nil {
            self.optional[source] = Source(transferID: 0, progressedAt: now)
        }
    }

    /// True once every required source sent its last chunk.
    var isDone: Bool { required.isEmpty }

    /// Every source still sending, required ones first, each group in id order.
    var sources: [NodeID] { required.keys.sorted() + optional.keys.sorted() }

    /// Whether `partition` is one this fill applies snapshots of.
    func fills(_ partition: PartitionID) -> Bool { partitionSet.contains(partition) }

    /// The request that (re)starts `source`'s transfer from its first chunk under the new
    /// `transferID`; nil when `source` is not sending to this fill.
    mutating func request(from source: NodeID, transferID: UInt64, now: Timestamp) -> StateTransferRequest? {
        let restarted = Source(transferID: transferID, progressedAt: now)
        if required[source] != nil {
            required[source] = restarted
        } else if optional[source] != nil {
            optional[source] = restarted
        } else {
            return nil
        }
        return StateTransferRequest(from: requester, transferID: transferID, viewEpoch: epoch, partitions: partitions)
    }

    /// Required sources that made no progress for `timeoutMilliseconds`, in id order.
    func stalled(now: Timestamp, timeoutMilliseconds: Int64) -> [NodeID] {
        required.filter { now.milliseconds(since: $0.value.progressedAt) >= timeoutMilliseconds }.keys.sorted()
    }

    /// Takes `chunk` in: see ``ChunkOutcome``.
    mutating func accept(_ chunk: StateTransferChunk, now: Timestamp) -> ChunkOutcome {
        let isRequired = required[chunk.from] != nil
        guard let source = required[chunk.from] ?? optional[chunk.from], source.transferID == chunk.transferID else {
            return .ignore
        }
        guard source.nextIndex == chunk.index else { return .askAgain }
        if chunk.last {
            required.removeValue(forKey: chunk.from)
            optional.removeValue(forKey: chunk.from)
            return .apply(credit: nil)
        }
        var progressed = source
        progressed.nextIndex += 1
        progressed.progressedAt = now
        if isRequired { required[chunk.from] = progressed } else { optional[chunk.from] = progressed }
        // The credit repeats the whole request, so a source that lost the transfer starts it
        // again from the top (its first chunk's index then tells this node to ask afresh).
        return .apply(
            credit: StateTransferRequest(from: requester, transferID: source.transferID, viewEpoch: epoch, partitions: partitions))
    }
}
