import Foundation
import Logging
import NIOCore
import NIOPosix
import NodeCommandLine
import struct ClusterProtocol.NodeConfiguration
import SessionCluster

/// In-process clusters for the bench: N `SessionCluster` nodes on 127.0.0.1 (free ports,
/// the LAN default timing), all in this process, each on an event loop of its own, as each
/// would be in a process of its own. (On NIO's singleton group, two loops on this machine,
/// two of three nodes would share one loop: that loop's thread caps the whole cluster.)
struct BenchCluster {
    let nodes: [SessionCluster]
    let prefix: String
    let loops: MultiThreadedEventLoopGroup

    static let quietLogger: Logger = {
        var logger = Logger(label: "bench-cluster")
        // BENCH_LOG_LEVEL=warning shows the runtime's warnings (send queue overflows, ...).
        logger.logLevel = ProcessInfo.processInfo.environment["BENCH_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return logger
    }()

    /// Starts `count` nodes (the first alone, the others seeded with it) and waits until all
    /// are in one view with every partition filled.
    static func start(
        _ count: Int, replicationFactor: Int = 2, prefix: String, concern: WriteConcern = .replicated(1),
        maxQueuedBytesPerPeer: Int? = nil, slowTiming: Int64? = nil, certificates: DevelopmentCertificates.Files? = nil
    ) async throws -> BenchCluster {
        var nodes: [SessionCluster] = []
        var seeds: [PeerAddress] = []
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: count)
        do {
            for index in 1...count {
                var configuration = configuration(id: "\(prefix)\(index)", seeds: seeds, replicationFactor: replicationFactor, concern: concern)
                if let maxQueuedBytesPerPeer { configuration.maxQueuedBytesPerPeer = maxQueuedBytesPerPeer }
                if let certificates, let files = certificates.nodes["\(prefix)\(index)"] {
                    configuration.peerTLS = PeerTLSConfiguration(
                        certificateChainFile: files.certificate, privateKeyFile: files.key, trustRootsFile: certificates.authority)
                }
                if let slowTiming {
                    configuration.node.slowDown(heartbeatMilliseconds: slowTiming)
                    // A node alone elects itself after one election timeout: keep that short,
                    // yet longer than the heartbeat, as a node requires.
                    if count == 1 {
                        let low = max(slowTiming + 1, min(4 * slowTiming, 400))
                        configuration.node.electionTimeoutMilliseconds = low...(2 * low)
                    }
                }
                let node = try SessionCluster(configuration: configuration, eventLoopGroup: loops.next(), logger: quietLogger)
                nodes.append(node)
                try await node.start()
                if seeds.isEmpty, let address = node.boundAddress { seeds = [address] }
            }
            let cluster = BenchCluster(nodes: nodes, prefix: prefix, loops: loops)
            try await cluster.waitUntilSettled(members: count, seconds: 30)
            return cluster
        } catch {
            await BenchCluster(nodes: nodes, prefix: prefix, loops: loops).stop()
            throw error
        }
    }

    static func configuration(id: String, seeds: [PeerAddress], replicationFactor: Int, concern: WriteConcern)
        -> SessionClusterConfiguration
    {
        var configuration = SessionClusterConfiguration(
            nodeID: NodeID(id), bindAddress: PeerAddress(host: "127.0.0.1", port: 0), seeds: seeds,
            clusterKey: SessionClusterConfiguration.developmentClusterKey)
        configuration.replicationFactor = replicationFactor
        configuration.writeConcern = concern
        return configuration
    }

    func waitUntilSettled(members: Int, seconds: Double) async throws {
        try await Self.waitUntil("\(members) nodes in one view, partitions filled", seconds: seconds) {
            for node in nodes {
                guard await node.isReady(), let status = try? await node.status(), status.members.count == members,
                    status.partitionsFilling == 0, status.leaseValid
                else { return false }
            }
            return true
        }
    }

    func stop() async {
        await withTaskGroup(of: Void.self) { group in
            for node in nodes { group.addTask { await node.shutdown() } }
        }
        try? await loops.shutdownGracefully()
    }

    /// Wire bytes sent by every node of this cluster so far.
    var wireBytesSent: Int64 { ByteCounters.shared.wireBytesSent(prefix: prefix) }

    /// Creates `count` sessions of `fixture`, session i on node i % nodes.count (which picks
    /// an id in a partition it owns), with `concurrency` tasks. Returns ids by creating node.
    func createSessions(_ count: Int, fixture: BenchFixture, concurrency: Int = 50, concern: WriteConcern? = nil)
        async throws -> [[SessionID]]
    {
        let nodes = self.nodes
        let perTask = (count + concurrency - 1) / concurrency
        let created = try await withThrowingTaskGroup(of: [(Int, SessionID)].self) { group in
            for task in 0..<concurrency {
                group.addTask {
                    var ids: [(Int, SessionID)] = []
                    for i in stride(from: task * perTask, to: min(count, (task + 1) * perTask), by: 1) {
                        let index = i % nodes.count
                        let session = try await Self.retryingWhileUnavailable {
                            try await nodes[index].create(attributes: fixture.attributes(unique: i), concern: concern)
                        }
                        ids.append((index, session.id))
                    }
                    return ids
                }
            }
            var all: [(Int, SessionID)] = []
            for try await part in group { all += part }
            return all
        }
        var byNode = [[SessionID]](repeating: [], count: nodes.count)
        for (index, id) in created { byNode[index].append(id) }
        return byNode
    }

    /// Runs `body` again while the node answers that it cannot take writes right now (its
    /// lease lapsed on a starved machine, or the view is changing), as a client retries a 503:
    /// up to 5 s, then the error stands.
    static func retryingWhileUnavailable<Value>(_ body: () async throws -> Value) async throws -> Value {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            do {
                return try await body()
            } catch let error as SessionClusterError where error == .notInMajority || error == .viewChanged {
                guard ContinuousClock.now < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    static func waitUntil(_ what: String, seconds: Double, every: Duration = .milliseconds(20), _ condition: () async throws -> Bool)
        async throws
    {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: every)
        }
        throw BenchError("timed out after \(seconds) s waiting until \(what)")
    }
}

extension NodeConfiguration {
    /// Every protocol timer scaled to a heartbeat of `heartbeatMilliseconds`, in the default
    /// proportions (suspect 3, down 6, lease 5, election 4...8 heartbeats). A transfer
    /// source that made no progress for 5 heartbeats is asked again; slower timers scale
    /// that wait.
    mutating func slowDown(heartbeatMilliseconds ms: Int64) {
        heartbeatIntervalMilliseconds = ms
        suspectAfterMilliseconds = 3 * ms
        downAfterMilliseconds = 6 * ms
        leaseMilliseconds = 5 * ms
        electionTimeoutMilliseconds = (4 * ms)...(8 * ms)
    }
}
