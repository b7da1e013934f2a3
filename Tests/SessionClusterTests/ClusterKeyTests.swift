import ClusterProtocol
import SessionCore
import Testing

@testable import SessionCluster

/// Several cluster keys: a cluster in the middle of a key change still forms and replicates.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct ClusterKeyTests {
    static let old = ClusterKey(id: 0, bytes: Array("the-old-cluster-key-0123456789".utf8))
    static let new = ClusterKey(id: 1, bytes: Array("the-new-cluster-key-abcdefghij".utf8))

    /// The middle step of a rotation: one node already sends under the new key, the other
    /// still under the old one; each accepts both.
    @Test func nodesSendingUnderDifferentKeysTheOtherAcceptsFormAClusterAndReplicate() async throws {
        try await TestCluster.with(2) { configuration in
            configuration.clusterKeys = configuration.nodeID == "n1" ? [Self.new, Self.old] : [Self.old, Self.new]
        } _: { nodes in
            // Acknowledging needs a lease from the leader: heartbeats answered across the keys.
            try await TestCluster.waitUntil("both nodes hold a lease") {
                for node in nodes where try await node.status().leaseValid == false { return false }
                return true
            }
            for (writer, reader) in [(nodes[0], nodes[1]), (nodes[1], nodes[0])] {
                let session = try await writer.create(attributes: ["cart": AttributeValue(string: "3 items")])
                #expect(try await reader.load(session.id)?["cart"]?.string == "3 items")
            }
        }
    }

    @Test func theSingleKeyPropertyIsTheSendingKey() {
        var configuration = SessionClusterConfiguration.local(id: "n1")
        configuration.clusterKeys = [Self.new, Self.old]
        #expect(configuration.clusterKey == Self.new.bytes)
        configuration.clusterKey = Self.old.bytes
        #expect(configuration.clusterKeys == [ClusterKey(id: 0, bytes: Self.old.bytes)])
    }

    @Test func badKeyListsAreRefusedAtCreation() {
        var configuration = SessionClusterConfiguration.local(id: "n1")
        for keys in [[], [Self.old, Self.old], [ClusterKey(id: 9, bytes: Self.old.bytes)], [ClusterKey(bytes: Array("short".utf8))]] {
            configuration.clusterKeys = keys
            #expect(throws: SessionClusterError.self, "\(keys.map(\.id))") { try SessionCluster(configuration: configuration) }
        }
    }
}
