@testable import ClusterProtocol
import SessionCore
import Testing

/// Raft's election rules step by step, on the value alone: one vote per term, a leader
/// heard recently keeps its followers, a newer term deposes, a majority elects. Election
/// timeout 150...300 ms, as the `local` profile.
@Suite struct ElectionTests {
    var random = SeededRandom(seed: 7)

    func at(_ milliseconds: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds) }

    func fresh() -> Election { Election(timeoutMilliseconds: 150...300) }

    @Test mutating func aNodeVotesOncePerTermAndAgainForTheSameCandidate() {
        var election = fresh()
        #expect(election.decideVote(for: "n2", inTerm: 1, candidateIsUpToDate: true, holdingLease: false, now: at(10), using: &random))
        #expect(election.term == 1)
        #expect(!election.decideVote(for: "n3", inTerm: 1, candidateIsUpToDate: true, holdingLease: false, now: at(11), using: &random))
        // A retransmitted request of the candidate it chose is granted again.
        #expect(election.decideVote(for: "n2", inTerm: 1, candidateIsUpToDate: true, holdingLease: false, now: at(12), using: &random))
        // A new term frees the vote.
        #expect(election.decideVote(for: "n3", inTerm: 2, candidateIsUpToDate: true, holdingLease: false, now: at(13), using: &random))
        #expect(election.votedFor == "n3")
    }

    @Test mutating func aCandidateWhoseViewIsBehindGetsNoVoteButItsTermIsAdopted() {
        var election = fresh()
        #expect(!election.decideVote(for: "n2", inTerm: 5, candidateIsUpToDate: false, holdingLease: false, now: at(10), using: &random))
        #expect(election.term == 5)
        #expect(election.votedFor == nil)
    }

    @Test mutating func aFollowerThatHeardItsLeaderRecentlyIgnoresOtherCandidates() {
        var election = fresh()
        election.adopt(3, leader: "n1")
        election.heard(leader: "n1", inTerm: 3, now: at(1_000), using: &random)
        // Within the minimum election timeout (150 ms) of the leader's last word: sticky,
        // and the candidate's higher term is not adopted either.
        #expect(!election.decideVote(for: "n2", inTerm: 4, candidateIsUpToDate: true, holdingLease: false, now: at(1_149), using: &random))
        #expect(election.term == 3)
        #expect(election.leaderID == "n1")
        // Silent past it: the candidate may win this node.
        #expect(election.decideVote(for: "n2", inTerm: 4, candidateIsUpToDate: true, holdingLease: false, now: at(1_150), using: &random))
        #expect(election.term == 4)
        #expect(election.leaderID == nil)
    }

    @Test mutating func aLeaderHoldingItsLeaseKeepsItsTermAgainstCandidates() {
        var election = fresh()
        election.becomeCandidate("n1")
        election.count(voteOf: "n2", inTerm: 1, granted: true, eligible: true)
        election.becomeLeader("n1", now: at(0))
        #expect(!election.decideVote(for: "n3", inTerm: 2, candidateIsUpToDate: true, holdingLease: true, now: at(5_000), using: &random))
        #expect(election.isLeader)
        #expect(election.term == 1)
        // Without its lease it follows the newer term (and, as leader of the old, gives no vote in it... it
        // is a follower now, so it may).
        #expect(election.decideVote(for: "n3", inTerm: 2, candidateIsUpToDate: true, holdingLease: false, now: at(5_000), using: &random))
        #expect(election.role == .follower)
    }

    @Test func aMajorityOfGrantedEligibleVotesElects() {
        var election = fresh()
        election.becomeCandidate("n1")
        #expect(election.term == 1)
        #expect(!election.hasMajority(of: 5))
        election.count(voteOf: "n2", inTerm: 1, granted: true, eligible: true)
        election.count(voteOf: "n3", inTerm: 1, granted: false, eligible: true)
        election.count(voteOf: "n4", inTerm: 1, granted: true, eligible: false)
        election.count(voteOf: "n2", inTerm: 1, granted: true, eligible: true)
        #expect(!election.hasMajority(of: 5))
        election.count(voteOf: "n5", inTerm: 1, granted: true, eligible: true)
        #expect(election.hasMajority(of: 5))
        election.becomeLeader("n1", now: at(42))
        #expect(election.isLeader && election.leaderID == "n1" && election.leaderSince == at(42))
        #expect(!election.hasMajority(of: 5))
    }

    @Test func aReplyOfANewerTermDeposesTheCandidate() {
        var election = fresh()
        election.becomeCandidate("n1")
        election.count(voteOf: "n2", inTerm: 4, granted: false, eligible: true)
        #expect(election.role == .follower)
        #expect(election.term == 4)
        #expect(election.votes.isEmpty)
        // Votes of the old term no longer count.
        election.count(voteOf: "n3", inTerm: 1, granted: true, eligible: true)
        #expect(!election.hasMajority(of: 3))
    }

    @Test mutating func aCandidateHearingTheLeaderOfItsTermFollowsItAndWaitsAFullTimeout() {
        var election = fresh()
        election.becomeCandidate("n1")
        election.adopt(2, leader: "n2")
        #expect(election.role == .follower)
        #expect(election.votedFor == "n2")
        election.heard(leader: "n2", inTerm: 2, now: at(1_000), using: &random)
        #expect(election.leaderID == "n2")
        #expect(election.deadline >= at(1_150) && election.deadline <= at(1_300))
        // A leader of an older term is not followed.
        election.heard(leader: "n3", inTerm: 1, now: at(2_000), using: &random)
        #expect(election.leaderID == "n2")
        #expect(election.deadline <= at(1_300))
    }

    @Test func steppingDownLeavesNoLeaderAndLeavingIsFinal() {
        var election = fresh()
        election.becomeCandidate("n1")
        election.becomeLeader("n1", now: at(0))
        election.stepDown()
        #expect(election.role == .follower && election.leaderID == nil)
        #expect(election.term == 1)
        election.markLeft()
        #expect(election.role == .left)
    }
}
