import ClusterProtocol
import Testing

@Suite struct PartitionTableTests {
    let five: [NodeID] = ["n1", "n2", "n3", "n4", "n5"]

    @Test func everyNodeDerivesTheSameTableWhateverTheMemberOrder() {
        let a = PartitionTable(members: five, partitionCount: 271, replicationFactor: 2)
        let b = PartitionTable(members: five.reversed(), partitionCount: 271, replicationFactor: 2)
        #expect(a == b)
        #expect(a.replicas.allSatisfy { $0.count == 2 && Set($0).count == 2 })
    }

    @Test func ownershipIsSpreadEvenly() {
        let table = PartitionTable(members: five, partitionCount: 271, replicationFactor: 2)
        for node in five {
            let owned = table.partitions(ownedBy: node).count
            #expect((35...75).contains(owned), "\(node) owns \(owned) of 271")
        }
    }

    @Test func aJoiningMemberTakesOnlyItsShareAndMovesNothingElse() {
        let before = PartitionTable(members: five, partitionCount: 271, replicationFactor: 2)
        let after = PartitionTable(members: five + ["n6"], partitionCount: 271, replicationFactor: 2)
        var ownersMoved = 0
        for partition in PartitionID.all(271) where before.replicas(of: partition) != after.replicas(of: partition) {
            // Every change brings in the new member; nobody else trades places.
            #expect(after.replicas(of: partition).contains("n6"))
            #expect(after.replicas(of: partition).filter { $0 != "n6" } == Array(before.replicas(of: partition).prefix(after.replicas(of: partition).count - 1)))
            if before.owner(of: partition) != after.owner(of: partition) { ownersMoved += 1 }
        }
        // About 1/6 of the owners move, all to n6.
        #expect((25...65).contains(ownersMoved), "\(ownersMoved) owners moved")
    }

    @Test func aLeavingMembersPartitionsGoToItsBackupsAndNothingElseMoves() {
        let before = PartitionTable(members: five, partitionCount: 271, replicationFactor: 3)
        let after = PartitionTable(members: five.filter { $0 != "n3" }, partitionCount: 271, replicationFactor: 3)
        for partition in PartitionID.all(271) {
            let survivors = before.replicas(of: partition).filter { $0 != "n3" }
            #expect(Array(after.replicas(of: partition).prefix(survivors.count)) == survivors, "partition \(partition)")
        }
    }
}
