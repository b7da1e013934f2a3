import SessionCore

/// Deltas to one peer: numbered batches not yet acknowledged, and deltas waiting for the
/// next flush. Sequences grow per peer incarnation and survive view changes; the batches
/// are re-stamped with the new epoch and sent again when the view changes.
///
/// A value with the stream's own rules (numbering, cumulative acks, the overflow that
/// drops deltas but keeps numbers), tested step by step in `ReplicationStreamTests`;
/// `ClusterNode` decides what goes in and when a batch leaves.
struct OutboundStream {
    var member: Member
    private(set) var nextSequence: UInt64 = 1
    private(set) var unacked: [(batch: DeltaBatch, bytes: Int)] = []
    private(set) var waiting: [SessionDelta] = []
    private(set) var waitingBytes = 0
    var lastProgressAt: Timestamp
    /// Sessions to re-send as snapshots after the queue overflowed (I6), in partition order:
    /// listed in one pass over the store when it overflowed (a pass per partition would
    /// cost P passes), each read only when it is sent. `resyncNext` is the next to send.
    var resync: [SessionID] = []
    var resyncNext = 0
    /// True while overflowed partitions are still being re-sent.
    var isResyncing: Bool { resyncNext < resync.count }
    /// True from an overflow until the peer acknowledged every batch: nothing new is sent.
    private(set) var stalled = false

    var queuedBytes: Int { unacked.reduce(waitingBytes) { $0 + $1.bytes } }

    init(member: Member, now: Timestamp) {
        self.member = member
        self.lastProgressAt = now
    }

    /// Queues `delta` for the next batch.
    mutating func enqueue(_ delta: SessionDelta) {
        waiting.append(delta)
        waitingBytes += delta.estimatedBytes
    }

    /// Keeps only the waiting deltas `keep` accepts (a view change moved the others).
    mutating func filterWaiting(_ keep: (SessionDelta) -> Bool) {
        waiting = waiting.filter(keep)
        waitingBytes = waiting.reduce(0) { $0 + $1.estimatedBytes }
    }

    /// Takes everything waiting as the next numbered batch, stamped `epoch`; nil when nothing
    /// waits or the stream is stalled after an overflow. It stays unacknowledged until
    /// ``acknowledge(through:now:_:)``.
    mutating func nextBatch(from sender: NodeID, epoch: Epoch, now: Timestamp) -> DeltaBatch? {
        if unacked.isEmpty { stalled = false }
        guard !waiting.isEmpty, !stalled else { return nil }
        if unacked.isEmpty { lastProgressAt = now }
        let batch = DeltaBatch(from: sender, viewEpoch: epoch, sequence: nextSequence, deltas: waiting)
        nextSequence += 1
        unacked.append((batch, waitingBytes))
        waiting.removeAll()
        waitingBytes = 0
        return batch
    }

    /// The peer applied every batch up to `sequence` (acks are cumulative): those batches
    /// leave the queue, each passed to `acknowledged`. False, changing nothing, for a number
    /// this stream never sent (an ack from the peer's earlier incarnation).
    mutating func acknowledge(through sequence: UInt64, now: Timestamp, _ acknowledged: (DeltaBatch) -> Void) -> Bool {
        guard sequence < nextSequence else { return false }
        while let first = unacked.first, first.batch.sequence <= sequence {
            unacked.removeFirst()
            lastProgressAt = now
            acknowledged(first.batch)
        }
        return true
    }

    /// I6: the queue outgrew its bound. The unacknowledged batches keep their numbers (the
    /// peer's in-order stream must see no gap) but lose their deltas, what waits is
    /// dropped, and nothing new leaves until the peer has acknowledged every batch.
    mutating func dropForOverflow() {
        unacked = unacked.map { entry in
            var batch = entry.batch
            batch.deltas = []
            return (batch, 0)
        }
        waiting.removeAll()
        waitingBytes = 0
        stalled = true
    }

    /// For a new view: every unacknowledged batch is stamped `epoch` and keeps only the
    /// deltas `keep` accepts; returns them, to be sent again in order.
    mutating func restamp(epoch: Epoch, now: Timestamp, keeping keep: (SessionDelta) -> Bool) -> [DeltaBatch] {
        unacked = unacked.map { entry in
            var batch = entry.batch
            batch.viewEpoch = epoch
            batch.deltas = batch.deltas.filter(keep)
            return (batch, batch.deltas.reduce(0) { $0 + $1.estimatedBytes })
        }
        lastProgressAt = now
        return unacked.map(\.batch)
    }
}
