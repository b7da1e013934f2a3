import SessionCore

/// Membership, failure detection, election, views and leases.
///
/// Failure detection: every member heartbeats every other member over UDP each interval
/// (all-to-all; fine for the few dozen nodes an app-server tier has). Any message counts as
/// a sign of life. The leader suspects a member silent for `suspectAfter`, and asks two
/// other members whether they still hear it (the Tomcat TcpFailureDetector idea). It
/// removes the member once silent for `downAfter`, unless a probe says it is alive, in which
/// case it waits up to twice as long: that absorbs a burst of lost packets on one path
/// without a false failover, while a member the leader can really not reach (so whose lease
/// it cannot renew) still goes, because it could not acknowledge writes anyway.
///
/// Leases: a member may acknowledge writes only until `sendTime + lease`, where `sendTime`
/// is when it sent a heartbeat that the leader of its term answered. The leader answers
/// only members of its view and only while it hears a majority itself (its own lease is
/// the majority-th newest such send time plus the lease). A reply delayed in the network
/// only shortens the lease. The leader removes a silent member only after
/// `lastReply + lease + maxClockDrift`, and a new leader counts its election time as
/// everyone's last reply, so a member cut off from the majority has stopped acknowledging
/// before anyone takes its partitions. A clock that jumps backwards voids the lease.
///
/// Election: Raft's rules for terms and one vote per term, with a randomized timeout from
/// the seeded generator. A voter that heard from a live leader within the minimum election
/// timeout ignores candidates (a node that cannot hear the leader cannot disrupt the
/// cluster), and refuses candidates whose last view epoch is behind its own. A node that
/// learns a term from its leader counts that as its vote in the term, so a restarted node
/// with empty memory cannot vote twice in it. Before any view exists, the nodes whose own
/// address is in their seed list elect the first leader by a majority of the seed list.
extension ClusterNode {
    // MARK: Heartbeats

    func sendHeartbeats(now: Timestamp, into effects: inout [Effect]) {
        guard isMember, let view else { return }
        heartbeatSequence += 1
        heartbeatSentAt[heartbeatSequence] = now
        if heartbeatSentAt.count > 64 { heartbeatSentAt.removeValue(forKey: heartbeatSequence - 64) }
        let heartbeat = Heartbeat(
            from: me, term: term, viewEpoch: view.epoch, sequence: heartbeatSequence, fromLeader: role == .leader)
        for member in view.members where member.id != id {
            effects.append(.send(.heartbeat(heartbeat), to: member, channel: .datagram))
        }
    }

    func noteAlive(_ member: Member, now: Timestamp) {
        guard member.id != id else { return }
        if let current = known[member.id], current.incarnation > member.incarnation { return }
        known[member.id] = member
        heard(from: member.id, now: now)
    }

    /// Notes that a message came from `node`, a member this node knows (the data path's
    /// messages name only the id; the known member is already recorded as it is).
    func noteAlive(_ node: NodeID, now: Timestamp) {
        guard node != id, known[node] != nil else { return }
        heard(from: node, now: now)
    }

    private func heard(from node: NodeID, now: Timestamp) {
        detector.heard(node, at: now)
    }

    func handleHeartbeat(_ heartbeat: Heartbeat, now: Timestamp, into effects: inout [Effect]) {
        // A replayed heartbeat (of a node that died, or of a deposed leader) is no sign of life.
        guard freshness.acceptHeartbeat(from: heartbeat.from, sequence: heartbeat.sequence) else { return }
        noteAlive(heartbeat.from, now: now)
        election.adopt(heartbeat.term, leader: heartbeat.fromLeader ? heartbeat.from.id : nil)
        if heartbeat.fromLeader { election.heard(leader: heartbeat.from.id, inTerm: heartbeat.term, now: now, using: &random) }
        guard let view else { return }
        if heartbeat.viewEpoch < view.epoch { sendView(to: heartbeat.from, now: now, into: &effects) }
        let inView = view.members.contains(heartbeat.from)
        if role == .leader {
            // Answering renews the sender's lease: only for members, only with a majority.
            guard inView, leaseValid(now: now) else {
                if !inView { sendView(to: heartbeat.from, now: now, into: &effects) }
                return
            }
            detector.renewedLease(of: heartbeat.from.id, at: now)
        } else if !isMember || (election.stoppedLeadingThisTerm && !heartbeat.fromLeader) {
            // A leader that stepped down keeps its term, and a follower cut off with it still
            // takes it for the leader: its answer would renew that follower's lease, and the
            // follower went on acknowledging writes for as long as the cut. It answers only a
            // leader's heartbeats until the term changes.
            return
        }
        let reply = HeartbeatReply(from: me, term: term, viewEpoch: view.epoch, sequence: heartbeat.sequence)
        effects.append(.send(.heartbeatReply(reply), to: heartbeat.from, channel: .datagram))
    }

    func handleHeartbeatReply(_ reply: HeartbeatReply, now: Timestamp, into effects: inout [Effect]) {
        // A reply counts only for one of this node's last heartbeats, and once. Heartbeat
        // numbers start at random per node, so a reply recorded on its way to another node
        // (whose numbers are elsewhere) matches none of this node's.
        guard let sentAt = heartbeatSentAt[reply.sequence], freshness.acceptReply(from: reply.from.id, sequence: reply.sequence)
        else { return }
        noteAlive(reply.from, now: now)
        election.adopt(reply.term, leader: nil)
        guard reply.term == term, isMember else { return }
        if role == .leader {
            if detector.isTracked(reply.from.id) {
                ackedHeartbeatSentAt[reply.from.id] = max(ackedHeartbeatSentAt[reply.from.id] ?? .zero, sentAt)
            }
        } else if reply.from.id == leaderID, reply.from.id == view?.leader || leaderID != nil {
            let until = sentAt.adding(milliseconds: configuration.leaseMilliseconds)
            leaseUntil = max(leaseUntil ?? until, until)
            leaseGrantedBy = reply.from.id
        }
        if awaitingFirstLease, let until = leaseExpiry(now: now), now < until { awaitingFirstLease = false }
    }

    /// True while this node may acknowledge writes and serve reads as owner.
    package func leaseValid(now: Timestamp) -> Bool {
        guard isReady, let until = leaseExpiry(now: now) else { return false }
        return now < until
    }

    /// Why an owner refuses a request for want of a lease. The request is worth retrying
    /// when a lease is on its way: right after a cluster forms, this node joins, wins an
    /// election (the first heartbeat round has not answered yet) or sees its clock go back,
    /// and while a follower or candidate that hears a majority waits for a new leader
    /// (``awaitsNextLeader(now:)``). Otherwise the
    /// lease ran out because this node may be cut off.
    func failureForWantOfLease(now: Timestamp) -> ClusterFailure {
        awaitingFirstLease || awaitsNextLeader(now: now) ? .retry : .notInMajority
    }

    /// True for a follower or candidate that heard a majority of its view (itself included) within the
    /// suspicion window while the leader that granted its last lease is silent or replaced:
    /// that leader is gone, and the next one is being elected or has not answered yet. The
    /// window is never longer than the lease less a heartbeat, so when a node cut off alone
    /// sees its lease run out, it no longer counts the peers it heard before the cut.
    private func awaitsNextLeader(now: Timestamp) -> Bool {
        guard role != .leader, let view else { return false }
        let window = min(
            configuration.suspectAfterMilliseconds, configuration.leaseMilliseconds - configuration.heartbeatIntervalMilliseconds)
        if let leader = leaderID, leader == leaseGrantedBy, detector.heard(leader, within: window, at: now) { return false }
        return hearsMajority(of: view, within: window, now: now)
    }

    /// True when this node heard a majority of `view` (itself included) within `window`
    /// milliseconds: every member heartbeats every other, so this is known locally.
    func hearsMajority(of view: View, within window: Int64, now: Timestamp) -> Bool {
        let heard = view.members.count { $0.id == id || detector.heard($0.id, within: window, at: now) }
        return heard >= view.members.count / 2 + 1
    }

    /// When this node's lease runs out; nil when it holds none.
    private func leaseExpiry(now: Timestamp) -> Timestamp? {
        role == .leader ? leaderLeaseUntil(now: now) : leaseUntil
    }

    /// The leader's own lease: the majority-th newest heartbeat its members answered.
    func leaderLeaseUntil(now: Timestamp) -> Timestamp? {
        guard let view else { return nil }
        // On the stack: every write and every ack on the leader asks.
        return withUnsafeTemporaryAllocation(of: Timestamp.self, capacity: view.members.count + 1) { sendTimes in
            sendTimes[0] = now
            var count = 1
            for member in view.members where member.id != id {
                if let acked = ackedHeartbeatSentAt[member.id] {
                    sendTimes[count] = acked
                    count += 1
                }
            }
            let majority = view.members.count / 2 + 1
            guard count >= majority else { return nil }
            var answered = UnsafeMutableBufferPointer(rebasing: sendTimes[..<count])
            answered.sort(by: >)
            return answered[majority - 1].adding(milliseconds: configuration.leaseMilliseconds)
        }
    }

    /// A leader that has not heard a majority for a lease steps down (check-quorum).
    func checkQuorum(now: Timestamp) {
        guard role == .leader, now.milliseconds(since: election.leaderSince) > configuration.leaseMilliseconds,
            !leaseValid(now: now)
        else { return }
        election.stepDown()
        resetElectionDeadline(now: now)
    }

    // MARK: Probes and failure detection

    func detectFailures(now: Timestamp, into effects: inout [Effect]) {
        guard role == .leader, let view else { return }
        let others = view.members.filter { $0.id != id }
        for suspect in detector.newSuspects(among: others.map(\.id), at: now) {
            let helpers = others.filter {
                $0.id != suspect && detector.heard($0.id, within: configuration.suspectAfterMilliseconds, at: now)
            }
            guard !helpers.isEmpty else { continue }
            for offset in 0..<min(Timing.probeFanout, helpers.count) {
                nextProbeID += 1
                let helper = helpers[(Int(nextProbeID) + offset) % helpers.count]
                let probe = ProbeRequest(from: id, target: suspect, probeID: nextProbeID)
                freshness.sentProbe(nextProbeID, about: suspect)
                effects.append(.send(.probeRequest(probe), to: helper, channel: .datagram))
            }
        }
    }

    /// True when the leader may remove `member` (``FailureDetector/isDown(_:at:)``).
    func isDown(_ member: Member, now: Timestamp) -> Bool {
        detector.isDown(member.id, at: now)
    }

    /// Answers a probe. Not a sign of life of the asker: a probe request carries nothing
    /// fresh, and a replayed one must not keep a dead leader "heard".
    func handleProbeRequest(_ request: ProbeRequest, now: Timestamp, into effects: inout [Effect]) {
        // Vouch only on evidence the leader lacks: a sign of life at least one heartbeat
        // fresher than the leader's suspicion (it asks at `suspectAfter` of silence). A
        // helper that heard a crashed node's last heartbeat a few milliseconds after the
        // leader did would otherwise vouch for the dead node about one time in four and
        // double the time to remove it (1.2 s instead of 0.6 s).
        let window = max(configuration.heartbeatIntervalMilliseconds,
            configuration.suspectAfterMilliseconds - configuration.heartbeatIntervalMilliseconds)
        let alive = detector.heard(request.target, within: window, at: now)
        let reply = ProbeReply(from: id, target: request.target, probeID: request.probeID, alive: alive)
        send(.probeReply(reply), to: request.from, .datagram, into: &effects)
    }

    func handleProbeReply(_ reply: ProbeReply, now: Timestamp) {
        guard freshness.acceptProbeReply(reply.probeID, about: reply.target) else { return }
        noteAlive(reply.from, now: now)
        if reply.alive { detector.vouched(for: reply.target, at: now) }
    }

    // MARK: Election

    /// Nodes in a view stand for election; before any view, only seeds do. A member stands
    /// only while it hears a majority of its view (every member heartbeats every other, so
    /// this is known locally): a node cut off into a minority does not raise its term, so
    /// it cannot depose the majority's leader when the network heals (Raft's pre-vote, for free).
    func mayStandForElection(now: Timestamp) -> Bool {
        if leaving || role == .left { return false }
        guard let view else { return configuration.seeds.contains(configuration.address) }
        guard view.members.contains(me) else { return false }
        return hearsMajority(of: view, within: configuration.electionTimeoutMilliseconds.upperBound, now: now)
    }

    var electorateSize: Int {
        if let view, isMember { return view.members.count }
        return max(1, Set(configuration.seeds + [configuration.address]).count)
    }

    func startElection(now: Timestamp, into effects: inout [Effect]) {
        resetElectionDeadline(now: now)
        guard mayStandForElection(now: now) else { return }
        election.becomeCandidate(id)
        let request = VoteRequest(from: me, term: term, lastViewEpoch: view?.epoch ?? 0)
        if let view, isMember {
            for member in view.members where member.id != id {
                effects.append(.send(.voteRequest(request), to: member, channel: .stream))
            }
        } else {
            for address in Set(configuration.seeds).sorted() where address != configuration.address {
                let member = known.values.first { $0.address == address } ?? Member(id: NodeID(""), address: address, incarnation: 0)
                effects.append(.send(.voteRequest(request), to: member, channel: .stream))
            }
        }
        becomeLeaderIfElected(now: now, into: &effects)
    }

    func handleVoteRequest(_ request: VoteRequest, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(request.from, now: now)
        let upToDate = request.lastViewEpoch >= (view?.epoch ?? 0) && (view != nil || request.lastViewEpoch == 0)
        let granted = election.decideVote(
            for: request.from.id, inTerm: request.term, candidateIsUpToDate: upToDate,
            holdingLease: role == .leader && leaseValid(now: now), now: now, using: &random)
        let reply = VoteReply(from: id, term: term, granted: granted)
        effects.append(.send(.voteReply(reply), to: request.from, channel: .stream))
    }

    func handleVoteReply(_ reply: VoteReply, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(reply.from, now: now)
        let eligible = !(view.map { isMember && !$0.members.contains(where: { $0.id == reply.from }) } ?? false)
        election.count(voteOf: reply.from, inTerm: reply.term, granted: reply.granted, eligible: eligible)
        becomeLeaderIfElected(now: now, into: &effects)
    }

    func becomeLeaderIfElected(now: Timestamp, into effects: inout [Effect]) {
        guard election.hasMajority(of: electorateSize) else { return }
        election.becomeLeader(id, now: now)
        // Nobody has been heard by this leader yet: count everyone as heard now, and as
        // answered now, so nobody is removed before a full lease has surely lapsed.
        detector.restartAll(at: now)
        ackedHeartbeatSentAt.removeAll()
        awaitingFirstLease = true
        var members = view?.members ?? []
        if !isMember {
            // The first view: this node and every seed that voted or asked to join.
            members = [me] + known.values.filter { $0.id != id && (election.votes.contains($0.id) || pendingJoins[$0.id] != nil) }
            pendingJoins = pendingJoins.filter { entry in !members.contains(where: { $0.id == entry.key }) }
        }
        publish(View(term: term, epoch: (view?.epoch ?? 0).next, leader: id, members: members), now: now, into: &effects)
        sendHeartbeats(now: now, into: &effects)
    }

    // MARK: Joining and leaving

    func sendJoinRequests(now: Timestamp, into effects: inout [Effect]) {
        lastJoinRequestAt = now
        let request = JoinRequest(from: me, leaving: leaving)
        if let leader = view?.leader ?? leaderID, leader != id, let member = view?.members.first(where: { $0.id == leader }) ?? known[leader] {
            effects.append(.send(.joinRequest(request), to: member, channel: .stream))
            return
        }
        for address in Set(configuration.seeds).sorted() where address != configuration.address {
            let member = known.values.first { $0.address == address } ?? Member(id: NodeID(""), address: address, incarnation: 0)
            effects.append(.send(.joinRequest(request), to: member, channel: .stream))
        }
    }

    func handleJoinRequest(_ request: JoinRequest, now: Timestamp, into effects: inout [Effect]) {
        noteAlive(request.from, now: now)
        guard role == .leader, let view else {
            // Not the leader: tell the joiner who is (by our view) and pass the request on.
            if let view { sendView(to: request.from, now: now, into: &effects) }
            if let leaderID, leaderID != id, role != .leader {
                send(.joinRequest(request), to: leaderID, .stream, into: &effects)
            }
            if view == nil && !request.leaving { pendingJoins[request.from.id] = request.from }
            return
        }
        if request.leaving {
            if view.members.contains(request.from) { pendingLeaves.insert(request.from.id) }
        } else if view.members.contains(request.from) {
            sendView(to: request.from, now: now, into: &effects)
        } else if request.from.incarnation > (removedIncarnation[request.from.id] ?? 0) {
            if let current = view.members.first(where: { $0.id == request.from.id }), current.incarnation > request.from.incarnation { return }
            pendingJoins[request.from.id] = request.from
        }
        publishPendingChanges(now: now, into: &effects)
    }

    /// Leader: publishes the waiting membership changes, one change per view, so that any
    /// two consecutive views share a majority.
    func publishPendingChanges(now: Timestamp, into effects: inout [Effect]) {
        guard role == .leader else { return }
        for _ in 0..<16 {
            guard leaseValid(now: now) || now.milliseconds(since: election.leaderSince) < configuration.leaseMilliseconds,
                var members = view?.members
            else { return }
            if let leaver = pendingLeaves.sorted().first {
                pendingLeaves.remove(leaver)
                if let gone = members.first(where: { $0.id == leaver }) {
                    removedIncarnation[leaver] = gone.incarnation
                    members.removeAll { $0.id == leaver }
                }
            } else if let joiner = pendingJoins.keys.sorted().first, let member = pendingJoins.removeValue(forKey: joiner) {
                if let old = members.first(where: { $0.id == joiner }) {
                    guard old.incarnation < member.incarnation else { continue }
                    removedIncarnation[joiner] = old.incarnation
                    members.removeAll { $0.id == joiner }
                }
                members.append(member)
                detector.reset(joiner, at: now)
                ackedHeartbeatSentAt[joiner] = nil
                lastViewSentAt[joiner] = nil
            } else if mayRemoveSilentMember(now: now),
                let down = members.first(where: { $0.id != id && isDown($0, now: now) && removalKeepsAcknowledgedWrites($0, now: now) })
            {
                silentRemovals.append(now)
                removedIncarnation[down.id] = down.incarnation
                members.removeAll { $0.id == down.id }
            } else {
                return
            }
            guard let view else { return }
            publish(View(term: term, epoch: view.epoch.next, leader: id, members: members), now: now, into: &effects)
        }
    }

    /// At most `w` silent members are removed within one re-replication window, where `w`
    /// is the number of backups every acknowledged write is sure to be on (see
    /// ``guaranteedBackups``): removing more before their partitions are copied again could
    /// remove every holder of a write.
    func mayRemoveSilentMember(now: Timestamp) -> Bool {
        silentRemovals.removeAll { now.milliseconds(since: $0) >= Timing.reReplicationWindowMilliseconds(configuration) }
        return silentRemovals.count < guaranteedBackups
    }

    /// The backups an acknowledged replicated write is sure to be on besides its owner: the
    /// default write concern's count, at most R - 1, at least 1.
    var guaranteedBackups: Int {
        max(1, min(configuration.replicationFactor - 1, configuration.defaultWriteConcern.backupsRequired))
    }

    /// True when removing `member` leaves every partition it replicates with a replica that
    /// holds every acknowledged write: at most ``guaranteedBackups`` of the partition's
    /// replicas (the member included) are silent. More silent replicas than that may be all
    /// the holders of a write acknowledged just before they fell silent, and they may be
    /// behind a partition rather than dead: the majority promoting a stale copy would lose
    /// that write when they return and discard theirs (a 2|3 split with R = 3 lost writes so).
    /// Such partitions wait, unavailable, until a holder is heard again (I1 over L2).
    func removalKeepsAcknowledgedWrites(_ member: Member, now: Timestamp) -> Bool {
        guard let table else { return true }
        let silent = { (node: NodeID) -> Bool in
            node == member.id
                || (node != self.id && !self.detector.heard(node, within: self.configuration.suspectAfterMilliseconds, at: now))
        }
        for replicas in table.replicas where replicas.contains(member.id) {
            if replicas.count(where: silent) > guaranteedBackups { return false }
        }
        return true
    }

    func publish(_ newView: View, now: Timestamp, into effects: inout [Effect]) {
        let previous = view?.members ?? []
        install(newView, now: now, into: &effects)
        var recipients = newView.members
        for member in previous where !newView.members.contains(member) { recipients.append(member) }
        for member in recipients where member.id != id {
            effects.append(.send(.view(newView), to: member, channel: .stream))
            if detector.isTracked(member.id) { lastViewSentAt[member.id] = now }
        }
    }

    func sendView(to member: Member, now: Timestamp, into effects: inout [Effect]) {
        guard let view, member.id != id else { return }
        if let sent = lastViewSentAt[member.id], now.milliseconds(since: sent) < configuration.heartbeatIntervalMilliseconds { return }
        if detector.isTracked(member.id) { lastViewSentAt[member.id] = now }
        effects.append(.send(.view(view), to: member, channel: .stream))
    }

    func handleView(_ newView: View, now: Timestamp, into effects: inout [Effect]) {
        if let view {
            let newer = newView.epoch > view.epoch || (newView.epoch == view.epoch && newView.term > view.term)
            guard newer, newView.term >= view.term else { return }
        }
        election.adopt(newView.term, leader: newView.leader)
        election.heard(leader: newView.leader, inTerm: newView.term, now: now, using: &random)
        install(newView, now: now, into: &effects)
    }

    /// Graceful leave: asks the leader to remove this node. Its partitions move to the
    /// remaining members, which fetch them from their other replicas and from this node,
    /// which keeps answering state-transfer requests once it is out of the view.
    func leave(now: Timestamp, into effects: inout [Effect]) {
        observe(now)
        guard isMember, !leaving else { return }
        leaving = true
        if role == .leader {
            pendingLeaves.insert(id)
            // A leader cannot remove itself: it steps down and lets the others elect.
            election.stepDown()
            let request = JoinRequest(from: me, leaving: true)
            for member in view?.members ?? [] where member.id != id {
                effects.append(.send(.joinRequest(request), to: member, channel: .stream))
            }
        } else {
            sendJoinRequests(now: now, into: &effects)
        }
    }
}
