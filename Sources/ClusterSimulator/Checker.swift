import ClusterProtocol
import SessionCore

/// Keeps a model of every acknowledged write and checks the invariants of ARCHITECTURE.md.
///
/// After every step: I2 (at most one leader per term) and I6 (queues and pending requests
/// stay bounded). On every completed read: I4 (it shows every write acknowledged before the
/// read was issued) and I5 (it does not show a session whose end was acknowledged). Once
/// the cluster is stable after the faults: I1 (every acknowledged `.replicated` write is on
/// every replica), I3 (all replicas of every session agree) and I5 again, on the stores.
/// Throughout, a write refused past its deadline is seen nowhere: not by a read, not on a
/// replica (its values are unique to it).
package final class Checker {
    /// Violations found, in order; the first is the one to debug.
    package private(set) var violations: [String] = []
    /// Writes acknowledged with a replicated concern.
    package private(set) var acknowledgedWrites = 0
    /// Reads completed with a session.
    package private(set) var completedReads = 0
    /// Completions of any kind, successful or not.
    package private(set) var completions = 0
    /// Session events seen, by event.
    package private(set) var events: [SessionEvent: Int] = [:]

    unowned(unsafe) var simulation: Simulation!

    struct Issued {
        enum Kind {
            case write(WriteOperation, WriteConcern)
            case read
        }
        var kind: Kind
        var session: SessionID
        var node: Int
        var issuedAt: Timestamp
        var completed = 0
    }

    /// One acknowledged attribute write in the model.
    package struct AcknowledgedWrite {
        package var attribute: String
        package var version: SessionVersion
        package var value: AttributeValue?
        package var acknowledgedAt: Timestamp
    }

    var issued: [RequestID: Issued] = [:]
    /// How each write completed (the last completion, should there be several).
    package private(set) var writeResults: [RequestID: Result<SessionVersion, ClusterFailure>] = [:]
    /// How each read completed.
    package private(set) var readResults: [RequestID: ReadResult] = [:]
    /// Per session, the acknowledged attribute writes.
    package internal(set) var model: [SessionID: [AcknowledgedWrite]] = [:]
    /// Sessions whose creation was acknowledged, and when.
    package internal(set) var created: [SessionID: Timestamp] = [:]
    /// Sessions someone tried to end (any outcome): their attributes are not checked.
    package internal(set) var endAttempted: Set<SessionID> = []
    /// Sessions whose end was acknowledged, and when (I5).
    package internal(set) var ended: [SessionID: Timestamp] = [:]
    /// Per session, the values of writes refused past their deadline: never to be seen.
    package internal(set) var refusedPastDeadline: [SessionID: Set<AttributeValue>] = [:]
    /// Writes refused past their deadline.
    package private(set) var writesRefusedPastDeadline = 0
    var leaders: [Term: NodeID] = [:]
    /// The session the last final-check violation is about, for debugging.
    package internal(set) var problemSession: SessionID?

    init() {}

    func fail(_ message: String) {
        violations.append("t=\(simulation.now.milliseconds - 1_000_000)ms step \(simulation.steps): \(message)")
    }

    // MARK: Requests

    func issuedWrite(_ requestID: RequestID, through node: Int, _ operation: WriteOperation, to session: SessionID, concern: WriteConcern) {
        issued[requestID] = Issued(kind: .write(operation, concern), session: session, node: node, issuedAt: simulation.now)
        switch operation {
        case .invalidate, .rotate: endAttempted.insert(session)
        default: break
        }
    }

    func issuedRead(_ requestID: RequestID, through node: Int, _ session: SessionID) {
        issued[requestID] = Issued(kind: .read, session: session, node: node, issuedAt: simulation.now)
    }

    /// A crashed or restarted node's requests are gone with it: its caller saw an error.
    func forgetRequests(of node: Int) {
        for key in issued.keys where issued[key]!.node == node { issued.removeValue(forKey: key) }
    }

    func completedWrite(_ requestID: RequestID, by node: Int, _ result: Result<SessionVersion, ClusterFailure>) {
        completions += 1
        writeResults[requestID] = result
        guard var request = issued[requestID] else { return }
        request.completed += 1
        issued[requestID] = request
        if request.completed > 1 { fail("write \(requestID) completed \(request.completed) times") }
        if case .failure(.deadlineExceeded) = result {
            writesRefusedPastDeadline += 1
            if case .write(.update(let changes), _) = request.kind {
                refusedPastDeadline[request.session, default: []].formUnion(changes.updated.values)
            }
        }
        guard case .success(let version) = result, case .write(let operation, let concern) = request.kind else { return }
        guard concern.backupsRequired > 0 else { return }
        acknowledgedWrites += 1
        let now = simulation.now
        switch operation {
        case .create(_, let changes):
            created[request.session] = now
            for (name, value) in changes.updated {
                model[request.session, default: []].append(AcknowledgedWrite(attribute: name, version: version, value: value, acknowledgedAt: now))
            }
        case .update(let changes):
            for (name, value) in changes.updated {
                model[request.session, default: []].append(AcknowledgedWrite(attribute: name, version: version, value: value, acknowledgedAt: now))
            }
            for name in changes.removed {
                model[request.session, default: []].append(AcknowledgedWrite(attribute: name, version: version, value: nil, acknowledgedAt: now))
            }
        case .invalidate:
            ended[request.session] = now
        case .rotate(let newID):
            ended[request.session] = now
            created[newID] = now
        case .touch:
            break
        }
    }

    func completedRead(_ requestID: RequestID, by node: Int, _ result: ReadResult) {
        completions += 1
        readResults[requestID] = result
        guard var request = issued[requestID] else { return }
        request.completed += 1
        issued[requestID] = request
        if request.completed > 1 { fail("read \(requestID) completed \(request.completed) times") }
        let session = request.session
        switch result {
        case .found(let delta) where delta.kind == .snapshot:
            completedReads += 1
            if let refused = refusedValue(in: delta) {
                fail("a read through n\(node + 1) of \(session) shows \(refused), written by a write refused past its deadline")
            }
            if let end = ended[session], end < request.issuedAt {
                fail("I5: read through n\(node + 1) found \(session) after its end was acknowledged")
            }
            guard !endAttempted.contains(session) else { return }
            if let problem = missingWrites(in: delta, acknowledgedBefore: request.issuedAt) {
                fail("I4: read through n\(node + 1) of \(session) \(problem)")
            }
        case .found, .notFound:
            if let at = created[session], at < request.issuedAt, !endAttempted.contains(session) {
                fail("I4: read through n\(node + 1) did not find \(session), created and acknowledged before")
            }
        case .notModified, .failed:
            break
        }
    }

    /// Describes the first acknowledged write `snapshot` lacks, or nil.
    func missingWrites(in snapshot: SessionDelta, acknowledgedBefore cutoff: Timestamp?) -> String? {
        let stamps = Dictionary(snapshot.attributes.map { ($0.name, $0) }, uniquingKeysWith: { a, b in a.stamp >= b.stamp ? a : b })
        for write in model[snapshot.id] ?? [] where cutoff.map({ write.acknowledgedAt < $0 }) ?? true {
            let present = stamps[write.attribute]
            let stamp = present?.stamp ?? 0
            if stamp < write.version {
                return "lacks \(write.attribute)@\(write.version) (has stamp \(stamp), session \(snapshot.version))"
            }
            if stamp == write.version && present?.value != write.value {
                return "has another value for \(write.attribute)@\(write.version)"
            }
        }
        return nil
    }

    /// A value of `snapshot` that a write refused past its deadline carried, or nil.
    func refusedValue(in snapshot: SessionDelta) -> String? {
        guard let refused = refusedPastDeadline[snapshot.id] else { return nil }
        return snapshot.attributes.first { $0.value.map(refused.contains) == true }.map { "\($0.name)=\($0.value!.string ?? "?")" }
    }

    func observed(_ event: SessionEvent, by node: Int) {
        events[event, default: 0] += 1
        if case .expired(let id) = event {
            // Expiry ends a session as an acknowledged invalidation does (I5).
            endAttempted.insert(id)
            ended[id] = ended[id] ?? simulation.now
        }
        if events[event]! > 1 { fail("event \(event) fired \(events[event]!) times") }
    }

    // MARK: After every step

    package func checkAfterStep() {
        for index in simulation.nodes.indices {
            guard let node = simulation.nodes[index].node else { continue }
            if node.currentRole == .leader {
                let term = node.currentTerm
                if let other = leaders[term], other != node.configuration.id {
                    fail("I2: \(other) and \(node.configuration.id) both lead term \(term)")
                }
                leaders[term] = node.configuration.id
            }
            let bound = node.configuration.maxQueuedBytesPerPeer + 2 * node.configuration.flushThresholdBytes
            if node.queuedBytesHighWater > bound {
                fail("I6: n\(index + 1) queues \(node.queuedBytesHighWater) bytes for one peer, bound \(bound)")
            }
            if node.pendingCount > 100_000 { fail("I6: n\(index + 1) has \(node.pendingCount) pending requests") }
        }
    }

    // MARK: Once stable

    /// Checks I1, I3 and I5 on the replicas of the stable cluster, and that every request
    /// made through a node that is still up completed.
    package func checkFinal() {
        guard let leader = simulation.leader, let view = simulation.nodes[leader].node?.installedView else {
            fail("I3: no leader at the end")
            return
        }
        let first = simulation.nodes[leader].node!.configuration
        let table = PartitionTable(
            members: view.members.map(\.id), partitionCount: first.partitionCount, replicationFactor: first.replicationFactor)
        var byID: [NodeID: ClusterNode] = [:]
        for index in simulation.liveIndices { byID[simulation.nodes[index].id] = simulation.nodes[index].node! }
        // I3: replicas agree on every session any of them holds.
        var sessions: [SessionID: [NodeID: SessionDelta]] = [:]
        for (id, node) in byID {
            for snapshot in node.store.snapshots(where: { table.holds(id, PartitionID(of: $0, count: first.partitionCount)) }) {
                sessions[snapshot.id, default: [:]][id] = snapshot
            }
        }
        for (session, copies) in sessions.sorted(by: { $0.key.text < $1.key.text }) {
            let replicas = table.replicas(of: PartitionID(of: session, count: first.partitionCount))
            let forms = replicas.map { replica -> String in
                guard let copy = copies[replica], copy.kind == .snapshot else { return "ended" }
                let attributes = copy.attributes.filter { $0.value != nil }.sorted { $0.name < $1.name }
                    .map { "\($0.name)=\($0.value!.bytes)" }
                return "\(copy.version) \(attributes)"
            }
            if Set(forms).count > 1 {
                problemSession = session
                fail("I3: replicas of \(session) differ: \(zip(replicas, forms).map { "\($0): \($1)" })")
                return
            }
        }
        for (session, copies) in sessions.sorted(by: { $0.key.text < $1.key.text }) {
            for (replica, copy) in copies.sorted(by: { $0.key < $1.key }) {
                if let refused = refusedValue(in: copy) {
                    problemSession = session
                    fail("replica \(replica) of \(session) holds \(refused), written by a write refused past its deadline")
                    return
                }
            }
        }
        // I1 and I5 on every replica.
        for (session, _) in created.sorted(by: { $0.key.text < $1.key.text }) where !endAttempted.contains(session) {
            for replica in table.replicas(of: PartitionID(of: session, count: first.partitionCount)) {
                guard let copy = byID[replica]?.store.snapshot(session), copy.kind == .snapshot else {
                    fail("I1: acknowledged session \(session) missing on replica \(replica)")
                    return
                }
                if let problem = missingWrites(in: copy, acknowledgedBefore: nil) {
                    fail("I1: replica \(replica) of \(session) \(problem)")
                    return
                }
            }
        }
        for (session, _) in ended.sorted(by: { $0.key.text < $1.key.text }) {
            for replica in table.replicas(of: PartitionID(of: session, count: first.partitionCount)) {
                if let copy = byID[replica]?.store.snapshot(session), copy.kind == .snapshot {
                    fail("I5: ended session \(session) is live again on \(replica)")
                    return
                }
            }
        }
        for (requestID, request) in issued.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where request.completed == 0 {
            fail("request \(requestID) through n\(request.node + 1) never completed")
            return
        }
    }
}
