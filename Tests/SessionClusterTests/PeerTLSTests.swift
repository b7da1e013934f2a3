import ClusterProtocol
import Foundation
import NIOCore
import NIOPosix
import NodeCommandLine
import SessionCore
import Testing

@testable import SessionCluster

/// Mutual TLS on peer links, with real sockets: nodes with certificates of the cluster's
/// authority form a cluster and replicate; a node whose certificate another authority
/// signed, or that claims another node's id, is kept out.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct PeerTLSTests {
    static func certificates(_ nodes: [String]) throws -> DevelopmentCertificates.Files {
        let directory = NSTemporaryDirectory() + "peer-tls-\(UUID().uuidString)"
        return try DevelopmentCertificates.write(to: directory, nodes: nodes)
    }

    static func tls(_ files: DevelopmentCertificates.Files, _ node: String, authority: String? = nil) -> PeerTLSConfiguration {
        PeerTLSConfiguration(
            certificateChainFile: files.nodes[node]!.certificate, privateKeyFile: files.nodes[node]!.key,
            trustRootsFile: authority ?? files.authority)
    }

    @Test func nodesWithCertificatesOfTheClusterAuthorityReplicate() async throws {
        let files = try Self.certificates(["t1", "t2", "t3"])
        try await TestCluster.with(3, prefix: "t", configure: { $0.peerTLS = Self.tls(files, $0.nodeID.rawValue) }) { nodes in
            for (writer, node) in nodes.enumerated() {
                let session = try await node.create(attributes: ["by": AttributeValue(string: "t\(writer + 1)")])
                for reader in nodes { #expect(try await reader.load(session.id)?["by"]?.string == "t\(writer + 1)") }
            }
            #expect(nodes.allSatisfy { $0.rejectedFrameCount == 0 })
        }
    }

    @Test func aNodeCertifiedByAnotherAuthorityOrClaimingAnotherIDIsKeptOut() async throws {
        let files = try Self.certificates(["t1", "t2"])
        let stranger = try Self.certificates(["t3"])
        let cluster = try await TestCluster.start(2, prefix: "t", configure: { $0.peerTLS = Self.tls(files, $0.nodeID.rawValue) })
        defer { Task { await TestCluster.stop(cluster) } }
        // Another authority's certificate (trusting ours, so only its own certificate is wrong).
        var outsider = SessionClusterConfiguration.local(id: "t3", seeds: [cluster[0].boundAddress!])
        outsider.peerTLS = Self.tls(stranger, "t3", authority: files.authority)
        let foreign = try SessionCluster(configuration: outsider)
        try await foreign.start()
        // Our authority's certificate of t2, claiming to be t9: its hello names another node.
        var impostor = SessionClusterConfiguration.local(id: "t9", seeds: [cluster[0].boundAddress!])
        impostor.peerTLS = Self.tls(files, "t2")
        let claimed = try SessionCluster(configuration: impostor)
        try await claimed.start()
        try await Task.sleep(for: .seconds(2))
        for node in cluster {
            let members = try await node.status().members.map(\.member.id)
            #expect(Set(members) == ["t1", "t2"], "\(members)")
        }
        #expect(!(await foreign.isReady()))
        #expect(!(await claimed.isReady()))
        // The impostor's connections were refused at the hello and counted.
        #expect(cluster.reduce(0) { $0 + $1.rejectedFrameCount } > 0)
        await foreign.shutdown()
        await claimed.shutdown()
        await TestCluster.stop(cluster)
    }

    @Test func aNodeIDTheHandshakeCannotCarryIsAConfigurationError() {
        for id in ["", String(repeating: "n", count: 256)] {
            let configuration = SessionClusterConfiguration.local(id: NodeID(id))
            #expect(throws: SessionClusterError.self) { try SessionCluster(configuration: configuration) }
        }
    }

    @Test func unreadableCertificateFilesAreAConfigurationError() {
        var configuration = SessionClusterConfiguration.local(id: "t1")
        configuration.peerTLS = PeerTLSConfiguration(
            certificateChainFile: "/nonexistent/t1.pem", privateKeyFile: "/nonexistent/t1-key.pem", trustRootsFile: "/nonexistent/ca.pem")
        #expect(throws: SessionClusterError.self) { try SessionCluster(configuration: configuration) }
    }
}
