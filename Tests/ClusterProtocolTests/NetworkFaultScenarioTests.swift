import ClusterProtocol
@testable import ClusterSimulator
import SessionCore
import Testing

/// Cuts where the senders' own sends fail (a firewall's DROP on output), a flapping link,
/// and what the cluster must do through them: the majority keeps acknowledging (L2), the
/// cut-off node refuses, and after the heal the cluster is steady again (L1).
struct NetworkFaultScenarioTests {
    /// Write through `index` and retry transient refusals, as an application would, until
    /// one is acknowledged or `milliseconds` pass. Returns the last result.
    private func writeUntilAcknowledged(
        _ simulation: Simulation, through index: Int, to session: SessionID, value: String, within milliseconds: Int64
    ) -> Result<SessionVersion, ClusterFailure>? {
        let end = simulation.now.adding(milliseconds: milliseconds)
        var last: Result<SessionVersion, ClusterFailure>?
        while simulation.now < end {
            let changes = SessionChanges(updated: ["cart": AttributeValue(string: value)])
            last = simulation.writeAndWait(through: index, .update(changes), to: session, within: end.milliseconds(since: simulation.now))
            if case .success? = last { return last }
            simulation.run(for: 20)
        }
        return last
    }

    @Test(arguments: [false, true])
    func aNodeCutOffWithRefusedSendsStopsAcknowledgingWhileTheMajorityCarriesOn(leaderIsCut: Bool) {
        let simulation = Simulation.formed(nodes: 3)
        let sessions = simulation.createSessions(12)
        let leader = simulation.leader!
        let victim = leaderIsCut ? leader : simulation.otherNode(than: leader)
        let majority = simulation.liveIndices.filter { $0 != victim }
        simulation.partition([victim], from: majority, sendErrors: true)

        // L2: after one failover window (a leader's election plus a full lease), every
        // session takes writes through the majority again.
        simulation.run(for: 2_000)
        for (index, session) in sessions.enumerated() {
            let result = writeUntilAcknowledged(
                simulation, through: majority[index % majority.count], to: session, value: "majority-\(index)", within: 500)
            guard case .success? = result else {
                Issue.record("a write through the majority side failed during the cut: \(String(describing: result))")
                return
            }
        }
        // The cut-off node refuses: it cannot renew its lease.
        for session in sessions.prefix(4) {
            let changes = SessionChanges(updated: ["cart": AttributeValue(string: "minority")])
            let result = simulation.writeAndWait(through: victim, .update(changes), to: session)
            #expect(result.map { if case .failure = $0 { true } else { false } } ?? true, "the cut-off node acknowledged a write")
        }

        simulation.heal()
        // L1: steady again, and the cut-off node takes writes.
        #expect(simulation.run(until: { $0.isStable }, within: RandomizedRun.steadyStateBoundMilliseconds), "stable after the heal")
        let result = writeUntilAcknowledged(simulation, through: victim, to: sessions[0], value: "after", within: 2_000)
        if case .success? = result {} else { Issue.record("no write through the healed node: \(String(describing: result))") }
        simulation.expectNoViolations()
    }

    @Test func aFlappingLinkSettlesOnceItStopsAndNoTermStartsAfter() {
        let simulation = Simulation.formed(nodes: 5)
        let sessions = simulation.createSessions(10)
        let victim = simulation.otherNode(than: simulation.leader!)
        let rest = simulation.liveIndices.filter { $0 != victim }
        for flip in 0..<20 {
            if flip.isMultiple(of: 2) {
                simulation.partition([victim], from: rest, sendErrors: true)
            } else {
                simulation.restore([victim], from: rest)
            }
            for (index, session) in sessions.enumerated() {
                let changes = SessionChanges(updated: ["cart": AttributeValue(string: "flip-\(flip)-\(index)")])
                simulation.write(through: rest[index % rest.count], .update(changes), to: session)
            }
            simulation.run(for: 250)
        }
        simulation.heal()
        #expect(simulation.run(until: { $0.isStable }, within: RandomizedRun.steadyStateBoundMilliseconds), "stable after the flapping")
        let terms = simulation.nodes.map { $0.node?.currentTerm }
        simulation.run(for: RandomizedRun.quietMilliseconds)
        #expect(simulation.nodes.map { $0.node?.currentTerm } == terms, "no new term once steady")
        #expect(simulation.isStable)
        simulation.expectNoViolations()
    }

    /// A 2|3 split with R = 3 and `.replicated(1)`: an owner on the cut-off side may
    /// acknowledge, within its lease, a write that only its cut-off partner holds. The
    /// majority must not promote its stale third copy of such a partition, however long the
    /// cut lasts (past the re-replication window too): the pair keeps its writes, and after
    /// the heal nothing acknowledged is lost.
    @Test func aCutOffPairThatHoldsTwoOfThreeCopiesKeepsItsAcknowledgedWrites() {
        let simulation = Simulation.formed(nodes: 5, seed: 11, replicationFactor: 3)
        let sessions = simulation.createSessions(60)
        let leader = simulation.leader!
        let pair = simulation.liveIndices.filter { $0 != leader }.prefix(2).map { $0 }
        let rest = simulation.liveIndices.filter { !pair.contains($0) }
        let table = PartitionTable(
            members: simulation.nodes.map(\.id), partitionCount: simulation.configuration.partitionCount, replicationFactor: 3)
        let pairIDs = Set(pair.map { simulation.nodes[$0].id })
        let exposed = sessions.filter { session in
            let replicas = table.replicas(of: PartitionID(of: session, count: simulation.configuration.partitionCount))
            return pairIDs.contains(replicas[0]) && replicas.filter(pairIDs.contains).count == 2
        }
        #expect(!exposed.isEmpty, "some sessions are owned on the pair's side with their backup there too")
        simulation.partition(pair, from: rest, sendErrors: true)
        // Right after the cut the pair's owners still hold leases: writes they acknowledge
        // now are on the pair only.
        for (index, session) in exposed.enumerated() {
            let owner = pair.first { simulation.nodes[$0].node!.isOwner(of: session) }!
            simulation.write(through: owner, .update(SessionChanges(updated: ["cart": AttributeValue(string: "pair-\(index)")])), to: session)
        }
        simulation.run(for: 8_000)
        simulation.heal()
        #expect(simulation.run(until: { $0.isStable }, within: RandomizedRun.steadyStateBoundMilliseconds), "stable after the heal")
        simulation.run(for: 3_000)
        #expect(simulation.checker.acknowledgedWrites > 0)
        simulation.expectNoViolations()
    }

    /// The runtime before the fix: a refused heartbeat closed the sender's UDP endpoint
    /// for good. One cut of one node then leaves the whole cluster without a leader after
    /// the heal: the shape of the outage issue 12 reported.
    @Test func anEndpointClosedForGoodByARefusedSendKeepsTheClusterDownAfterTheHeal() {
        var configuration = SimulationConfiguration(nodes: 3, seed: 7)
        configuration.transport = .brokenEndpointClosedForGood
        let simulation = Simulation(configuration)
        simulation.startAll()
        #expect(simulation.run(until: { $0.isStable }, within: 3_000))
        let victim = simulation.otherNode(than: simulation.leader!)
        simulation.partition([victim], from: simulation.liveIndices.filter { $0 != victim }, sendErrors: true)
        simulation.run(for: 1_000)
        simulation.heal()
        simulation.run(for: 2_000)
        // The view outlives the heartbeats, so the cluster looks formed; but nobody holds a
        // lease any more, and no write is acknowledged.
        #expect(simulation.nodes.allSatisfy { !$0.datagramOpen }, "every endpoint that sent to the cut node closed")
        var random = SeededRandom(seed: 1)
        let problem = RandomizedRun.probeEveryNode(simulation, until: simulation.now.adding(milliseconds: 8_000), random: &random)
        #expect(problem?.contains("no write through") == true, "\(problem ?? "every write was acknowledged")")
    }
}
