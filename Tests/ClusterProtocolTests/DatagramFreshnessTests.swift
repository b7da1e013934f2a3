@testable import ClusterProtocol
import ClusterSimulator
import SessionCore
import Testing

/// Datagrams carry no connection: each heartbeat, reply and probe reply counts once, so
/// recorded ones replayed are no sign of life.
@Suite struct DatagramFreshnessTests {
    @Test func theWindowAcceptsEachNumberOnceAndForgetsNothingYoungerThan64() {
        var window = ReplayWindow()
        // 3 comes late but within the window (once); 7 is 63 behind 70, still tracked; 6 is
        // 64 behind, too old to tell, refused.
        let numbers: [UInt64] = [5, 5, 3, 3, 70, 7, 6, 1_000, 70]
        let accepted = numbers.map { window.accept($0) }
        #expect(accepted == [true, false, true, false, true, true, false, true, false])
    }

    @Test func aHeartbeatCountsOncePerIncarnationAndAnOlderIncarnationNever() {
        var freshness = DatagramFreshness()
        let first = Member(id: "n2", address: PeerAddress(host: "10.0.0.2", port: 7000), incarnation: 10)
        // Restarted: its numbers start again, in a new incarnation; the old one's never count again.
        var restarted = first
        restarted.incarnation = 11
        let heartbeats: [(Member, UInt64)] = [(first, 1), (first, 2), (first, 1), (restarted, 1), (first, 3), (restarted, 1)]
        let accepted = heartbeats.map { freshness.acceptHeartbeat(from: $0.0, sequence: $0.1) }
        #expect(accepted == [true, true, false, true, false, false])
    }

    @Test func aProbeReplyCountsOnlyForAnOutstandingProbeAboutItsTarget() {
        var freshness = DatagramFreshness()
        freshness.sentProbe(1, about: "n3")
        let probes: [(UInt64, NodeID)] = [(2, "n3"), (1, "n4"), (1, "n3"), (1, "n3")]
        let accepted = probes.map { freshness.acceptProbeReply($0.0, about: $0.1) }
        #expect(accepted == [false, false, true, false])
        let replies: [(NodeID, UInt64)] = [("n2", 9), ("n2", 9), ("n3", 9)]
        #expect(replies.map { freshness.acceptReply(from: $0.0, sequence: $0.1) } == [true, false, true])
    }

    /// An attacker records a member's heartbeats and, once it crashed, replays them to every
    /// node, again and again: the leader still removes it in the usual time.
    @Test func replayedHeartbeatsOfACrashedMemberDoNotHoldOffItsRemoval() {
        let simulation = Simulation.formed(nodes: 3, seed: 11)
        let leader = simulation.leader!
        let victim = simulation.otherNode(than: leader)
        simulation.run(for: 2_000)
        let recorded = simulation.nodes[victim].node!
        let member = recorded.currentMember, last = recorded.lastHeartbeatSequence
        let term = recorded.currentTerm, epoch = recorded.installedView!.epoch
        #expect(last > 20)
        let crashedAt = simulation.now
        simulation.crash(node: victim)
        for tick in 0..<150 {
            simulation.schedule(at: crashedAt.adding(milliseconds: Int64(tick) * 20)) { simulation in
                let heartbeat = Heartbeat(from: member, term: term, viewEpoch: epoch, sequence: last - UInt64(tick % 20), fromLeader: false)
                for index in simulation.liveIndices { simulation.replay(.heartbeat(heartbeat), to: index) }
            }
        }
        let removed = simulation.run(
            until: { simulation in simulation.nodes[leader].node!.installedView!.members.allSatisfy { $0.id != member.id } },
            within: 3_000)
        #expect(removed, "the replayed heartbeats kept the crashed member in the view")
        print("crashed member removed \(simulation.now.milliseconds(since: crashedAt)) ms after the crash despite replays")
        simulation.expectNoViolations()
    }
}
