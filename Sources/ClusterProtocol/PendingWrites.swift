import SessionCore

/// The writes this node owns that wait for their write concern, and what each session's
/// backups acknowledged while a write waited on it.
///
/// A write names its targets (a session and the version it wrote; two for a rotation). An
/// ack credits a backup with a version of a session; a write is met when, for every
/// target, `backupsRequired` backups *of the current view* hold a version at or past the
/// target's (I1). Credits are kept only for sessions with a write waiting on them, so the
/// table is as small as the writes in flight. An ack costs one lookup per acknowledged
/// delta, and only the writes on the credited sessions are checked after it.
struct PendingWrites {
    private var writes: [UInt64: PendingWrite] = [:]
    private var lastID: UInt64 = 0
    private var waiters: [SessionID: SessionWaiters] = [:]
    /// Writes credited since the last ``takeMet(all:in:)``, in any order, repeats allowed.
    private var credited: [UInt64] = []
    /// Credits came while no write could complete (no view or no lease): the next check
    /// looks at every write, so one met then is not left to its deadline.
    private var recheckAll = false

    /// True when no write waits.
    var isEmpty: Bool { writes.isEmpty }
    /// The writes waiting.
    var count: Int { writes.count }
    /// The sessions with a write waiting (each holds its backups' credits).
    var sessionCount: Int { waiters.count }
    /// True when an ack credited a write since the last ``takeMet(all:in:)``.
    var hasCredits: Bool { recheckAll || !credited.isEmpty }
    /// The ids of the waiting writes, ascending: the order they are answered in.
    var ids: [UInt64] { writes.keys.sorted() }

    /// The waiting write `id`, if it still waits.
    subscript(id: UInt64) -> PendingWrite? { writes[id] }

    /// Adds a write; returns its id (ids ascend in the order writes are added).
    @discardableResult
    mutating func add(_ write: PendingWrite) -> UInt64 {
        lastID += 1
        writes[lastID] = write
        for target in write.targets { waiters[target.id, default: SessionWaiters()].writes.append(lastID) }
        return lastID
    }

    /// Removes the write `id` (its sessions' credits go with the last write on them).
    @discardableResult
    mutating func remove(_ id: UInt64) -> PendingWrite? {
        guard let write = writes.removeValue(forKey: id) else { return nil }
        for target in write.targets {
            guard let entry = waiters.index(forKey: target.id) else { continue }
            waiters.values[entry].writes.removeAll { $0 == id }
            if waiters.values[entry].writes.isEmpty { waiters.remove(at: entry) }
        }
        return write
    }

    /// Removes every write; returns them in id order.
    mutating func removeAll() -> [PendingWrite] {
        let all = ids.compactMap { writes[$0] }
        writes.removeAll()
        waiters.removeAll()
        credited.removeAll()
        recheckAll = false
        return all
    }

    /// Gives the write `id` until `deadline`.
    mutating func extend(_ id: UInt64, until deadline: Timestamp) { writes[id]?.deadline = deadline }

    /// The highest version of `session` that `backup` acknowledged while a write waited on
    /// it; 0 if none.
    func acknowledgedVersion(of session: SessionID, by backup: NodeID) -> SessionVersion {
        waiters[session]?.acknowledgedVersion(by: backup) ?? 0
    }

    /// `backup` acknowledged `version` of `session`. The writes on the session are checked
    /// at the next ``takeMet(all:in:)``. Nothing happens when no write waits on it.
    mutating func credit(_ session: SessionID, version: SessionVersion, by backup: NodeID) {
        guard let entry = waiters.index(forKey: session) else { return }
        waiters.values[entry].credit(backup, version: version)
        credited.append(contentsOf: waiters.values[entry].writes)
    }

    /// Forgets what `backup` acknowledged: it left the view or restarted with empty memory.
    mutating func forget(_ backup: NodeID) {
        for entry in waiters.indices { waiters.values[entry].forget(backup) }
    }

    /// Removes and returns, in id order, the writes whose concern is met in `table` (the
    /// current view's): among those credited since the last call, or among all of them
    /// with `all`. With no table (no view, or no lease) none completes, and the next call
    /// with a table checks every write (``hasCredits`` stays true until then).
    mutating func takeMet(all: Bool = false, in table: PartitionTable?) -> [PendingWrite] {
        defer { credited.removeAll(keepingCapacity: true) }
        guard let table else {
            recheckAll = recheckAll || !credited.isEmpty
            return []
        }
        var candidates = all || recheckAll ? Array(writes.keys) : credited
        recheckAll = false
        guard !candidates.isEmpty else { return [] }
        candidates.sort()
        var met = [PendingWrite]()
        var previous: UInt64?
        for id in candidates where id != previous {
            previous = id
            guard let write = writes[id], isMet(write, in: table) else { continue }
            remove(id)
            met.append(write)
        }
        return met
    }

    /// True when `backupsRequired` backups of `table` acknowledged every target.
    private func isMet(_ write: PendingWrite, in table: PartitionTable) -> Bool {
        write.targets.allSatisfy { target in
            let backups = table.backups(of: PartitionID(of: target.id, count: table.partitionCount))
            let entry = waiters[target.id]
            var acknowledged = 0
            for backup in backups where (entry?.acknowledgedVersion(by: backup) ?? 0) >= target.version {
                acknowledged += 1
            }
            return acknowledged >= min(write.backupsRequired, backups.count) && (write.backupsRequired == 0 || !backups.isEmpty)
        }
    }
}
