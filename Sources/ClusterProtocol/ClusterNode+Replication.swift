import SessionCore

/// Views, replication of deltas to backups, acknowledgements, state transfer and sweeps.
///
/// Write path on the owner: the store applies the write (stamping each attribute with the
/// new version); the node drains the store's coalesced deltas at the next flush (after
/// `flushInterval`, or at once past `flushThresholdBytes`), routes each to its partition's
/// backups only, and sends one numbered ``DeltaBatch`` per backup. A backup applies a batch
/// only in sequence and only when the batch was routed by the view it has installed: so
/// once a backup has moved to a new view, nothing from an owner of an older view lands on
/// it, which is what makes a promoted owner's state transfer complete (I1). The backup
/// acknowledges cumulatively, naming sessions it could not apply (unknown, or a gap); the
/// owner answers those with snapshots in the same stream. A write completes when
/// `backupsRequired` backups of the current view acknowledged a delta at or past its
/// version, and the owner's lease is valid.
///
/// Unacknowledged batches are resent after a silence and on every view change (re-stamped
/// with the new epoch, deltas for partitions the peer no longer backs dropped). A queue
/// past `maxQueuedBytesPerPeer` is dropped and replaced by a paced re-send of snapshots of
/// the partitions the peer backs (I6).
///
/// State transfer: when a view gives this node partitions it did not hold (or makes it the
/// owner of one it backed), it asks every other member, and the members of the previous
/// view, for their copies of those partitions; each answers, once it has installed that view,
/// with ordered chunks of snapshots. The partitions are filled when every member of the
/// view has answered; until then this node does not serve them as owner. Snapshots merge by
/// stamp, and tombstones travel too, so a transfer never resurrects an ended session (I5).
extension ClusterNode {
    // MARK: Installing a view

    func install(_ newView: View, now: Timestamp, into effects: inout [Effect]) {
        let wasMember = isMember
        let previousView = view
        let previousOwned = wasMember ? owned : []
        let previousHeld = wasMember ? held : []
        view = newView
        // Transfers to nodes outside the view will get no more credits.
        outgoingTransfers = outgoingTransfers.filter { requester, _ in newView.members.contains { $0.id == requester } }
        finishedTransfers = finishedTransfers.filter { requester, _ in newView.members.contains { $0.id == requester } }
        // Every node remembers who was removed, so that whoever leads later never takes a
        // stale join request of a removed incarnation back in.
        for member in previousView?.members ?? [] where !newView.members.contains(member) {
            removedIncarnation[member.id] = max(removedIncarnation[member.id] ?? 0, member.incarnation)
        }
        pendingJoins = pendingJoins.filter { id, joiner in
            joiner.incarnation > (removedIncarnation[id] ?? 0)
                && !newView.members.contains { $0.id == id && $0.incarnation >= joiner.incarnation }
        }
        for member in newView.members {
            if let current = known[member.id], current.incarnation > member.incarnation { continue }
            known[member.id] = member
            if member.id != id { detector.track(member.id, at: now) }
        }
        effects.append(.installedView(newView))
        guard newView.members.contains(me) else {
            table = nil
            owned = []
            held = []
            if wasMember { leftView(now: now, into: &effects) }
            if !leaving { sendJoinRequests(now: now, into: &effects) }
            replayEarlyArrivals(now: now, into: &effects)
            return
        }
        let table = PartitionTable(
            members: newView.members.map(\.id), partitionCount: configuration.partitionCount,
            replicationFactor: configuration.replicationFactor)
        self.table = table
        owned = Set(table.partitions(ownedBy: id))
        held = Set(table.partitions(heldBy: id))
        if !wasMember { filled = [] }
        filled = filled.filter { held.contains($0) && (!owned.contains($0) || previousOwned.contains($0)) }
        for partition in previousHeld.subtracting(held) { releasedAt[partition] = now }
        for partition in held { releasedAt.removeValue(forKey: partition) }

        // Streams: drop those to members gone or restarted; re-stamp and resend the rest.
        for (peer, stream) in outbound.sorted(by: { $0.key < $1.key }) {
            guard let member = newView.members.first(where: { $0.id == peer }), member == stream.member else {
                outbound.removeValue(forKey: peer)
                pendingWrites.forget(peer)
                effects.append(.disconnect(stream.member))
                continue
            }
        }
        for (peer, stream) in inbound where newView.members.first(where: { $0.id == peer })?.incarnation != stream.incarnation {
            inbound.removeValue(forKey: peer)
        }
        for peer in outbound.keys.sorted() { restampAndResend(to: peer, now: now, into: &effects) }

        // Writes this node no longer owns cannot be completed here: the caller retries.
        for key in pendingWrites.ids {
            guard let pending = pendingWrites[key] else { continue }
            if pending.targets.contains(where: { !owned.contains(partition(of: $0.id)) }) {
                pendingWrites.remove(key)
                complete(pending.origin, .failure(.retry), event: nil, now: now, into: &effects)
            }
        }
        resendPendingWritesToNewBackups(now: now, into: &effects)
        retryRequestsRoutedAway(now: now, into: &effects)
        startFill(previous: previousView, now: now, into: &effects)
        completeMetWrites(all: true, now: now, into: &effects)
        replayEarlyArrivals(now: now, into: &effects)
    }

    /// Batches that arrived, in stream order, before the view they were routed by: applied
    /// now under exactly the rule they would have met on arrival had the view been here.
    /// State-transfer requests that came before the view are answered now, as they would
    /// have been on arrival had the view been here.
    func replayEarlyArrivals(now: Timestamp, into effects: inout [Effect]) {
        guard let view, !futureBatches.isEmpty || !futureTransferRequests.isEmpty else { return }
        let due = futureBatches.filter { $0.viewEpoch == view.epoch }
        futureBatches.removeAll { $0.viewEpoch <= view.epoch }
        for batch in due { handleDeltaBatch(batch, now: now, into: &effects) }
        let requests = futureTransferRequests.filter { $0.viewEpoch <= view.epoch }
        futureTransferRequests.removeAll { $0.viewEpoch <= view.epoch }
        for request in requests { handleStateTransferRequest(request, now: now, into: &effects) }
    }

    /// This node was removed from the view (declared down, or it left). A node declared
    /// down may have missed writes and kept ones nobody acknowledged: it discards its
    /// sessions (tombstones stay, so nothing ended comes back), raises its incarnation and
    /// joins again to be refilled.
    func leftView(now: Timestamp, into effects: inout [Effect]) {
        for pending in pendingWrites.removeAll() {
            complete(pending.origin, .failure(.notInMajority), event: nil, now: now, into: &effects)
        }
        for (_, stream) in outbound.sorted(by: { $0.key < $1.key }) { effects.append(.disconnect(stream.member)) }
        outbound.removeAll()
        inbound.removeAll()
        fill = nil
        filled = []
        leaseUntil = nil
        leaseGrantedBy = nil
        awaitingFirstLease = true
        election.stopLeading()
        if leaving {
            election.markLeft()
            return
        }
        outgoingTransfers.removeAll()
        finishedTransfers.removeAll()
        store.removeAll()
        incarnation += 1
        known[id] = me
    }

    // MARK: Flushing deltas

    func scheduleFlush(now: Timestamp) {
        let at = now.adding(milliseconds: configuration.flushIntervalMilliseconds)
        nextFlushAt = min(nextFlushAt ?? at, at)
    }

    /// Sends now the deltas that acknowledged-write requests wait for, rather than at the
    /// flush timer. The runtime calls it once per event-loop turn. Group commit: a backup
    /// that has a batch of ours unacknowledged gets the new deltas when that ack arrives
    /// (``handleDeltaAck(_:now:into:)`` sends what waits), so an idle link costs a write
    /// no flush interval, and a busy one carries one batch per round trip, as full as the
    /// timer's. Writes nobody waits on (`.local`) keep the timer's coalescing.
    func flushForWaitingWrites(now: Timestamp, into effects: inout [Effect]) {
        guard started, nextFlushAt != nil, !pendingWrites.isEmpty else { return }
        observe(now)
        enqueueDirtyDeltas(now: now, includeTouches: false)
        for peer in outbound.keys.sorted() where outbound[peer]?.unacked.isEmpty == true {
            sendWaiting(to: peer, now: now, into: &effects)
        }
    }

    func flush(now: Timestamp, includeTouches: Bool, into effects: inout [Effect]) {
        enqueueDirtyDeltas(now: now, includeTouches: includeTouches)
        for peer in outbound.keys.sorted() { sendWaiting(to: peer, now: now, into: &effects) }
    }

    /// Drains the store's coalesced deltas into the streams of their partitions' backups.
    func enqueueDirtyDeltas(now: Timestamp, includeTouches: Bool) {
        nextFlushAt = nil
        unflushedBytes = 0
        var deltas = store.drainDeltas(includeTouches: includeTouches)
        guard let table, isMember else { return }
        deltas.sort { $0.id.precedes($1.id) }
        for delta in deltas {
            let partition = partition(of: delta.id)
            // Only the owner replicates; a delta drained after ownership moved is in
            // the store the new owner fetches from.
            guard table.owner(of: partition) == id else { continue }
            for backup in table.backups(of: partition) { enqueue(delta, to: backup, now: now) }
        }
    }

    func enqueue(_ delta: SessionDelta, to peer: NodeID, now: Timestamp) {
        // A stream exists only to a member of the installed view (a view change drops the others).
        if let index = outbound.index(forKey: peer) {
            outbound.values[index].enqueue(delta)
            return
        }
        guard let member = view?.members.first(where: { $0.id == peer }) else { return }
        var stream = OutboundStream(member: member, now: now)
        stream.enqueue(delta)
        outbound[peer] = stream
    }

    func sendWaiting(to peer: NodeID, now: Timestamp, into effects: inout [Effect]) {
        // Taken out of the table and put back on every path: changing a copy that the
        // table still shares would copy the stream's queues.
        guard let view, var stream = outbound.removeValue(forKey: peer) else { return }
        // Paced state transfer after an overflow: about one chunk per round trip.
        let resyncBytes = min(configuration.stateTransferChunkBytes, max(1, configuration.maxQueuedBytesPerPeer / 2))
        while stream.unacked.isEmpty, stream.waitingBytes < resyncBytes, stream.isResyncing {
            let session = stream.resync[stream.resyncNext]
            stream.resyncNext += 1
            let partition = partition(of: session)
            guard owned.contains(partition), table?.backups(of: partition).contains(peer) == true,
                let snapshot = store.snapshot(session)
            else { continue }
            stream.enqueue(snapshot)
        }
        if !stream.isResyncing, !stream.resync.isEmpty {
            stream.resync = []
            stream.resyncNext = 0
        }
        guard !stream.waiting.isEmpty else {
            outbound[peer] = stream
            return
        }
        // One batch may always be in flight, however large, so a big session still moves.
        if !stream.unacked.isEmpty, stream.queuedBytes > configuration.maxQueuedBytesPerPeer {
            // I6: a slow or silent peer does not grow memory. The unacknowledged batches
            // keep their numbers but lose their deltas (the peer's in-order stream must not
            // see a gap), nothing new is sent until the peer catches up, and then it gets
            // snapshots of every partition it backs for this node.
            queueOverflows += 1
            stream.dropForOverflow()
            startResync(&stream, to: peer)
            outbound[peer] = stream
            return
        }
        let batch = stream.nextBatch(from: id, epoch: view.epoch, now: now)
        outbound[peer] = stream
        if let batch { effects.append(.send(.deltaBatch(batch), to: stream.member, channel: .stream)) }
    }

    /// Drops what waits for `peer` and lists every session it backs for this node, to be
    /// re-sent as snapshots (in partition order, one pass over the store).
    private func startResync(_ stream: inout OutboundStream, to peer: NodeID) {
        let backed = Set(owned.filter { table?.backups(of: $0).contains(peer) == true })
        stream.resync = store.sessionIDs(where: { backed.contains(self.partition(of: $0)) })
            .map { (partition: partition(of: $0), id: $0) }
            .sorted { $0.partition != $1.partition ? $0.partition < $1.partition : $0.id.precedes($1.id) }
            .map(\.id)
        stream.resyncNext = 0
    }

    func restampAndResend(to peer: NodeID, now: Timestamp, into effects: inout [Effect]) {
        guard var stream = outbound[peer], let view, let table else { return }
        let resend = stream.restamp(epoch: view.epoch, now: now) { delta in
            let partition = partition(of: delta.id)
            return table.owner(of: partition) == id && table.backups(of: partition).contains(peer)
        }
        stream.filterWaiting { table.backups(of: partition(of: $0.id)).contains(peer) }
        outbound[peer] = stream
        for batch in resend { effects.append(.send(.deltaBatch(batch), to: stream.member, channel: .stream)) }
    }

    func retransmit(now: Timestamp, into effects: inout [Effect]) {
        for peer in outbound.keys.sorted() {
            guard let stream = outbound[peer] else { continue }
            if !stream.unacked.isEmpty,
                now.milliseconds(since: stream.lastProgressAt) >= Timing.retransmitMilliseconds(configuration)
            {
                restampAndResend(to: peer, now: now, into: &effects)
            } else if stream.unacked.isEmpty, stream.isResyncing {
                sendWaiting(to: peer, now: now, into: &effects)
            }
        }
    }

    // MARK: Receiving deltas

    func handleDeltaBatch(_ batch: DeltaBatch, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(batch.from, now: now)
        if let view, batch.viewEpoch > view.epoch, isReady || leaving {
            // The sender installed a newer view first (the leader's view reaches members one
            // link at a time). Dropping the batch would cost a retransmission timeout (300 ms)
            // just when a failover wants the new backups' acks; keep it until the view comes.
            // Bounded: past the limit, the retransmission repairs as before (I6).
            if futureBatches.count < Timing.maxFutureBatches { futureBatches.append(batch) }
            return
        }
        guard isReady || leaving, let view, batch.viewEpoch == view.epoch, leaseValid(now: now) || leaving,
            let sender = view.members.first(where: { $0.id == batch.from })
        else { return }
        var stream = inbound[batch.from] ?? InboundStream(incarnation: sender.incarnation)
        var needSnapshots = [SessionID]()
        if stream.admit(batch.sequence, from: sender.incarnation) {
            for delta in batch.deltas {
                switch store.apply(delta, now: wall(now)) {
                case .gap, .unknownSession, .rejected: needSnapshots.append(delta.id)
                case .applied, .unchanged, .sessionEnded: break
                }
            }
        }
        inbound[batch.from] = stream
        let ack = DeltaAck(from: id, sequence: stream.acknowledged, needSnapshots: needSnapshots)
        effects.append(.send(.deltaAck(ack), to: sender, channel: .stream))
    }

    func handleDeltaAck(_ ack: DeltaAck, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(ack.from, now: now)
        // The stream is changed in place, through its index: a copy would copy its queues.
        guard let index = outbound.index(forKey: ack.from) else { return }
        // An ack for a batch this stream never sent comes from an earlier incarnation of the
        // peer (its link held the ack through a cut while the peer rejoined): taken for this
        // stream it would drop batches the peer never had, which the peer then awaits
        // forever. Acks do not name the stream they belong to, so a stale ack for a number
        // this stream did send still passes (see docs/ARCHITECTURE.md, known gaps).
        let missing = ack.needSnapshots.isEmpty ? nil : Set(ack.needSnapshots)
        let known = outbound.values[index].acknowledge(through: ack.sequence, now: now) { batch in
            guard !pendingWrites.isEmpty else { return }
            // By index: binding each delta would copy it (a retain per reference it holds).
            let deltas = batch.deltas
            for position in deltas.indices where missing?.contains(deltas[position].id) != true {
                pendingWrites.credit(deltas[position].id, version: deltas[position].version, by: ack.from)
            }
        }
        guard known else { return }
        for sessionID in ack.needSnapshots.sorted(by: { $0.precedes($1) }) where owned.contains(partition(of: sessionID)) {
            if let snapshot = store.snapshot(sessionID) { outbound.values[index].enqueue(snapshot) }
        }
        // Asked through the index too: a local copy would share the queues sendWaiting changes.
        let hasWaiting = !outbound.values[index].waiting.isEmpty
        let resyncReady = outbound.values[index].isResyncing && outbound.values[index].unacked.isEmpty
        if hasWaiting || resyncReady {
            sendWaiting(to: ack.from, now: now, into: &effects)
        }
        completeMetWrites(now: now, into: &effects)
    }

    // MARK: Completing writes

    /// Completes, in id order, the pending writes whose concern is met: those an ack just
    /// credited, or all of them with `all` (a new view changes who the backups are).
    func completeMetWrites(all: Bool = false, now: Timestamp, into effects: inout [Effect]) {
        guard all || pendingWrites.hasCredits else { return }
        let table = leaseValid(now: now) ? self.table : nil
        for write in pendingWrites.takeMet(all: all, in: table) {
            complete(write.origin, .success(write.result), event: write.event, now: now, into: &effects)
        }
    }

    // MARK: State transfer

    func startFill(previous: View?, now: Timestamp, into effects: inout [Effect]) {
        let missing = held.subtracting(filled).sorted()
        guard !missing.isEmpty, let view else {
            fill = nil
            return
        }
        let state = IncomingTransfer(
            epoch: view.epoch, partitions: missing, requester: id, required: view.members.map(\.id).filter { $0 != id },
            optional: (previous?.members ?? []).map(\.id).filter { $0 != id }, now: now)
        fill = state
        for source in state.sources { requestTransfer(from: source, now: now, into: &effects) }
        finishFillIfDone()
    }

    /// Asks `source` for its part of the fill from the start, under a new transfer id.
    func requestTransfer(from source: NodeID, now: Timestamp, into effects: inout [Effect]) {
        guard let request = fill?.request(from: source, transferID: nextTransferID + 1, now: now) else { return }
        nextTransferID += 1
        send(.stateTransferRequest(request), to: source, .stream, into: &effects)
    }

    func retryFill(now: Timestamp, into effects: inout [Effect]) {
        guard let state = fill else { return }
        for source in state.stalled(now: now, timeoutMilliseconds: Timing.transferRetryMilliseconds(configuration)) {
            requestTransfer(from: source, now: now, into: &effects)
        }
    }

    func finishFillIfDone() {
        guard let state = fill, state.isDone else { return }
        filled.formUnion(state.partitions.filter { held.contains($0) })
        fill = nil
    }

    func handleStateTransferRequest(_ request: StateTransferRequest, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(request.from, now: now)
        // Answer only once this node has installed the requester's view: from then on, no
        // owner of an older view can still add data to this node's copy.
        guard let view else { return }
        guard view.epoch >= request.viewEpoch else {
            // The requester installed the view first. Ignoring the request would cost the
            // requester its retry interval (500 ms) before it may serve the partitions it
            // took over, which is most of a failover; answer it when the view arrives. One
            // kept per requester (its newest), so this stays as small as the membership.
            futureTransferRequests.removeAll { $0.from == request.from }
            futureTransferRequests.append(request)
            return
        }
        if let finished = finishedTransfers[request.from], outgoingTransfers[request.from] == nil,
           finished.transferID == request.transferID, finished.viewEpoch == request.viewEpoch
        {
            // A credit for one of the last chunks of a transfer already sent in full.
            return
        }
        if let current = outgoingTransfers[request.from] {
            if current.transferID == request.transferID {
                // A credit: the requester applied a chunk; send the next one.
                sendNextTransferChunk(to: request.from, into: &effects)
                return
            }
            // A late credit of a transfer the requester has since replaced.
            if request.transferID < current.transferID && request.viewEpoch <= current.viewEpoch { return }
        }
        outgoingTransfers[request.from] = OutgoingTransfer(
            transferID: request.transferID, viewEpoch: request.viewEpoch, partitions: Set(request.partitions),
            sessions: Set(request.sessions))
        for _ in 0..<Timing.transferWindowChunks(configuration) {
            guard sendNextTransferChunk(to: request.from, into: &effects) else { break }
        }
    }

    /// Sends the next chunk of the transfer to `requester`. Returns false once the last
    /// chunk is sent.
    @discardableResult
    func sendNextTransferChunk(to requester: NodeID, into effects: inout [Effect]) -> Bool {
        // Taken out while it is cut, so its read-ahead ids are not copied on write.
        guard var transfer = outgoingTransfers.removeValue(forKey: requester) else { return false }
        let chunk = transfer.nextChunk(from: store, maxBytes: configuration.stateTransferChunkBytes) { self.partition(of: $0) }
        let message = StateTransferChunk(
            from: id, transferID: transfer.transferID, index: chunk.index, last: chunk.last, snapshots: chunk.snapshots)
        send(.stateTransferChunk(message), to: requester, .stream, into: &effects)
        if chunk.last {
            finishedTransfers[requester] = (transfer.transferID, transfer.viewEpoch)
        } else {
            outgoingTransfers[requester] = transfer
        }
        return !chunk.last
    }

    func handleStateTransferChunk(_ chunk: StateTransferChunk, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(chunk.from, now: now)
        guard fill != nil else { return }
        switch fill!.accept(chunk, now: now) {
        case .ignore:
            return
        case .askAgain:
            requestTransfer(from: chunk.from, now: now, into: &effects)
        case .apply(let credit):
            for snapshot in chunk.snapshots where fill!.fills(partition(of: snapshot.id)) {
                store.apply(snapshot, now: wall(now))
            }
            if let credit { send(.stateTransferRequest(credit), to: chunk.from, .stream, into: &effects) }
            finishFillIfDone()
        }
    }

    // MARK: Expiry and eviction

    /// Expires the sessions of one slice of the store; with the first slice, also evicts
    /// partitions released long enough ago.
    func sweep(slice: Int, now: Timestamp, into effects: inout [Effect]) {
        guard isReady else { return }
        let serving = owned.intersection(filled)
        // An expiry ends the session like an invalidation, and its event fires the same way:
        // once the tombstone is on as many backups as the default write concern asks. A node
        // cut off from its backups announces nothing; the next owner, which still holds the
        // session live, expires it and announces it instead, so no end is announced twice.
        let expired = store.sweepExpired(
            now: wall(now), slice: slice, of: Timing.sweepSlices, isOwner: { serving.contains(self.partition(of: $0)) })
        for event in expired {
            let version = store.snapshot(event.id)?.version ?? 0
            register(
                targets: InlineFirstList((id: event.id, version: version)), concern: configuration.defaultWriteConcern,
                origin: .expiry, event: event, result: version, now: now, into: &effects)
        }
        guard slice == 0 else { return }
        let stale = Set(releasedAt.filter { now.milliseconds(since: $0.value) >= Timing.releasedRetentionMilliseconds }.keys)
        if !stale.isEmpty {
            store.evict(where: { stale.contains(self.partition(of: $0)) })
            for partition in stale { releasedAt.removeValue(forKey: partition) }
        }
    }
}

