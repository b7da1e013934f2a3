/// The receiving end of one member's replication stream, on a backup: which numbered batch
/// comes next, so that every batch is applied once and in order, and what to acknowledge.
///
/// Acknowledgements are cumulative. A duplicate, or a batch past a gap (one lost with a
/// dropped connection), is not applied; the backup acknowledges again the last batch it
/// applied in order, and the sender resends from the first one after it. A sender that
/// rejoined under a new incarnation numbers a new stream from 1.
struct InboundStream {
    /// The sender's incarnation this stream belongs to.
    private(set) var incarnation: UInt64
    /// The number of the next batch to apply.
    private(set) var expected: UInt64 = 1

    init(incarnation: UInt64) {
        self.incarnation = incarnation
    }

    /// Whether to apply the batch numbered `sequence` that the sender sent as `incarnation`:
    /// true only for the next one in order, which then counts as applied.
    mutating func admit(_ sequence: UInt64, from incarnation: UInt64) -> Bool {
        if incarnation != self.incarnation { self = InboundStream(incarnation: incarnation) }
        guard sequence == expected else { return false }
        expected += 1
        return true
    }

    /// The cumulative acknowledgement: the number of the last batch applied in order (0
    /// before the first).
    var acknowledged: UInt64 { expected - 1 }
}
