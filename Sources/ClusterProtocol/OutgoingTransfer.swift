import SessionCore

/// A state transfer this node is serving: the sessions of the partitions (and the single
/// sessions) a new holder asked for, sent as numbered chunks.
///
/// It holds neither the sessions nor a list of all their ids. It walks the store a shard at
/// a time: the ids of one shard that belong to the request, sorted (a fixed order, so a
/// simulated run replays), then each snapshot read from the store as its chunk is cut (a
/// newer copy than at the request is fine: applying snapshots is idempotent). Only a window
/// of chunks is in flight, reopened by the requester's credit for every chunk it applied.
/// So serving a million sessions costs one shard's ids and a bounded queue, and starts at
/// once, where collecting and sorting every id first held the event loop for about a second.
struct OutgoingTransfer {
    /// The requester's number for this transfer; its credits repeat it.
    let transferID: UInt64
    /// The view epoch of the request, to tell a stale credit from a new request.
    let viewEpoch: Epoch
    /// The number the next chunk carries.
    private(set) var nextIndex: UInt32 = 0

    private let partitions: Set<PartitionID>
    private let sessions: Set<SessionID>
    /// The next shard whose ids are read.
    private var nextShard = 0
    /// The ids of the shard being sent, sorted, and how many of them have gone.
    private var shardIDs: [SessionID] = []
    private var sent = 0

    init(transferID: UInt64, viewEpoch: Epoch, partitions: Set<PartitionID>, sessions: Set<SessionID>) {
        self.transferID = transferID
        self.viewEpoch = viewEpoch
        self.partitions = partitions
        self.sessions = sessions
    }

    /// The next chunk: snapshots of about `maxBytes` (at least one, when any is left), its
    /// number, and whether it is the last. A session ended and gone from the store is
    /// skipped; one created in a shard not yet reached is included.
    mutating func nextChunk(
        from store: SessionStore, maxBytes: Int, partition: (SessionID) -> PartitionID
    ) -> (snapshots: [SessionDelta], index: UInt32, last: Bool) {
        var snapshots = [SessionDelta]()
        var bytes = 0
        while bytes < maxBytes, let id = nextID(in: store, partition: partition) {
            guard let snapshot = store.snapshot(id) else { continue }
            bytes += snapshot.estimatedBytes
            snapshots.append(snapshot)
        }
        // Read ahead to the next shard with ids, so the chunk knows whether it is the last.
        let last = !hasMore(in: store, partition: partition)
        defer { nextIndex += 1 }
        return (snapshots, nextIndex, last)
    }

    private mutating func nextID(in store: SessionStore, partition: (SessionID) -> PartitionID) -> SessionID? {
        guard hasMore(in: store, partition: partition) else { return nil }
        defer { sent += 1 }
        return shardIDs[sent]
    }

    /// True when an id is left to send, reading the next shards' ids as needed.
    private mutating func hasMore(in store: SessionStore, partition: (SessionID) -> PartitionID) -> Bool {
        while sent == shardIDs.count {
            guard nextShard < store.shardCount else { return false }
            shardIDs = store.sessionIDs(inShard: nextShard) { partitions.contains(partition($0)) || sessions.contains($0) }
            shardIDs.sort { $0.precedes($1) }
            sent = 0
            nextShard += 1
        }
        return true
    }
}
