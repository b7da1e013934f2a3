import ClusterProtocol
import ClusterSimulator
import SessionCore
import Testing

@Suite struct ElectionTests {
    func freshNode(_ name: String = "n1") -> ClusterNode {
        let seeds = (1...3).map { PeerAddress(host: "10.0.0.\($0)", port: 7000) }
        let configuration = NodeConfiguration(id: NodeID(name), address: seeds[0], incarnation: 1, seeds: seeds)
        return ClusterNode(configuration: configuration, store: SessionStore())
    }

    func candidate(_ name: String, host: Int) -> Member {
        Member(id: NodeID(name), address: PeerAddress(host: "10.0.0.\(host)", port: 7000), incarnation: 1)
    }

    func votes(in effects: [Effect]) -> [Bool] {
        effects.compactMap { effect in
            if case .send(.voteReply(let reply), _, _) = effect { return reply.granted }
            return nil
        }
    }

    @Test func aVoterGrantsOneVotePerTerm() {
        let node = freshNode()
        let now = Timestamp(milliseconds: 10)
        _ = node.start(now: now)
        let first = node.receive(.voteRequest(VoteRequest(candidate: candidate("n2", host: 2), term: 1, lastViewEpoch: 0)), now: now)
        let second = node.receive(.voteRequest(VoteRequest(candidate: candidate("n3", host: 3), term: 1, lastViewEpoch: 0)), now: now)
        #expect(votes(in: first) == [true])
        #expect(votes(in: second) == [false])
    }

    @Test func aNodeWithoutAViewRefusesCandidatesOfAnEstablishedCluster() {
        // It may have voted in that term before it restarted with empty memory.
        let node = freshNode()
        let now = Timestamp(milliseconds: 10)
        _ = node.start(now: now)
        let reply = node.receive(.voteRequest(VoteRequest(candidate: candidate("n2", host: 2), term: 7, lastViewEpoch: 4)), now: now)
        #expect(votes(in: reply) == [false])
    }

    @Test func atMostOneLeaderPerTermAcrossManyElections() {
        // Leaders crash one after another; the checker holds I2 after every step.
        let simulation = Simulation.formed(nodes: 5, seed: 11)
        var terms: Set<UInt64> = []
        for _ in 0..<3 {
            guard let leader = simulation.leader else { break }
            terms.insert(simulation.nodes[leader].node!.currentTerm)
            simulation.crash(node: leader)
            simulation.run(until: { $0.leader != nil && $0.isStable }, within: 5_000)
            simulation.start(node: leader)
            simulation.run(until: { $0.isStable }, within: 5_000)
        }
        #expect(terms.count == 3)
        #expect(simulation.checker.violations.isEmpty, "\(simulation.checker.violations.first ?? "")")
    }
}

@Suite struct LeaseTests {
    @Test func aCutOffOwnerStopsAcknowledgingBeforeItsPartitionsMove() {
        let simulation = Simulation.formed(nodes: 3, seed: 21)
        let sessions = simulation.createSessions(20)
        let leader = simulation.leader!
        let owner = simulation.otherNode(than: leader)
        let session = sessions.first { simulation.nodes[owner].node!.isOwner(of: $0) }!
        let rest = simulation.liveIndices.filter { $0 != owner }
        let cutAt = simulation.now
        simulation.partition([owner], from: rest)
        // `.local` writes need only the owner's lease: they show exactly when it stops.
        var lastAcknowledgedByOldOwner: Timestamp?
        var firstAcknowledgedByNewOwner: Timestamp?
        for step in 0..<300 {
            if let request = simulation.write(through: owner, updated("n", "old-\(step)"), to: session, concern: .local),
                simulation.checker.writeResults[request]?.isSuccess == true
            {
                lastAcknowledgedByOldOwner = simulation.now
            }
            if firstAcknowledgedByNewOwner == nil, let request = simulation.write(through: rest[0], updated("n", "new-\(step)"), to: session, concern: .local) {
                simulation.run(for: 5)
                if simulation.checker.writeResults[request]?.isSuccess == true { firstAcknowledgedByNewOwner = simulation.now }
            } else {
                simulation.run(for: 5)
            }
        }
        let stopped = lastAcknowledgedByOldOwner.map { $0.milliseconds(since: cutAt) } ?? 0
        let took = firstAcknowledgedByNewOwner.map { $0.milliseconds(since: cutAt) }
        print("lease fencing: the cut-off owner acknowledged until +\(stopped) ms; the new owner from +\(took.map(String.init) ?? "never") ms")
        let configuration = simulation.nodes[owner].node!.configuration
        #expect(stopped <= configuration.leaseMilliseconds)
        #expect(took != nil)
        #expect(took! > stopped + configuration.maxClockDriftMilliseconds)
    }

    @Test func aMemberWithoutALeaseRefusesWritesAsNotInMajority() {
        let simulation = Simulation.formed(nodes: 3, seed: 22)
        let session = simulation.createSessions(1)[0]
        let owner = simulation.owner(of: session)!
        simulation.partition([owner], from: simulation.liveIndices.filter { $0 != owner })
        simulation.run(for: 700)
        #expect(simulation.writeAndWait(through: owner, updated("k", "v"), to: session) == .failure(.notInMajority))
        #expect(simulation.nodes[owner].node!.canServeReadLocally(session, now: simulation.localTime(owner)) == false)
    }
}
