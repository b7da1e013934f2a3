import SessionCore

/// The application's writes and reads, on the owner and through other nodes.
///
/// Non-sticky writes are forwarded to the session's owner rather than sent as deltas to the
/// replica set by the node that took the request. The owner is the one place that stamps
/// versions, so two concurrent writes of different attributes through two nodes become two
/// versions of one history and both survive; deltas from several writers would need their
/// own conflict rule and could not be acknowledged by one lease holder. The cost is one
/// extra hop for non-sticky traffic, which the runtime avoids by routing sticky traffic to
/// the owner (``isOwner(of:)-(SessionID)``). Reads that cannot be served locally go to the owner too:
/// it is the one replica guaranteed to hold every acknowledged write (with R = 3 and
/// `.replicated(1)`, a given backup may lag).
extension ClusterNode {
    /// Writes `operation` to `session` with `concern` (nil: the configured default). The
    /// write completes with exactly one ``Effect/completeWrite(_:_:)`` for `requestID`, now
    /// or from a later message or tick. The owner refuses it unapplied once `deadline` (a
    /// wall-clock time) has passed, wherever the write was delayed on its way.
    func write(
        _ operation: WriteOperation, to session: SessionID, concern: WriteConcern?, requestID: RequestID,
        deadline: Timestamp? = nil, now: Timestamp, into effects: inout [Effect]
    ) {
        observe(now)
        let concern = concern ?? configuration.defaultWriteConcern
        guard isReady, let table, let owner = table.owner(of: partition(of: session)) else {
            effects.append(.completeWrite(requestID, .failure(.notInMajority)))
            return
        }
        if owner == id {
            performWrite(operation, to: session, concern: concern, origin: .local(requestID), deadline: deadline, now: now, into: &effects)
        } else {
            requests.forward(.write, requestID, session: session, owner: owner, deadline: now.adding(milliseconds: configuration.writeTimeoutMilliseconds))
            let forwarded = ForwardedWrite(
                from: id, requestID: requestID, sessionID: session, operation: operation, concern: concern, deadline: deadline)
            send(.forwardedWrite(forwarded), to: owner, .stream, into: &effects)
        }
    }

    /// Reads `session`. Completes with exactly one ``Effect/completeRead(_:_:)`` for `requestID`.
    /// With `touch` false the last-access time stays as it is, on whichever node serves it.
    func read(_ session: SessionID, touch: Bool, requestID: RequestID, now: Timestamp, into effects: inout [Effect]) {
        observe(now)
        guard isReady, let table, let owner = table.owner(of: partition(of: session)) else {
            effects.append(.completeRead(requestID, .failed(.notInMajority)))
            return
        }
        if owner == id {
            effects.append(.completeRead(requestID, readLocally(session, touch: touch, now: now)))
        } else {
            requests.forward(.read, requestID, session: session, owner: owner, deadline: now.adding(milliseconds: configuration.writeTimeoutMilliseconds))
            let request = ReadRequest(from: id, requestID: requestID, sessionID: session, touch: touch)
            send(.readRequest(request), to: owner, .stream, into: &effects)
        }
    }

    func readLocally(_ session: SessionID, touch: Bool, now: Timestamp) -> ReadResult {
        guard isOwner(of: session), filled.contains(partition(of: session)) else { return .failed(.retry) }
        guard leaseValid(now: now) else { return .failed(failureForWantOfLease(now: now)) }
        if store.load(session, now: wall(now), touch: touch) != nil, let snapshot = store.snapshot(session), snapshot.kind == .snapshot {
            return .found(snapshot)
        }
        if let ended = store.snapshot(session), ended.kind == .invalidate { return .found(ended) }
        return .notFound
    }

    // MARK: On the owner

    func performWrite(
        _ operation: WriteOperation, to session: SessionID, concern: WriteConcern, origin: PendingWrite.Origin,
        deadline: Timestamp? = nil, now: Timestamp, into effects: inout [Effect]
    ) {
        let partition = partition(of: session)
        guard owned.contains(partition), filled.contains(partition) else {
            complete(origin, .failure(.retry), event: nil, now: now, into: &effects)
            return
        }
        guard leaseValid(now: now) else {
            complete(origin, .failure(failureForWantOfLease(now: now)), event: nil, now: now, into: &effects)
            return
        }
        // A request the load balancer gave up on may have been sent again, through another
        // node, and acknowledged; applied now, a copy held up on the way (a paused node, a
        // slow link) would overwrite a later acknowledged write. The owner orders every write
        // of the session, so checking here, at the one place writes are applied, is enough.
        if refusedPastDeadline(deadline, session, origin: origin, now: now, into: &effects) { return }
        let target: (id: SessionID, version: SessionVersion)
        var event: SessionEvent?
        do {
            switch operation {
            case .create(let metadata, let changes):
                _ = try store.create(
                    id: session, now: wall(now), maxInactiveMilliseconds: metadata.maxInactiveMilliseconds,
                    absoluteTimeoutMilliseconds: metadata.absoluteDeadline.map { $0.milliseconds(since: metadata.createdAt) },
                    principal: metadata.principal, attributes: changes.updated)
                target = (session, 1)
                // The new id of a rotation is announced as the rotation, by the old id's owner;
                // a principal index record is the cluster's own, not the application's.
                let announced = !origin.isRotationCreate && metadata.principal != SessionMetadata.indexRecordPrincipal
                event = announced ? .created(session) : nil
                unflushedBytes += changes.byteCount
            case .update(let changes):
                let (version, changed) = try store.applyReportingChange(changes, to: session, now: wall(now))
                target = (session, version)
                unflushedBytes += changes.byteCount
                if !changed, !changes.isEmpty { replicateUnchanged(session, concern: concern) }
                if changes.isEmpty {
                    complete(origin, .success(version), event: nil, now: now, into: &effects)
                    return
                }
            case .touch(let at):
                guard store.load(session, now: max(at, wall(now))) != nil else { throw SessionStoreError.sessionNotFound(session) }
                let version = store.snapshot(session)?.version ?? 0
                complete(origin, .success(version), event: nil, now: now, into: &effects)
                return
            case .invalidate:
                guard store.invalidate(session, now: wall(now)) else {
                    throw store.snapshot(session).flatMap { $0.invalidation.map { SessionStoreError.sessionEnded(session, $0) } }
                        ?? SessionStoreError.sessionNotFound(session)
                }
                target = (session, store.snapshot(session)?.version ?? 0)
                event = .invalidated(session)
            case .rotate(let newID):
                rotate(session, to: newID, concern: concern, origin: origin, deadline: deadline, now: now, into: &effects)
                return
            }
        } catch let error as SessionStoreError {
            complete(origin, .failure(.store(error)), event: nil, now: now, into: &effects)
            return
        } catch {
            complete(origin, .failure(.retry), event: nil, now: now, into: &effects)
            return
        }
        register(
            targets: InlineFirstList(target), concern: concern, origin: origin, event: event, result: target.version, now: now,
            into: &effects)
    }

    /// A write that set values the session already had made no delta, but its caller may be
    /// retrying a write that timed out before any backup had it: the owner sends the backups
    /// a snapshot so that the acknowledgement again means "on enough copies". (A save with
    /// no changes at all completes at once and sends nothing.)
    func replicateUnchanged(_ session: SessionID, concern: WriteConcern) {
        guard concern.backupsRequired > 0, let table, let snapshot = store.snapshot(session), let now = lastNow else { return }
        for backup in table.backups(of: partition(of: session)) { enqueue(snapshot, to: backup, now: now) }
    }

    /// Waits for `concern` on `targets`, or completes at once when nothing is required.
    func register(
        targets: InlineFirstList<(id: SessionID, version: SessionVersion)>, concern: WriteConcern, origin: PendingWrite.Origin,
        event: SessionEvent?, result: SessionVersion, now: Timestamp, into effects: inout [Effect]
    ) {
        let required = min(concern.backupsRequired, max(0, configuration.replicationFactor - 1))
        if unflushedBytes >= configuration.flushThresholdBytes {
            flush(now: now, includeTouches: false, into: &effects)
        } else {
            scheduleFlush(now: now)
        }
        if required == 0 || unsafeAcknowledgeBeforeReplication {
            complete(origin, .success(result), event: event, now: now, into: &effects)
            return
        }
        pendingWrites.add(
            PendingWrite(
                origin: origin, targets: targets, backupsRequired: required,
                deadline: now.adding(milliseconds: configuration.writeTimeoutMilliseconds), event: event, result: result))
    }

    /// Rotation on the old id's owner: the new session is created where its partition lives
    /// (here, or at its owner by an internal forwarded create), then the old id ends here
    /// with a tombstone pointing at the new one.
    func rotate(
        _ oldID: SessionID, to newID: SessionID, concern: WriteConcern, origin: PendingWrite.Origin, deadline: Timestamp?,
        now: Timestamp, into effects: inout [Effect]
    ) {
        if owned.contains(partition(of: newID)), filled.contains(partition(of: newID)) {
            do {
                let session = try store.rotate(oldID, to: newID, now: wall(now))
                let ended = store.snapshot(oldID)?.version ?? 0
                var targets = InlineFirstList((id: newID, version: session.version))
                targets.append((oldID, ended))
                register(
                    targets: targets, concern: concern, origin: origin,
                    event: .idRotated(from: oldID, to: newID), result: session.version, now: now, into: &effects)
            } catch {
                complete(origin, .failure(.store(error)), event: nil, now: now, into: &effects)
            }
            return
        }
        guard let session = store.load(oldID, now: wall(now), touch: false), let table,
            let owner = table.owner(of: partition(of: newID))
        else {
            complete(origin, .failure(.store(.sessionNotFound(oldID))), event: nil, now: now, into: &effects)
            return
        }
        let metadata = SessionMetadata(
            createdAt: session.createdAt, maxInactiveMilliseconds: session.maxInactiveMilliseconds,
            absoluteDeadline: session.absoluteDeadline, principal: session.principal, stamp: 1)
        let changes = SessionChanges(updated: session.attributes)
        let internalID = requests.rotate(PendingRotation(
            origin: origin, oldID: oldID, newID: newID, concern: concern, newOwner: owner,
            deadline: now.adding(milliseconds: configuration.writeTimeoutMilliseconds), requestDeadline: deadline))
        // The create carries the request's deadline too: held up past it, it makes nothing.
        let forwarded = ForwardedWrite(
            from: id, requestID: internalID, sessionID: newID, operation: .create(metadata, changes), concern: concern,
            deadline: deadline)
        send(.forwardedWrite(forwarded), to: owner, .stream, into: &effects)
    }

    func finishRotation(_ rotation: PendingRotation, created: Result<SessionVersion, ClusterFailure>, now: Timestamp, into effects: inout [Effect]) {
        guard case .success(let newVersion) = created else {
            complete(rotation.origin, created, event: nil, now: now, into: &effects)
            return
        }
        guard isOwner(of: rotation.oldID), leaseValid(now: now) else {
            complete(rotation.origin, .failure(.retry), event: nil, now: now, into: &effects)
            return
        }
        // A create that came back after the request's deadline: the caller may have gone on
        // with the old id, so it is not ended under them. The new session, which no caller
        // was told of, is ended by the caller's runtime (`SessionCluster.rotateID`).
        if refusedPastDeadline(rotation.requestDeadline, rotation.oldID, origin: rotation.origin, now: now, into: &effects) {
            return
        }
        guard store.invalidate(rotation.oldID, now: wall(now), reason: .rotated(to: rotation.newID)) else {
            complete(rotation.origin, .failure(.retry), event: nil, now: now, into: &effects)
            return
        }
        let ended = store.snapshot(rotation.oldID)?.version ?? 0
        register(
            targets: InlineFirstList((id: rotation.oldID, version: ended)), concern: rotation.concern, origin: rotation.origin,
            event: .idRotated(from: rotation.oldID, to: rotation.newID), result: newVersion, now: now, into: &effects)
    }

    /// Answers `origin` with `.deadlineExceeded` (and reports the refusal) when `deadline`
    /// has passed on this node's wall clock; false when there is none or it has not.
    func refusedPastDeadline(
        _ deadline: Timestamp?, _ session: SessionID, origin: PendingWrite.Origin, now: Timestamp, into effects: inout [Effect]
    ) -> Bool {
        guard let deadline, wall(now) >= deadline else { return false }
        effects.append(.refusedPastDeadline(session))
        complete(origin, .failure(.deadlineExceeded), event: nil, now: now, into: &effects)
        return true
    }

    /// Delivers a result to whoever asked, and the event once the write concern is met.
    func complete(
        _ origin: PendingWrite.Origin, _ result: Result<SessionVersion, ClusterFailure>, event: SessionEvent?, now: Timestamp,
        into effects: inout [Effect]
    ) {
        if case .success = result, let event { effects.append(.event(event)) }
        switch origin {
        case .local(let requestID):
            effects.append(.completeWrite(requestID, result))
        case .forwarded(let node, let requestID):
            send(.writeReply(WriteReply(from: id, requestID: requestID, result: result)), to: node, .stream, into: &effects)
        case .rotation(let requestID):
            effects.append(.completeWrite(requestID, result))
        case .expiry:
            break
        }
    }

    func handleForwardedWrite(_ write: ForwardedWrite, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(write.from, now: now)
        guard isReady else {
            send(.writeReply(WriteReply(from: id, requestID: write.requestID, result: .failure(.notInMajority))), to: write.from, .stream, into: &effects)
            return
        }
        performWrite(
            write.operation, to: write.sessionID, concern: write.concern, origin: .forwarded(write.from, write.requestID),
            deadline: write.deadline, now: now, into: &effects)
    }

    func handleWriteReply(_ reply: WriteReply, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(reply.from, now: now)
        if let rotation = requests.settleRotation(reply.requestID) {
            finishRotation(rotation, created: reply.result, now: now, into: &effects)
            return
        }
        guard requests.settleForward(reply.requestID) != nil else { return }
        effects.append(.completeWrite(reply.requestID, reply.result))
    }

    func handleReadRequest(_ request: ReadRequest, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(request.from, now: now)
        var result = isReady ? readLocally(request.sessionID, touch: request.touch, now: now) : .failed(.notInMajority)
        if case .found(let delta) = result, let known = request.knownVersion, known == delta.version {
            result = .notModified(version: known)
        }
        send(.readReply(ReadReply(from: id, requestID: request.requestID, result: result)), to: request.from, .stream, into: &effects)
    }

    func handleReadReply(_ reply: ReadReply, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(reply.from, now: now)
        guard requests.settleForward(reply.requestID) != nil else { return }
        effects.append(.completeRead(reply.requestID, reply.result))
    }

    // MARK: After a view change

    /// A write this node still owns whose backups changed (a backup was declared down or
    /// left): its deltas went to a backup that is gone, and the new backup gets the data
    /// only through its state transfer, which earns no credit. Rather than wait for the
    /// write timeout, the owner sends each backup that has not yet acknowledged the write's
    /// version a snapshot of the session in the replication stream; the write completes
    /// when enough backups *of the new view* acknowledged a version at or past its own, as
    /// always (``completeMetWrites(all:now:into:)``), so the acknowledgement still means "on
    /// `backupsRequired` current replicas" (I1). The write is neither applied again nor
    /// completed twice: the pending entry is the same one, and a snapshot merges by stamp.
    func resendPendingWritesToNewBackups(now: Timestamp, into effects: inout [Effect]) {
        guard let table, !pendingWrites.isEmpty else { return }
        var sent = [NodeID: Set<SessionID>]()
        for key in pendingWrites.ids {
            guard let pending = pendingWrites[key] else { continue }
            for target in pending.targets where owned.contains(partition(of: target.id)) {
                for backup in table.backups(of: partition(of: target.id))
                where pendingWrites.acknowledgedVersion(of: target.id, by: backup) < target.version
                    && sent[backup]?.contains(target.id) != true
                {
                    guard let snapshot = store.snapshot(target.id) else { continue }
                    enqueue(snapshot, to: backup, now: now)
                    sent[backup, default: []].insert(target.id)
                }
            }
        }
        for peer in sent.keys.sorted() { sendWaiting(to: peer, now: now, into: &effects) }
    }

    /// Requests this node sent to an owner that the new view no longer makes the owner (it
    /// was declared down, left, or the partition moved) cannot complete as routed: they are
    /// answered with `.retry` at once, and the runtime sends them again, to the new owner,
    /// instead of holding them until the write timeout (which made a crashed owner cost
    /// about two seconds instead of the failover time).
    ///
    /// Safety of the retry. `.retry` promises nothing about the first attempt: the old owner
    /// may have applied it (and even replicated it) before it died or before it installed
    /// the new view. It is never acknowledged twice: the forward entry is removed here, so
    /// a late reply from the old owner finds nothing and is dropped, and the caller sees the
    /// one result of its retry. Nothing acknowledged is lost: an old owner acknowledges only
    /// under a valid lease and with its backups' credits, and the new owner serves the
    /// partition only after its state transfer from every member, so whatever the first
    /// attempt did is in the new owner's copy before the retry is applied. The retry is a
    /// new write at the new owner, with new stamps: an update sets the same values again (a
    /// no-op that is still replicated, see ``replicateUnchanged(_:concern:)``, when the first
    /// attempt landed; otherwise it lands now, ordered after any write acknowledged in
    /// between, as if the caller had sent it then). Invalidations and rotations the first
    /// attempt completed are recognised by the runtime's `settledByRetry`. A create whose
    /// first attempt landed finds the id taken on the retry and fails with that store error,
    /// the same honest failure a create retried after `ownerUnreachable` gets; session ids
    /// are random, so it cannot collide with someone else's session. Reads are side-effect
    /// free. Rotations whose new session's create went to an owner no longer owning it are
    /// answered `.retry` the same way (the old id is ended only after that create succeeded,
    /// so nothing is ended by the first attempt).
    func retryRequestsRoutedAway(now: Timestamp, into effects: inout [Effect]) {
        guard let table else { return }
        let routedAway = requests.removeRoutedAway { table.owner(of: partition(of: $0)) }
        fail(routedAway, with: .retry, now: now, into: &effects)
    }

    /// Answers settled requests with `failure`.
    private func fail(_ entries: [RequestTable.Entry], with failure: ClusterFailure, now: Timestamp, into effects: inout [Effect]) {
        for entry in entries {
            switch entry {
            case .forward(let requestID, let forward):
                switch forward.kind {
                case .write: effects.append(.completeWrite(requestID, .failure(failure)))
                case .read: effects.append(.completeRead(requestID, .failed(failure)))
                }
            case .rotation(_, let rotation):
                complete(rotation.origin, .failure(failure), event: nil, now: now, into: &effects)
            }
        }
    }

    /// Fails what waited too long: writes short of their concern, forwards with no answer.
    func expireRequests(now: Timestamp, into effects: inout [Effect]) {
        for key in pendingWrites.ids {
            guard let pending = pendingWrites[key], now >= pending.deadline else { continue }
            if case .expiry = pending.origin, let target = pending.targets.first(where: { _ in true }) {
                // Nobody waits on an expiry but its event: while this node owns the session
                // it keeps waiting for the backups (a view change that moves the session
                // away drops it; the next owner decides). With no backup in the view this
                // copy is the only one: announce it. Once the tombstone is gone there is
                // nothing left to replicate: drop it (memory stays bounded by tombstones).
                let backups = table?.backups(of: partition(of: target.id)) ?? []
                if store.snapshot(target.id)?.kind != .invalidate {
                    pendingWrites.remove(key)
                } else if backups.isEmpty {
                    pendingWrites.remove(key)
                    complete(pending.origin, .success(pending.result), event: pending.event, now: now, into: &effects)
                } else {
                    pendingWrites.extend(key, until: now.adding(milliseconds: configuration.writeTimeoutMilliseconds))
                }
                continue
            }
            pendingWrites.remove(key)
            let failure: ClusterFailure = leaseValid(now: now) ? .replicationTimeout : .notInMajority
            complete(pending.origin, .failure(failure), event: nil, now: now, into: &effects)
        }
        fail(requests.removeExpired(at: now), with: .ownerUnreachable, now: now, into: &effects)
    }
}

extension SessionChanges {
    /// Bytes of names and values set, for the flush threshold.
    var byteCount: Int { updated.reduce(0) { $0 + $1.key.utf8.count + $1.value.bytes.count } }
}
