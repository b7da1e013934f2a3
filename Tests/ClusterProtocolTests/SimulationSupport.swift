import ClusterProtocol
import ClusterSimulator
import SessionCore
import Testing

/// Shared steps of the scenario tests: form a cluster, create sessions, look at results.
extension Simulation {
    /// Starts every node and waits until they form one stable cluster.
    static func formed(nodes: Int, seed: UInt64 = 1, replicationFactor: Int = 2) -> Simulation {
        var configuration = SimulationConfiguration(nodes: nodes, seed: seed)
        configuration.replicationFactor = replicationFactor
        let simulation = Simulation(configuration)
        simulation.startAll()
        let formed = simulation.run(until: { $0.isStable }, within: 3_000)
        #expect(formed, "the cluster formed")
        return simulation
    }

    /// Creates `count` sessions through rotating nodes and waits for every acknowledgement.
    func createSessions(_ count: Int, attribute: String = "cart") -> [SessionID] {
        var sessions = [SessionID]()
        for index in 0..<count {
            let id = SessionID.random(using: &random)
            let changes = SessionChanges(updated: [attribute: AttributeValue(string: "item-\(index)")])
            let metadata = SessionMetadata(createdAt: now, maxInactiveMilliseconds: 3_600_000, stamp: 1)
            if let request = write(through: liveIndices[index % liveIndices.count], .create(metadata, changes), to: id) {
                run(for: 15)
                if case .success? = checker.writeResults[request] { sessions.append(id) }
            }
        }
        #expect(sessions.count == count, "every create was acknowledged")
        return sessions
    }

    /// Writes through `index` and runs until the write completes; returns the result.
    func writeAndWait(
        through index: Int, _ operation: WriteOperation, to session: SessionID, concern: WriteConcern? = nil,
        within milliseconds: Int64 = 3_000
    ) -> Result<SessionVersion, ClusterFailure>? {
        guard let request = write(through: index, operation, to: session, concern: concern) else { return nil }
        run(until: { $0.checker.writeResults[request] != nil }, within: milliseconds, every: 1)
        return checker.writeResults[request]
    }

    /// Reads through `index` and runs until the read completes.
    func readAndWait(through index: Int, _ session: SessionID, within milliseconds: Int64 = 3_000) -> ReadResult? {
        guard let request = read(through: index, session) else { return nil }
        run(until: { $0.checker.readResults[request] != nil }, within: milliseconds, every: 1)
        return checker.readResults[request]
    }

    /// The first live node that is not `excluded`.
    func otherNode(than excluded: Int...) -> Int {
        liveIndices.first { !excluded.contains($0) }!
    }

    /// The final checks, expected clean.
    func expectNoViolations(_ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        checker.checkFinal()
        #expect(checker.violations.isEmpty, "\(checker.violations.first ?? "") \(comment.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    }
}

func updated(_ name: String, _ value: String) -> WriteOperation {
    .update(SessionChanges(updated: [name: AttributeValue(string: value)]))
}

extension ReadResult {
    /// The attribute's text when the read found a live session.
    func attribute(_ name: String) -> String? {
        guard case .found(let delta) = self, delta.kind == .snapshot else { return nil }
        return delta.attributes.first { $0.name == name }?.value?.string
    }
}
