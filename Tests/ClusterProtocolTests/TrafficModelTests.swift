import ClusterProtocol
import ClusterSimulator
import SessionCore
import Testing

/// Bytes on the wire per single-attribute update: with R = 2 they do not depend on the
/// cluster size; with R = N they grow with it. Counted by the simulator with the wire
/// encoder (``MessageSize/encoded(_:)``), before compression.
@Suite struct TrafficModelTests {
    static let dataPath = ["deltaBatch", "deltaAck", "forwardedWrite", "writeReply"]

    /// Replication bytes per update, sticky traffic (each write through its owner).
    func bytesPerUpdate(nodes: Int, replicationFactor: Int, updates: Int = 200) -> Double {
        let simulation = Simulation.formed(nodes: nodes, seed: 31, replicationFactor: replicationFactor)
        let sessions = simulation.createSessions(30)
        simulation.run(for: 100)
        simulation.resetTraffic()
        for index in 0..<updates {
            let session = sessions[index % sessions.count]
            let owner = simulation.owner(of: session)!
            let value = String(repeating: "x", count: 16)
            let result = simulation.writeAndWait(through: owner, updated("attribute", value + "\(1000 + index)"), to: session)
            #expect(result?.isSuccess == true, "\(String(describing: result)) with N = \(nodes), R = \(replicationFactor)")
            simulation.run(for: 5)
        }
        return Double(simulation.bytes(of: Self.dataPath)) / Double(updates)
    }

    @Test func bytesPerUpdateStayFlatWithTwoCopiesAndGrowLinearlyWithCopiesOnEveryNode() {
        let sizes = [3, 5, 7, 9]
        let flat = sizes.map { bytesPerUpdate(nodes: $0, replicationFactor: 2) }
        let everywhere = sizes.map { bytesPerUpdate(nodes: $0, replicationFactor: $0) }
        print("bytes per single-attribute update (delta batches + acks)")
        print("   N    R=2    R=N   R=N per backup")
        for (index, nodes) in sizes.enumerated() {
            let perBackup = everywhere[index] / Double(nodes - 1)
            print("  \(nodes)  \(Int(flat[index].rounded()))  \(Int(everywhere[index].rounded()))  \(Int(perBackup.rounded()))")
        }
        #expect(flat.max()! <= flat.min()! * 1.10, "R = 2 stays within 10%: \(flat)")
        let perBackup = zip(sizes, everywhere).map { $1 / Double($0 - 1) }
        #expect(perBackup.max()! <= perBackup.min()! * 1.10, "R = N grows linearly with N - 1: \(perBackup)")
        #expect(everywhere.last! > everywhere.first! * 3.5)
    }
}
