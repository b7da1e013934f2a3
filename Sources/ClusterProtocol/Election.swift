import SessionCore

/// Raft's rules for terms, votes and roles, as a value with no I/O: what this node's term
/// is, whom it voted for, whom it follows, and when it stands for election next.
///
/// What only the node knows (whether the candidate's view is current, whether this leader
/// still holds its lease, who may vote) comes in as arguments; what the node must do about
/// it (send votes, publish a view) is its part. Randomness for the election timeout comes
/// from the node's seeded generator, so a run replays.
struct Election {
    /// The range the randomized election timeout is drawn from, in milliseconds.
    let timeoutMilliseconds: ClosedRange<Int64>

    private(set) var term: Term = 0
    /// The candidate this node voted for in ``term``, or the leader it learnt the term from
    /// (which counts as its vote: a node restarted with empty memory cannot vote twice).
    private(set) var votedFor: NodeID?
    private(set) var role: ClusterStatus.Role = .follower
    /// The leader of ``term``, once known.
    private(set) var leaderID: NodeID?
    /// When this node last heard its leader (or became leader).
    private(set) var leaderContactAt: Timestamp?
    /// As a candidate: the nodes that granted their vote in ``term``, this node included.
    private(set) var votes: Set<NodeID> = []
    /// When a follower or candidate stands for election, unless it hears a leader first.
    private(set) var deadline = Timestamp.zero
    /// When this node became leader.
    private(set) var leaderSince = Timestamp.zero
    /// The term this node last led.
    private var ledTerm: Term?

    init(timeoutMilliseconds: ClosedRange<Int64>) {
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    var isLeader: Bool { role == .leader }
    /// True once this node stopped leading in the current term: followers that took it for
    /// the leader may still do so until they hear a later term.
    var stoppedLeadingThisTerm: Bool { role != .leader && ledTerm == term }

    /// Draws the next election deadline from `now`.
    mutating func resetDeadline(now: Timestamp, using random: inout SeededRandom) {
        deadline = now.adding(milliseconds: Int64.random(in: timeoutMilliseconds, using: &random))
    }

    /// A message carried a newer term: follow it, with `leader` when the message came from
    /// that term's leader (counted as this node's vote in it).
    mutating func adopt(_ newTerm: Term, leader: NodeID?) {
        guard newTerm > term else { return }
        term = newTerm
        votedFor = leader
        leaderID = leader
        votes = []
        if role == .leader || role == .candidate { role = .follower }
    }

    /// The leader of `leaderTerm` was heard from (a heartbeat or a view). In the current
    /// term a candidate gives up, and a follower notes its leader and waits a full timeout
    /// before standing.
    mutating func heard(leader: NodeID, inTerm leaderTerm: Term, now: Timestamp, using random: inout SeededRandom) {
        guard leaderTerm == term else { return }
        if role == .candidate { role = .follower }
        guard role != .leader else { return }
        leaderID = leader
        leaderContactAt = now
        resetDeadline(now: now, using: &random)
    }

    /// Stands for election: a new term, this node's own vote.
    mutating func becomeCandidate(_ me: NodeID) {
        term = term.next
        role = .candidate
        votedFor = me
        leaderID = nil
        votes = [me]
    }

    /// Decides a vote request from `candidate` in `candidateTerm`, adopting a newer term
    /// unless this node is sticky to its leader. A voter that heard from its leader within
    /// the minimum election timeout ignores other candidates (a node that cannot hear the
    /// leader cannot disrupt the cluster), and so does a leader holding its lease; one vote
    /// per term, and only for a candidate whose view is not behind (`candidateIsUpToDate`).
    mutating func decideVote(
        for candidate: NodeID, inTerm candidateTerm: Term, candidateIsUpToDate: Bool, holdingLease: Bool,
        now: Timestamp, using random: inout SeededRandom
    ) -> Bool {
        let heardLeaderRecently = leaderContactAt.map { now.milliseconds(since: $0) < timeoutMilliseconds.lowerBound } ?? false
        let sticky = (heardLeaderRecently && candidate != leaderID) || (role == .leader && holdingLease)
        if candidateTerm > term && !sticky { adopt(candidateTerm, leader: nil) }
        guard candidateTerm == term, !sticky, role != .leader, candidateIsUpToDate,
            votedFor == nil || votedFor == candidate
        else { return false }
        votedFor = candidate
        resetDeadline(now: now, using: &random)
        return true
    }

    /// Counts a vote reply from `voter`; `eligible` is false for a voter outside the
    /// electorate. A reply of a newer term deposes this candidate.
    mutating func count(voteOf voter: NodeID, inTerm voterTerm: Term, granted: Bool, eligible: Bool) {
        if voterTerm > term { return adopt(voterTerm, leader: nil) }
        guard role == .candidate, voterTerm == term, granted, eligible else { return }
        votes.insert(voter)
    }

    /// True for a candidate whose votes are a majority of `electorateSize`.
    func hasMajority(of electorateSize: Int) -> Bool {
        role == .candidate && votes.count >= electorateSize / 2 + 1
    }

    /// This candidate won.
    mutating func becomeLeader(_ me: NodeID, now: Timestamp) {
        role = .leader
        ledTerm = term
        leaderID = me
        leaderSince = now
        leaderContactAt = now
    }

    /// A leader that lost its majority (check-quorum) or hands over before leaving becomes a
    /// follower with no leader.
    mutating func stepDown() {
        if role == .leader || role == .candidate { role = .follower }
        leaderID = nil
    }

    /// A leader taken out of the view is no longer one.
    mutating func stopLeading() {
        if role == .leader { role = .follower }
    }

    /// This node is out of the cluster for good.
    mutating func markLeft() { role = .left }
}
