import SessionCore
import Synchronization

/// What request handlers on any thread may know without asking the node's event loop:
/// which partitions this node can serve reads of from its own store, and which it owns.
///
/// The node (confined to its event loop) republishes it after every view change and before
/// it goes stale. Each entry was true for the whole window up to `validUntil` (the node was
/// asked about that instant, and leases only run out), so a reader inside the window reads
/// its store directly: one lock and a dictionary lookup, no hop.
final class RoutingTable: Sendable {
    struct Snapshot: Sendable {
        var servable: [Bool]
        var owned: [Bool]
        var validUntil: Timestamp
    }

    let partitionCount: Int
    private let snapshot: Mutex<Snapshot>

    init(partitionCount: Int) {
        self.partitionCount = partitionCount
        let none = [Bool](repeating: false, count: partitionCount)
        self.snapshot = Mutex(Snapshot(servable: none, owned: none, validUntil: .zero))
    }

    func publish(_ snapshot: Snapshot) {
        self.snapshot.withLock { $0 = snapshot }
    }

    /// Forgets everything: every read goes through the node until the next publication.
    func clear() {
        snapshot.withLock { $0.validUntil = .zero }
    }

    var validUntil: Timestamp { snapshot.withLock { $0.validUntil } }

    /// True when the read of `id` may be served from the local store now (leases are on
    /// the monotonic clock).
    func canServeLocally(_ id: SessionID) -> Bool {
        canServeLocally(id, now: MonotonicClock.now())
    }

    /// True when the read of `id` at `now` (monotonic) may be served from the local store.
    func canServeLocally(_ id: SessionID, now: Timestamp) -> Bool {
        let partition = id.partition(of: partitionCount)
        return snapshot.withLock { now <= $0.validUntil && $0.servable[partition] }
    }

    /// A fresh random id, preferably in a partition this node owns, so the session's first
    /// write needs no hop to another node. Choosing among up to 64 ids costs at most 6 of
    /// the id's 144 random bits.
    func newSessionID() -> SessionID {
        let owned = snapshot.withLock { $0.owned }
        var id = SessionID.random()
        for _ in 0..<63 where !owned[id.partition(of: partitionCount)] {
            id = SessionID.random()
        }
        return id
    }
}
