import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `GET /cluster` of a node, as far as the harness reads it.
package struct NodeStatusReport: Decodable, Sendable {
    package struct Member: Decodable, Sendable {
        package var id: String
        package var state: String
    }
    package var node: String
    package var leader: String?
    package var role: String
    package var viewEpoch: UInt64
    package var members: [Member]
    package var partitionsOwned: Int
    package var partitionsFilling: Int
    package var leaseValid: Bool
}

/// `session-node serve` processes on 127.0.0.1, each with an HTTP port and a peer port,
/// all seeded with every peer port: the cluster the demo and the failover benchmark run
/// (the fault suite's `Tests/fault/cluster.py` is the same harness for pytest).
package final class NodeProcessCluster: @unchecked Sendable {
    package struct Node: Sendable {
        package let id: String
        package let httpPort: Int
        package let peerPort: Int
        package let process: ChildProcess
        package var logFile: String { process.logFile ?? "" }
    }

    package let nodes: [Node]

    /// Starts `count` nodes named `idPrefix1`, `idPrefix2`... from `executable`, logs in
    /// `logDirectory/<id>.log` (emptied first: one log per cluster); `arguments` go to every
    /// `serve` (replicas, key file...), `argumentsOfNode(id)` to that node's (its certificate).
    package init(
        count: Int, executable: String, logDirectory: String, idPrefix: String = "n", arguments: [String] = [],
        argumentsOfNode: (String) -> [String] = { _ in [] }, taken: inout Set<Int>
    ) throws {
        let ports = try (0..<count).map { _ in (http: try FreePort.pick(avoiding: &taken), peer: try FreePort.pick(avoiding: &taken)) }
        let seeds = ports.flatMap { ["--seed", "127.0.0.1:\($0.peer)"] }
        var nodes: [Node] = []
        do {
            for (index, port) in ports.enumerated() {
                let id = "\(idPrefix)\(index + 1)"
                try? FileManager.default.removeItem(atPath: "\(logDirectory)/\(id).log")
                let process = try ChildProcess(
                    name: id, executable: executable,
                    arguments: ["serve", "--id", id, "--http", "127.0.0.1:\(port.http)", "--bind", "127.0.0.1:\(port.peer)"]
                        + seeds + arguments + argumentsOfNode(id),
                    logFile: "\(logDirectory)/\(id).log")
                nodes.append(Node(id: id, httpPort: port.http, peerPort: port.peer, process: process))
            }
        } catch {
            for node in nodes { node.process.stop() }
            throw error
        }
        self.nodes = nodes
    }

    /// `GET /cluster` of one node, nil when it does not answer.
    package func status(of node: Node) -> NodeStatusReport? {
        guard let response = LoopbackHTTPClient.once(port: node.httpPort, "GET", "/cluster", timeoutSeconds: 2),
            response.status == 200
        else { return nil }
        return try? response.decode(NodeStatusReport.self)
    }

    /// Until every node answers `/health` with 200.
    package func waitUntilHealthy(seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        for node in nodes {
            while LoopbackHTTPClient.once(port: node.httpPort, "GET", "/health", timeoutSeconds: 1)?.status != 200 {
                if !node.process.isRunning { throw HarnessError("\(node.id) exited before /health was 200 (log: \(node.logFile))") }
                if Date() > deadline { throw HarnessError("\(node.id): /health not 200 within \(Int(seconds)) s") }
                usleep(100_000)
            }
        }
    }

    /// Until every node of `members` sees all of them alive, holds every partition in full
    /// and has a valid lease: one settled view.
    package func waitUntilSettled(_ members: [Node]? = nil, seconds: Double) throws {
        let members = members ?? nodes
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let settled = members.allSatisfy { node in
                guard let status = status(of: node) else { return false }
                return status.members.filter { $0.state == "alive" }.count == members.count && status.partitionsFilling == 0
                    && status.leaseValid
            }
            if settled { return }
            usleep(50_000)
        }
        throw HarnessError("the \(members.count) nodes did not settle into one view within \(Int(seconds)) s")
    }

    /// The node the others follow, if one of them names it.
    package func leader() -> Node? {
        for node in nodes where node.process.isRunning {
            guard let leader = status(of: node)?.leader else { continue }
            if let found = nodes.first(where: { $0.id == leader }) { return found }
        }
        return nil
    }

    /// Stops every node by its PID (SIGTERM, then SIGKILL after `grace`).
    package func stop(grace: TimeInterval = 2) {
        for node in nodes where node.process.isRunning {
            node.process.kill(SIGCONT)
            node.process.kill(SIGTERM)
        }
        for node in nodes { node.process.stop(grace: grace) }
    }
}
