import ClusterProtocol
import SessionCluster
import SessionCore

/// In-process nodes on 127.0.0.1 with free ports, for tests that need real sockets.
enum TestCluster {
    /// Starts `count` nodes (the first alone, the others seeded with it) and waits until
    /// every node is ready, sees all of them in its view and holds all its partitions' data.
    static func start(
        _ count: Int, replicationFactor: Int = 2, prefix: String = "n",
        configure: (inout SessionClusterConfiguration) -> Void = { _ in }
    ) async throws -> [SessionCluster] {
        var nodes: [SessionCluster] = []
        var seeds: [PeerAddress] = []
        do {
            for index in 1...count {
                var configuration = SessionClusterConfiguration.local(id: NodeID("\(prefix)\(index)"), seeds: seeds)
                configuration.replicationFactor = replicationFactor
                // One node has no backup to acknowledge `.replicated(1)`.
                if count == 1 { configuration.writeConcern = .local }
                configure(&configuration)
                let node = try SessionCluster(configuration: configuration)
                nodes.append(node)
                try await node.start()
                if seeds.isEmpty, let address = node.boundAddress { seeds = [address] }
            }
            // Ready: one view, every partition filled, and every node holding its lease (an
            // owner without one refuses writes with notInMajority until its next heartbeat round).
            try await waitUntil("all \(count) nodes ready in one view") {
                for node in nodes {
                    guard await node.isReady(), let status = try? await node.status(), status.members.count == count,
                        status.partitionsFilling == 0, status.leaseValid
                    else {
                        return false
                    }
                }
                return true
            }
        } catch {
            await stop(nodes)
            throw error
        }
        return nodes
    }

    /// Runs `body` with `count` started nodes and shuts them all down afterwards, also
    /// when `body` throws.
    static func with(
        _ count: Int, replicationFactor: Int = 2, prefix: String = "n",
        configure: (inout SessionClusterConfiguration) -> Void = { _ in },
        _ body: ([SessionCluster]) async throws -> Void
    ) async throws {
        let nodes = try await start(count, replicationFactor: replicationFactor, prefix: prefix, configure: configure)
        do {
            try await body(nodes)
        } catch {
            await stop(nodes)
            throw error
        }
        await stop(nodes)
    }

    /// Shuts the nodes down together (one by one, each would wait for the view change).
    static func stop(_ nodes: [SessionCluster]) async {
        await withTaskGroup(of: Void.self) { group in
            for node in nodes { group.addTask { await node.shutdown() } }
        }
    }

    struct Timeout: Error, CustomStringConvertible {
        var description: String
    }

    /// Polls `condition` every 20 ms for at most `seconds`.
    static func waitUntil(_ what: String, seconds: Double = 15, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Timeout(description: "timed out waiting until \(what)")
    }
}
