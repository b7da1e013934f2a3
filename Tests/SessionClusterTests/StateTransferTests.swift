import ClusterProtocol
import SessionCore
import Testing

@testable import SessionCluster

struct StateTransferTests {
    /// A small per-peer queue bound (here 2 MiB, less than a transfer window of full chunks)
    /// must slow a state transfer down, not stop it: a joiner fills and holds every session,
    /// with the writes the source took meanwhile.
    @Test func aJoinerFillsUnderASmallPerPeerQueueBound() async throws {
        let bound = 2 * 1024 * 1024
        let first = try await TestCluster.start(1) { $0.maxQueuedBytesPerPeer = bound }
        var nodes = first
        do {
            let payload = AttributeValue(string: String(repeating: "x", count: 1_000))
            var ids: [SessionID] = []
            for index in 0..<3_000 {
                ids.append(try await first[0].create(attributes: ["n": AttributeValue(string: "\(index)"), "p": payload]).id)
            }
            var configuration = SessionClusterConfiguration.local(id: NodeID("n2"), seeds: [try #require(first[0].boundAddress)])
            configuration.maxQueuedBytesPerPeer = bound
            let joiner = try SessionCluster(configuration: configuration)
            nodes.append(joiner)
            try await joiner.start()
            // Writes go on through the join: each rewrites one session with a new value.
            var written: [Int: String] = [:]
            var round = 0
            let deadline = ContinuousClock.now + .seconds(20)
            while !(await filled(joiner, sessions: ids.count)) {
                for _ in 0..<50 {
                    round += 1
                    let index = (round * 37) % ids.count
                    let value = "\(index) round \(round)"
                    // Refused while the view changes: the value stands only if acknowledged.
                    let changes = SessionChanges(updated: ["n": AttributeValue(string: value)])
                    if (try? await first[0].update(ids[index], changes: changes)) != nil { written[index] = value }
                }
                try #require(ContinuousClock.now < deadline, "the joiner did not fill in 20 s")
            }
            try await TestCluster.waitUntil("the joiner holds the last writes too") {
                written.allSatisfy { joiner.store.load(ids[$0.key], now: WallClock.now(), touch: false)?["n"]?.string == $0.value }
            }
            for (index, id) in ids.enumerated() where index % 100 == 0 {
                let expected = written[index] ?? "\(index)"
                #expect(joiner.store.load(id, now: WallClock.now(), touch: false)?["n"]?.string == expected)
            }
            print("joiner filled after \(round) writes, \(written.count) sessions rewritten")
        } catch {
            await TestCluster.stop(nodes)
            throw error
        }
        await TestCluster.stop(nodes)
    }

    private func filled(_ node: SessionCluster, sessions: Int) async -> Bool {
        guard let status = try? await node.status() else { return false }
        return status.members.count == 2 && status.partitionsFilling == 0 && status.sessionCount == sessions
    }
}
