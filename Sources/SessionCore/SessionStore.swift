import Synchronization

/// The in-memory session table of one node: sharded, safe to use from many request
/// handlers at once, and the source and sink of replication deltas.
///
/// The store never reads a clock: every operation that depends on time takes `now`.
/// It does not know about partitions or peers either; the protocol core decides which
/// sessions this node owns and passes that in (``sweepExpired(now:slice:of:isOwner:)``).
///
/// Concurrency: sessions are spread over ``Configuration/shardCount`` shards, each behind
/// its own `Mutex`. A read holds one shard's lock for a dictionary lookup and a
/// copy-on-write retain of the attributes, so readers on different shards never meet.
package final class SessionStore: Sendable {
    /// How the store is sized and when things are dropped.
    package typealias Configuration = SessionStoreConfiguration

    /// The configuration the store was made with.
    package let configuration: Configuration
    private let shards: [Shard]
    private let liveSessions = Atomic<Int>(0)
    /// What the live sessions take against ``SessionLimits/maxStoreBytes``: attribute
    /// names and values plus ``SessionLimits/sessionOverheadBytes`` each.
    private let storedBytes = Atomic<Int>(0)
    /// Bit `i % 64` is set when shard `i` may have dirty sessions, so a drain (once per
    /// event-loop turn on a busy owner) locks only those shards. Set under the shard's
    /// lock after the insert and cleared before the drain locks, so no write is missed.
    private let dirtyShards = Atomic<UInt64>(0)
    private let principalIndex = Mutex<[String: Set<SessionID>]>([:])

    /// Creates an empty store.
    package init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.shards = (0..<configuration.shardCount).map { _ in Shard() }
    }

    /// The number of live sessions.
    package var count: Int { liveSessions.load(ordering: .relaxed) }

    /// The bytes the live sessions are counted for against ``SessionLimits/maxStoreBytes``.
    package var byteCount: Int { storedBytes.load(ordering: .relaxed) }

    /// Refuses a local write that would grow the store by `growth` bytes past its budget.
    private func checkBudget(growth: Int) -> SessionStoreError? {
        guard growth > 0 else { return nil }
        let limit = configuration.limits.maxStoreBytes, current = storedBytes.load(ordering: .relaxed)
        return current + growth > limit ? .storeFull(bytes: current, limit: limit) : nil
    }

    /// Counts an entry's change in size; `before` is its ``Entry/countedBytes`` before.
    private func account(_ entry: Entry, before: Int) {
        let delta = entry.countedBytes - before
        if delta != 0 { storedBytes.add(delta, ordering: .relaxed) }
    }

    /// The number of tombstones (ended sessions remembered).
    package var tombstoneCount: Int {
        shards.reduce(0) { total, shard in total + shard.state.withLock { $0.tombstoneCount } }
    }

    private func shardIndex(for id: SessionID) -> Int { Int(id.low % UInt64(shards.count)) }

    private func shard(for id: SessionID) -> Shard { shards[shardIndex(for: id)] }

    private func markDirty(_ id: SessionID) {
        dirtyShards.bitwiseOr(1 << UInt64(shardIndex(for: id) % 64), ordering: .relaxed)
    }

    // MARK: - The application's operations

    /// Creates a session with a new id and its first attributes, or nothing at all when they
    /// break a limit.
    package func create(
        id: SessionID = .random(), now: Timestamp, maxInactiveMilliseconds: Int64? = nil,
        absoluteTimeoutMilliseconds: Int64? = nil, principal: String? = nil, attributes: [String: AttributeValue] = [:]
    ) throws(SessionStoreError) -> Session {
        let metadata = SessionMetadata(
            createdAt: now, maxInactiveMilliseconds: maxInactiveMilliseconds ?? configuration.defaultMaxInactiveMilliseconds,
            absoluteDeadline: absoluteTimeoutMilliseconds.map { now.adding(milliseconds: $0) }, principal: principal,
            stamp: 1)
        return try insertNew(id: id, metadata: metadata, attributes: attributes, now: now)
    }

    /// The session `id` as of now, or nil when it is unknown, ended or expired.
    ///
    /// With `touch`, the read also moves the last-access time (a local touch that
    /// replicates lazily, coalesced with other touches; never a write per request).
    package func load(_ id: SessionID, now: Timestamp, touch: Bool = true) -> Session? {
        let granularity = configuration.touchGranularityMilliseconds
        return shard(for: id).state.withLock { state -> Session? in
            guard case .live(let entry)? = state.slots[id], !entry.isExpired(at: now) else { return nil }
            if touch, now.milliseconds(since: entry.lastAccessedAt) >= granularity {
                entry.lastAccessedAt = now
                state.touched.insert(id)
            }
            return entry.snapshot(id: id)
        }
    }

    /// Saves the changes recorded in `session` onto the stored session.
    ///
    /// Only the changed attributes are written, each stamped with the new version, so a
    /// concurrent save of other attributes of the same session is kept. A session without
    /// changes writes nothing and keeps its version.
    @discardableResult
    package func save(_ session: Session, now: Timestamp) throws(SessionStoreError) -> SessionVersion {
        try apply(session.changes, to: session.id, now: now)
    }

    /// Applies `changes` to the session `id` as a local write (the owner's path; a node
    /// that does not own the session forwards the changes to the owner, which calls this).
    /// Returns the session's version after the write.
    @discardableResult
    package func apply(_ changes: SessionChanges, to id: SessionID, now: Timestamp) throws(SessionStoreError) -> SessionVersion {
        try applyReportingChange(changes, to: id, now: now).version
    }

    /// Like ``apply(_:to:now:)``, and tells whether the write changed anything: changes to
    /// values the session already has keep its version and make no delta.
    package func applyReportingChange(_ changes: SessionChanges, to id: SessionID, now: Timestamp) throws(SessionStoreError)
        -> (version: SessionVersion, changed: Bool)
    {
        let limits = configuration.limits
        let maxRemovals = configuration.maxRemovalsPerSession
        var principalChange: (old: String?, new: String?)?
        let result: Result<(version: SessionVersion, changed: Bool), SessionStoreError> = shard(for: id).state.withLock { state in
            switch state.slots[id] {
            case nil: return .failure(.sessionNotFound(id))
            case .ended(let tombstone)?: return .failure(.sessionEnded(id, tombstone.reason))
            case .live(let entry)?:
                guard !entry.isExpired(at: now) else { return .failure(.sessionEnded(id, .expired)) }
                entry.lastAccessedAt = max(entry.lastAccessedAt, now)
                guard !changes.isEmpty else { return .success((entry.version, false)) }
                let version = entry.version.next
                let writes: [AttributeWrite]
                switch entry.writes(for: changes, at: version, limits: limits) {
                case .failure(let refusal): return .failure(refusal)
                case .success(let planned):
                    if let full = checkBudget(growth: planned.payloadBytes - entry.attributes.payloadByteCount) {
                        return .failure(full)
                    }
                    writes = planned.writes
                }
                let before = entry.countedBytes
                var changed = !writes.isEmpty
                entry.write(writes, maxRemovals: maxRemovals)
                account(entry, before: before)
                if let maxInactive = changes.maxInactiveMilliseconds, maxInactive != entry.metadata.maxInactiveMilliseconds {
                    entry.metadata.maxInactiveMilliseconds = maxInactive
                    entry.metadata.stamp = version
                    entry.metadataDirty = true
                    changed = true
                }
                if let principal = changes.principal, principal != entry.metadata.principal {
                    principalChange = (entry.metadata.principal, principal)
                    entry.metadata.principal = principal
                    entry.metadata.stamp = version
                    entry.metadataDirty = true
                    changed = true
                }
                if changed {
                    entry.version = version
                    state.dirty.insert(id)
                    markDirty(id)
                }
                return .success((entry.version, changed))
            }
        }
        if let principalChange { reindex(id, from: principalChange.old, to: principalChange.new) }
        return try result.get()
    }

    /// Ends the session `id`. Its replicas learn it through an invalidate delta, and a
    /// tombstone keeps any late delta from bringing it back. Returns false when there was
    /// no live session.
    @discardableResult
    package func invalidate(_ id: SessionID, now: Timestamp, reason: InvalidationReason = .invalidated) -> Bool {
        end(id, now: now, reason: reason) != nil
    }

    /// Moves the session's attributes to `newID` and ends the old id (the defence against
    /// session fixation). Returns the session under its new id.
    package func rotate(_ id: SessionID, to newID: SessionID = .random(), now: Timestamp) throws(SessionStoreError) -> Session {
        let previous: Result<Session, SessionStoreError> = shard(for: id).state.withLock { state in
            switch state.slots[id] {
            case nil: return .failure(.sessionNotFound(id))
            case .ended(let tombstone)?: return .failure(.sessionEnded(id, tombstone.reason))
            case .live(let entry)?:
                guard !entry.isExpired(at: now) else { return .failure(.sessionEnded(id, .expired)) }
                return .success(entry.snapshot(id: id))
            }
        }
        let old = try previous.get()
        let metadata = SessionMetadata(
            createdAt: old.createdAt, maxInactiveMilliseconds: old.maxInactiveMilliseconds,
            absoluteDeadline: old.absoluteDeadline, principal: old.principal, stamp: 1)
        let rotated = try insertNew(id: newID, metadata: metadata, attributes: old.attributes, now: now)
        end(id, now: now, reason: .rotated(to: newID))
        return rotated
    }

    /// The ids of the live sessions signed in as `principal` that this store holds.
    package func sessions(ofPrincipal principal: String) -> Set<SessionID> {
        principalIndex.withLock { $0[principal] ?? [] }
    }

    // MARK: - Replication

    /// Takes the changes made since the last drain, one coalesced delta per session:
    /// ten writes of one attribute are one entry, and an unchanged session yields nothing.
    ///
    /// Touches (last-access moves alone) are taken only with `includeTouches`, so they
    /// can travel lazily on a slower beat than writes.
    package func drainDeltas(includeTouches: Bool) -> [SessionDelta] {
        var deltas = [SessionDelta]()
        let dirty = dirtyShards.exchange(0, ordering: .relaxed)
        for (index, shard) in shards.enumerated() where includeTouches || dirty & (1 << UInt64(index % 64)) != 0 {
            shard.state.withLock { state in
                for id in state.dirty {
                    switch state.slots[id] {
                    case .live(let entry)?:
                        deltas.append(entry.takeDelta(id: id))
                    case .ended(let tombstone)? where tombstone.pendingDelta:
                        tombstone.pendingDelta = false
                        deltas.append(tombstone.delta(id: id))
                    default: break
                    }
                    state.touched.remove(id)
                }
                state.dirty.removeAll(keepingCapacity: true)
                guard includeTouches else { return }
                for id in state.touched {
                    if case .live(let entry)? = state.slots[id] {
                        deltas.append(SessionDelta(
                            id: id, kind: .touch, version: entry.version, previousVersion: entry.flushedVersion,
                            lastAccessedAt: entry.lastAccessedAt))
                    }
                }
                state.touched.removeAll(keepingCapacity: true)
            }
        }
        return deltas
    }

    /// True when a drain would yield a write delta (touches aside).
    package var hasPendingWrites: Bool {
        shards.contains { shard in shard.state.withLock { !$0.dirty.isEmpty } }
    }

    /// Applies a delta from the session's owner. Idempotent and version-checked: see
    /// ``SessionDelta``. Never marks anything for replication: replicas do not re-send.
    @discardableResult
    package func apply(_ delta: SessionDelta, now: Timestamp) -> ApplyOutcome {
        let limits = configuration.limits
        let maxRemovals = configuration.maxRemovalsPerSession
        var principalChange: (old: String?, new: String?)?
        let outcome: ApplyOutcome = shard(for: delta.id).state.withLock { state in
            switch state.slots[delta.id] {
            case .ended?:
                return .sessionEnded
            case nil:
                if delta.kind == .invalidate {
                    state.endedWithoutEntry(delta.id, reason: delta.invalidation ?? .invalidated, version: delta.version, now: now)
                    return .applied
                }
                guard let metadata = delta.metadata, delta.kind != .touch else { return .unknownSession }
                guard liveSessions.load(ordering: .relaxed) < limits.maxSessions else {
                    return .rejected(.tooManySessions(limit: limits.maxSessions))
                }
                let entry = Entry(metadata: metadata, version: 0, lastAccessedAt: delta.lastAccessedAt)
                _ = entry.merge(delta, maxRemovals: maxRemovals)
                entry.flushedVersion = entry.version
                state.slots[delta.id] = .live(entry)
                liveSessions.add(1, ordering: .relaxed)
                storedBytes.add(entry.countedBytes, ordering: .relaxed)
                if metadata.principal != nil { principalChange = (nil, metadata.principal) }
                let missedEarlier = delta.kind != .snapshot && delta.previousVersion > 0
                return missedEarlier ? .gap : .applied
            case .live(let entry)?:
                if delta.kind == .invalidate {
                    if entry.metadata.principal != nil { principalChange = (entry.metadata.principal, nil) }
                    state.slots.removeValue(forKey: delta.id)
                    liveSessions.subtract(1, ordering: .relaxed)
                    storedBytes.subtract(entry.countedBytes, ordering: .relaxed)
                    state.endedWithoutEntry(delta.id, reason: delta.invalidation ?? .invalidated, version: delta.version, now: now)
                    return .applied
                }
                let missedEarlier = delta.kind == .update && delta.previousVersion > entry.version
                let oldPrincipal = entry.metadata.principal
                let before = entry.countedBytes
                let changed = entry.merge(delta, maxRemovals: maxRemovals)
                account(entry, before: before)
                entry.flushedVersion = entry.version
                if oldPrincipal != entry.metadata.principal { principalChange = (oldPrincipal, entry.metadata.principal) }
                if missedEarlier { return .gap }
                return changed ? .applied : .unchanged
            }
        }
        if let principalChange { reindex(delta.id, from: principalChange.old, to: principalChange.new) }
        return outcome
    }

    /// The whole session as a snapshot delta (for state transfer, read replies and gap
    /// repair); for an ended session, its invalidate delta; nil when unknown.
    package func snapshot(_ id: SessionID) -> SessionDelta? {
        shard(for: id).state.withLock { state in
            switch state.slots[id] {
            case .live(let entry)?: entry.snapshotDelta(id: id)
            case .ended(let tombstone)?: tombstone.delta(id: id)
            case nil: nil
            }
        }
    }

    /// Snapshots of every live session and tombstone whose id satisfies `include` (a
    /// partition filter for state transfer), in no particular order.
    package func snapshots(where include: (SessionID) -> Bool) -> [SessionDelta] {
        var result = [SessionDelta]()
        for shard in shards {
            shard.state.withLock { state in
                for (id, slot) in state.slots where include(id) {
                    switch slot {
                    case .live(let entry): result.append(entry.snapshotDelta(id: id))
                    case .ended(let tombstone): result.append(tombstone.delta(id: id))
                    }
                }
            }
        }
        return result
    }

    /// The ids of the live and ended sessions whose id satisfies `include` (a resync after
    /// an overflow lists the sessions to resend with it).
    package func sessionIDs(where include: (SessionID) -> Bool) -> [SessionID] {
        (0..<shards.count).flatMap { sessionIDs(inShard: $0, where: include) }
    }

    /// The number of shards (``SessionStoreConfiguration/shardCount``).
    package var shardCount: Int { shards.count }

    /// ``sessionIDs(where:)`` of one shard: a reader that walks the shards in turn never
    /// builds a list of every session at once.
    package func sessionIDs(inShard shard: Int, where include: (SessionID) -> Bool) -> [SessionID] {
        var result = [SessionID]()
        shards[shard].state.withLock { state in
            for id in state.slots.keys where include(id) { result.append(id) }
        }
        return result
    }

    /// Forgets the live sessions whose id satisfies `include` without tombstones: for
    /// partitions this node no longer holds after the view changed. Returns how many.
    @discardableResult
    package func evict(where include: (SessionID) -> Bool) -> Int {
        var evicted = 0
        var principals = [(SessionID, String)]()
        for shard in shards {
            shard.state.withLock { state in
                for (id, slot) in state.slots where include(id) {
                    guard case .live(let entry) = slot else { continue }
                    storedBytes.subtract(entry.countedBytes, ordering: .relaxed)
                    state.slots.removeValue(forKey: id)
                    state.dirty.remove(id)
                    state.touched.remove(id)
                    evicted += 1
                    if let principal = entry.metadata.principal { principals.append((id, principal)) }
                }
            }
        }
        liveSessions.subtract(evicted, ordering: .relaxed)
        for (id, principal) in principals { reindex(id, from: principal, to: nil) }
        return evicted
    }

    /// Forgets every session and every tombstone, as if the store were new: for a node that
    /// was declared down, whose copy may hold writes and ends nobody acknowledged. It is
    /// refilled from the replicas that stayed, whose tombstones keep ended sessions ended.
    package func removeAll() {
        var removed = 0
        for shard in shards {
            shard.state.withLock { state in
                for slot in state.slots.values {
                    guard case .live(let entry) = slot else { continue }
                    removed += 1
                    storedBytes.subtract(entry.countedBytes, ordering: .relaxed)
                }
                state.slots.removeAll()
                state.dirty.removeAll()
                state.touched.removeAll()
                state.tombstoneOrder.removeAll()
                state.tombstoneHead = 0
            }
        }
        liveSessions.subtract(removed, ordering: .relaxed)
        principalIndex.withLock { $0.removeAll() }
    }

    /// Ends the expired sessions this node owns (the owner's clock decides expiry) and
    /// drops tombstones past their lifetime or over the count limit. Returns one
    /// ``SessionEvent/expired(_:)`` per session ended.
    ///
    /// Only the shards of `slice` (of `slices` parts, as equal as the shard count allows)
    /// are swept: a caller that sweeps the slices in turn never holds its thread for a scan
    /// of every session (tens of milliseconds at a million).
    package func sweepExpired(now: Timestamp, slice: Int = 0, of slices: Int = 1, isOwner: (SessionID) -> Bool) -> [SessionEvent] {
        precondition(slices > 0 && (0..<slices).contains(slice), "slice \(slice) of \(slices)")
        var expired = [SessionID]()
        let tombstoneBudget = max(1, configuration.maxTombstones / shards.count)
        let lifetime = configuration.tombstoneLifetimeMilliseconds
        for shard in shards[slice * shards.count / slices..<(slice + 1) * shards.count / slices] {
            shard.state.withLock { state in
                for (id, slot) in state.slots {
                    if case .live(let entry) = slot, entry.isExpired(at: now), isOwner(id) { expired.append(id) }
                }
                state.dropTombstones(olderThan: now.adding(milliseconds: -lifetime), keepingAtMost: tombstoneBudget)
            }
        }
        // In id order, not the dictionary's (which differs between processes): the events
        // and the writes they start must come out the same in a replayed run.
        expired.sort { $0.precedes($1) }
        return expired.compactMap { id in end(id, now: now, reason: .expired) != nil ? .expired(id) : nil }
    }

    // MARK: - Internals

    /// Inserts a new session at version 1, every attribute and the metadata dirty, and
    /// returns its first snapshot. The entry is built under the lock: it never leaves it.
    private func insertNew(
        id: SessionID, metadata: SessionMetadata, attributes: [String: AttributeValue], now: Timestamp
    ) throws(SessionStoreError) -> Session {
        let limit = configuration.limits.maxSessions
        let principal = metadata.principal
        let result: Result<Session, SessionStoreError> = shard(for: id).state.withLock { state in
            guard state.slots[id] == nil else { return .failure(.duplicateID(id)) }
            guard liveSessions.load(ordering: .relaxed) < limit else { return .failure(.tooManySessions(limit: limit)) }
            let entry = Entry(metadata: metadata, version: 1, lastAccessedAt: now)
            switch entry.writes(for: SessionChanges(updated: attributes), at: 1, limits: configuration.limits) {
            case .success(let planned):
                if let full = checkBudget(growth: planned.payloadBytes + SessionLimits.sessionOverheadBytes) {
                    return .failure(full)
                }
                entry.write(planned.writes, maxRemovals: configuration.maxRemovalsPerSession)
            case .failure(let error): return .failure(error)
            }
            storedBytes.add(entry.countedBytes, ordering: .relaxed)
            entry.metadataDirty = true
            let snapshot = entry.snapshot(id: id)
            state.slots[id] = .live(entry)
            state.dirty.insert(id)
            markDirty(id)
            liveSessions.add(1, ordering: .relaxed)
            return .success(snapshot)
        }
        let session = try result.get()
        if let principal { reindex(id, from: nil, to: principal) }
        return session
    }

    /// Ends a live session; returns its last snapshot, or nil when it was not live.
    @discardableResult
    private func end(_ id: SessionID, now: Timestamp, reason: InvalidationReason) -> Session? {
        let ended: Session? = shard(for: id).state.withLock { state in
            guard case .live(let entry)? = state.slots[id] else { return nil }
            state.slots[id] = .ended(Tombstone(
                reason: reason, version: entry.version.next, previousVersion: entry.flushedVersion, endedAt: now,
                lastAccessedAt: entry.lastAccessedAt, pendingDelta: true))
            state.tombstoneOrder.append((id, now))
            state.dirty.insert(id)
            markDirty(id)
            state.touched.remove(id)
            liveSessions.subtract(1, ordering: .relaxed)
            storedBytes.subtract(entry.countedBytes, ordering: .relaxed)
            return entry.snapshot(id: id)
        }
        if let principal = ended?.principal { reindex(id, from: principal, to: nil) }
        return ended
    }

    private func reindex(_ id: SessionID, from old: String?, to new: String?) {
        guard old != new else { return }
        principalIndex.withLock { index in
            if let old {
                index[old]?.remove(id)
                if index[old]?.isEmpty == true { index.removeValue(forKey: old) }
            }
            if let new { index[new, default: []].insert(id) }
        }
    }
}

/// What applying a delta did.
package enum ApplyOutcome: Hashable, Sendable {
    /// The delta changed the replica.
    case applied
    /// Nothing changed: the delta was a duplicate or older than what the replica has.
    case unchanged
    /// Applied, but the replica had missed an earlier delta: ask the owner for a snapshot.
    case gap
    /// The replica does not know the session and the delta cannot create it: ask for a snapshot.
    case unknownSession
    /// The session has ended here; the delta was ignored.
    case sessionEnded
    /// Refused by a limit; nothing changed.
    case rejected(SessionStoreError)
}

private final class Shard: Sendable {
    let state = Mutex(ShardState())
}

private struct ShardState: ~Copyable {
    var slots: [SessionID: Slot] = [:]
    /// Sessions with writes or an end not yet drained.
    var dirty: Set<SessionID> = []
    /// Sessions whose last-access time moved since the last drain of touches.
    var touched: Set<SessionID> = []
    /// Ended sessions in the order they ended, for expiring tombstones.
    var tombstoneOrder: [(SessionID, Timestamp)] = []
    var tombstoneHead = 0

    var tombstoneCount: Int { tombstoneOrder.count - tombstoneHead }

    mutating func endedWithoutEntry(_ id: SessionID, reason: InvalidationReason, version: SessionVersion, now: Timestamp) {
        slots[id] = .ended(Tombstone(
            reason: reason, version: version, previousVersion: version, endedAt: now, lastAccessedAt: now, pendingDelta: false))
        tombstoneOrder.append((id, now))
    }

    mutating func dropTombstones(olderThan cutoff: Timestamp, keepingAtMost budget: Int) {
        while tombstoneHead < tombstoneOrder.count {
            let (id, endedAt) = tombstoneOrder[tombstoneHead]
            guard endedAt < cutoff || tombstoneCount > budget else { break }
            if case .ended? = slots[id] { slots.removeValue(forKey: id) }
            tombstoneHead += 1
        }
        if tombstoneHead > 1024 && tombstoneHead * 2 > tombstoneOrder.count {
            tombstoneOrder.removeFirst(tombstoneHead)
            tombstoneHead = 0
        }
    }
}

/// One reference wide, so that the table's buckets stay small: a tombstone's fields live
/// in their own box rather than widening every slot.
private enum Slot {
    case live(Entry)
    case ended(Tombstone)
}

private final class Tombstone {
    let reason: InvalidationReason
    let version: SessionVersion
    let previousVersion: SessionVersion
    let endedAt: Timestamp
    let lastAccessedAt: Timestamp
    var pendingDelta: Bool

    init(
        reason: InvalidationReason, version: SessionVersion, previousVersion: SessionVersion, endedAt: Timestamp,
        lastAccessedAt: Timestamp, pendingDelta: Bool
    ) {
        self.reason = reason
        self.version = version
        self.previousVersion = previousVersion
        self.endedAt = endedAt
        self.lastAccessedAt = lastAccessedAt
        self.pendingDelta = pendingDelta
    }

    func delta(id: SessionID) -> SessionDelta {
        SessionDelta(
            id: id, kind: .invalidate, version: version, previousVersion: previousVersion, lastAccessedAt: lastAccessedAt,
            invalidation: reason)
    }
}

/// A stored session: its attributes packed in one buffer that the snapshots handed out
/// share copy-on-write, each with its version stamp and dirty flag, and recent removals.
/// A class, so that a read retains one reference instead of copying every field out of
/// the table; it is only touched under its shard's lock.
private final class Entry {
    var metadata: SessionMetadata
    var version: SessionVersion
    var lastAccessedAt: Timestamp
    var attributes = PackedAttributes()
    /// Recent removals, so a stale set cannot bring a removed attribute back. Rare: empty
    /// (and unallocated) for most sessions.
    var removals: [String: Removal] = [:]
    /// Replication bookkeeping on the writing node (dirty attributes are flagged in place).
    var metadataDirty = false
    var flushedVersion: SessionVersion = 0

    struct Removal {
        var stamp: SessionVersion
        /// Not yet sent to the replicas.
        var dirty: Bool
    }

    init(metadata: SessionMetadata, version: SessionVersion, lastAccessedAt: Timestamp) {
        self.metadata = metadata
        self.version = version
        self.lastAccessedAt = lastAccessedAt
    }

    /// What this session counts against the store's budget.
    var countedBytes: Int { attributes.payloadByteCount + SessionLimits.sessionOverheadBytes }

    func isExpired(at now: Timestamp) -> Bool {
        SessionExpiry.isExpired(
            lastAccessedAt: lastAccessedAt, maxInactiveMilliseconds: metadata.maxInactiveMilliseconds,
            absoluteDeadline: metadata.absoluteDeadline, now: now)
    }

    func snapshot(id: SessionID) -> Session {
        Session(
            id: id, version: version, createdAt: metadata.createdAt, lastAccessedAt: lastAccessedAt,
            maxInactiveMilliseconds: metadata.maxInactiveMilliseconds, absoluteDeadline: metadata.absoluteDeadline,
            principal: metadata.principal, stored: attributes)
    }

    /// The writes `changes` make at `version`, leaving out values the session already
    /// holds, with the attribute bytes the session will take, or why they would break a
    /// limit. One search per attribute named: the limit check and the no-change check read
    /// the same record.
    func writes(
        for changes: SessionChanges, at version: SessionVersion, limits: SessionLimits
    ) -> Result<(writes: [AttributeWrite], payloadBytes: Int), SessionStoreError> {
        var bytes = attributes.payloadByteCount
        var count = attributes.count
        var writes = [AttributeWrite]()
        for (name, value) in changes.updated {
            guard value.bytes.count <= limits.maxAttributeBytes else {
                return .failure(.attributeTooLarge(name: name, bytes: value.bytes.count, limit: limits.maxAttributeBytes))
            }
            let stored = attributes.withRecord(name) { record, buffer in
                (bytes: record.nameCount + record.valueCount, same: record.holds(value, in: buffer))
            }
            if let stored {
                bytes -= stored.bytes
            } else {
                count += 1
            }
            bytes += name.utf8.count + value.bytes.count
            if stored?.same != true, changes.removed.isEmpty || !changes.removed.contains(name) {
                writes.append(AttributeWrite(name: name, value: value, stamp: version, dirty: true))
            }
        }
        for name in changes.removed {
            // A name both set and removed ends removed, whether or not it was there before.
            if changes.updated[name] == nil {
                guard let old = attributes.payloadByteCount(of: name) else { continue }
                bytes -= old
                count -= 1
            }
            writes.append(AttributeWrite(name: name, value: nil, stamp: version, dirty: true))
        }
        guard count <= limits.maxAttributesPerSession else {
            return .failure(.tooManyAttributes(count: count, limit: limits.maxAttributesPerSession))
        }
        guard bytes <= limits.maxSessionBytes else { return .failure(.sessionTooLarge(bytes: bytes, limit: limits.maxSessionBytes)) }
        return .success((writes, bytes))
    }

    /// Applies sets and removals at once. A removal is remembered with its stamp, and stays
    /// dirty when what it removed had not been sent yet.
    func write(_ writes: [AttributeWrite], maxRemovals: Int) {
        guard !writes.isEmpty else { return }
        var writes = writes
        for index in writes.indices {
            let name = writes[index].name
            let earlierRemoval = removals.isEmpty ? nil : removals[name]
            if writes[index].value != nil {
                guard let earlierRemoval else { continue }
                writes[index].dirty = writes[index].dirty || earlierRemoval.dirty
                removals.removeValue(forKey: name)
            } else {
                removals[name] = Removal(stamp: writes[index].stamp, dirty: writes[index].dirty || earlierRemoval?.dirty == true)
            }
        }
        for name in attributes.apply(writes) { removals[name]?.dirty = true }
        while removals.count > maxRemovals, let oldest = removals.min(by: { $0.value.stamp < $1.value.stamp }) {
            removals.removeValue(forKey: oldest.key)
        }
    }

    func stamp(of name: String) -> SessionVersion { attributes.stamp(of: name) ?? removals[name]?.stamp ?? 0 }

    /// Merges a delta attribute by attribute; returns whether anything changed.
    func merge(_ delta: SessionDelta, maxRemovals: Int) -> Bool {
        if delta.kind == .snapshot, attributes.count == 0, removals.isEmpty, delta.otherChanges.isEmpty,
            !delta.packedValues.hasDuplicateNames
        {
            // A snapshot into an empty entry (state transfer): every value wins, and the
            // delta's buffer becomes the entry's as it is.
            attributes = delta.packedValues
            attributes.clearDirty()
            return mergeMetadata(of: delta, attributesChanged: attributes.count > 0)
        }
        var writes = [AttributeWrite]()
        for change in delta.attributes {
            let stored = attributes.withRecord(change.name) { record, buffer in
                (stamp: record.stamp(in: buffer), same: change.value.map { record.holds($0, in: buffer) } ?? false)
            }
            let current = stored?.stamp ?? removals[change.name]?.stamp ?? 0
            let sameValue = stored?.same ?? (change.value == nil)
            // A snapshot is the owner's word: on an equal stamp its value wins, which
            // repairs a replica that kept a write its old owner never acknowledged.
            let wins = change.stamp > current || (delta.kind == .snapshot && change.stamp == current && !sameValue)
            guard wins else { continue }
            writes.append(AttributeWrite(name: change.name, value: change.value, stamp: change.stamp, dirty: false))
        }
        if delta.kind == .snapshot && attributes.count > 0 {
            // Attributes the owner's snapshot no longer has were removed there, even if the
            // removal itself was forgotten; anything stamped later is newer than the snapshot.
            let present = Set(delta.attributes.map(\.name))
            attributes.forEach { record, buffer in
                guard record.stamp(in: buffer) <= delta.version else { return }
                let name = record.name(in: buffer)
                guard !present.contains(name) else { return }
                writes.append(AttributeWrite(name: name, value: nil, stamp: delta.version, dirty: false))
            }
        }
        let changed = !writes.isEmpty
        write(writes, maxRemovals: maxRemovals)
        return mergeMetadata(of: delta, attributesChanged: changed)
    }

    /// Merges the delta's metadata, last access and version; returns whether anything changed.
    private func mergeMetadata(of delta: SessionDelta, attributesChanged: Bool) -> Bool {
        var changed = attributesChanged
        if let incoming = delta.metadata,
            incoming.stamp > metadata.stamp || (delta.kind == .snapshot && incoming != metadata && incoming.stamp == metadata.stamp)
        {
            metadata = incoming
            changed = true
        }
        if delta.lastAccessedAt > lastAccessedAt {
            lastAccessedAt = delta.lastAccessedAt
            if delta.kind == .touch { changed = true }
        }
        if delta.version > version {
            version = delta.version
            changed = true
        }
        return changed
    }

    func takeDelta(id: SessionID) -> SessionDelta {
        var changes = [AttributeChange]()
        attributes.forEach { record, buffer in
            guard record.isDirty(in: buffer) else { return }
            changes.append(AttributeChange(name: record.name(in: buffer), stamp: record.stamp(in: buffer), value: record.value(in: buffer)))
        }
        attributes.clearDirty()
        if !removals.isEmpty {
            for (name, removal) in removals where removal.dirty {
                changes.append(AttributeChange(name: name, stamp: removal.stamp, value: nil))
                removals[name]?.dirty = false
            }
        }
        let delta = SessionDelta(
            id: id, kind: .update, version: version, previousVersion: flushedVersion, lastAccessedAt: lastAccessedAt,
            metadata: metadataDirty ? metadata : nil, attributes: changes)
        metadataDirty = false
        flushedVersion = version
        return delta
    }

    /// The values travel in the shared packed buffer: no copy per attribute.
    func snapshotDelta(id: SessionID) -> SessionDelta {
        var delta = SessionDelta(
            id: id, kind: .snapshot, version: version, previousVersion: version, lastAccessedAt: lastAccessedAt,
            metadata: metadata, attributes: removals.map { AttributeChange(name: $0.key, stamp: $0.value.stamp, value: nil) })
        delta.packedValues = attributes
        return delta
    }
}

/// How the store is sized and when things are dropped.
public struct SessionStoreConfiguration: Hashable, Sendable {
    /// Size and count limits.
    public var limits: SessionLimits
    /// Lock shards; more shards, less contention. Default 64.
    public var shardCount: Int
    /// The idle timeout of new sessions in milliseconds. Default 30 minutes.
    package var defaultMaxInactiveMilliseconds: Int64
    /// How long a tombstone keeps an ended session from coming back. Default 10 minutes,
    /// well above any delta's time in flight.
    package var tombstoneLifetimeMilliseconds: Int64
    /// The most tombstones kept; the oldest go first. Default 1,000,000.
    public var maxTombstones: Int
    /// The most recent attribute removals remembered per session, so a stale set of a
    /// removed attribute cannot bring it back. Default 64.
    public var maxRemovalsPerSession: Int
    /// A read moves the last-access time only when it advanced by at least this much,
    /// so that a burst of reads makes one lazy touch. Default 1 second.
    package var touchGranularityMilliseconds: Int64

    /// The idle timeout of sessions created without one. Default 30 minutes.
    public var defaultMaxInactive: Duration {
        get { .milliseconds(defaultMaxInactiveMilliseconds) }
        set { defaultMaxInactiveMilliseconds = newValue.wholeMilliseconds }
    }

    /// How long an ended session's tombstone keeps it from coming back. Default 10 minutes.
    public var tombstoneLifetime: Duration {
        get { .milliseconds(tombstoneLifetimeMilliseconds) }
        set { tombstoneLifetimeMilliseconds = newValue.wholeMilliseconds }
    }

    /// The least move of the last-access time a read records. Default 1 second.
    public var touchGranularity: Duration {
        get { .milliseconds(touchGranularityMilliseconds) }
        set { touchGranularityMilliseconds = newValue.wholeMilliseconds }
    }

    /// The defaults, each explained on its property.
    public init(
        limits: SessionLimits = SessionLimits(), shardCount: Int = 64,
        defaultMaxInactive: Duration = .seconds(30 * 60),
        tombstoneLifetime: Duration = .seconds(10 * 60), maxTombstones: Int = 1_000_000,
        maxRemovalsPerSession: Int = 64, touchGranularity: Duration = .seconds(1)
    ) {
        self.limits = limits
        self.shardCount = max(1, shardCount)
        self.defaultMaxInactiveMilliseconds = defaultMaxInactive.wholeMilliseconds
        self.tombstoneLifetimeMilliseconds = tombstoneLifetime.wholeMilliseconds
        self.maxTombstones = maxTombstones
        self.maxRemovalsPerSession = maxRemovalsPerSession
        self.touchGranularityMilliseconds = touchGranularity.wholeMilliseconds
    }
}
