import SessionCore

/// Which members hold each partition: an owner and `replicationFactor - 1` backups, chosen by
/// rendezvous (highest random weight) hashing over the view's member ids.
///
/// Every node derives the same table from the same view, with no coordination. Rendezvous
/// hashing moves the least possible when a member comes or goes: a partition changes hands
/// only where the arriving member ranks in its top R, or the leaving member was in it. Only
/// the member's id is hashed (not its incarnation), so a restarted node keeps its partitions.
///
/// ```swift
/// let table = PartitionTable(members: ["n1", "n2", "n3"], partitionCount: 271, replicationFactor: 2)
/// table.owner(of: 17)      // the same answer on every node
/// ```
package struct PartitionTable: Hashable, Sendable {
    /// Partitions sessions hash to.
    package let partitionCount: Int
    /// Copies of each partition (fewer when the view has fewer members).
    package let replicationFactor: Int
    /// For each partition, its replicas in rank order: the owner first, then the backups.
    package let replicas: [[NodeID]]

    /// Derives the table for `members`.
    package init(members: [NodeID], partitionCount: Int, replicationFactor: Int) {
        self.partitionCount = partitionCount
        self.replicationFactor = replicationFactor
        let ids = Array(Set(members)).sorted()
        let seeds = ids.map { PartitionTable.idHash($0) }
        let copies = min(max(1, replicationFactor), ids.count)
        var replicas = [[NodeID]]()
        replicas.reserveCapacity(partitionCount)
        for partition in 0..<partitionCount {
            let salt = UInt64(partition) &* 0x9E37_79B9_7F4A_7C15
            let ranked = ids.indices.sorted { lhs, rhs in
                let left = SeededRandom.mix(seeds[lhs] ^ salt), right = SeededRandom.mix(seeds[rhs] ^ salt)
                return left != right ? left > right : ids[lhs] < ids[rhs]
            }
            replicas.append(ranked.prefix(copies).map { ids[$0] })
        }
        self.replicas = replicas
    }

    /// The replicas of `partition` in rank order: the owner first, then the backups.
    package func replicas(of partition: PartitionID) -> [NodeID] { replicas[partition.rawValue] }

    /// The owner of `partition`, or nil for an empty view.
    package func owner(of partition: PartitionID) -> NodeID? { replicas[partition.rawValue].first }

    /// The backups of `partition`, in rank order (the first is promoted if the owner goes).
    package func backups(of partition: PartitionID) -> ArraySlice<NodeID> { replicas[partition.rawValue].dropFirst() }

    /// True when `node` is the owner or a backup of `partition`.
    package func holds(_ node: NodeID, _ partition: PartitionID) -> Bool { replicas[partition.rawValue].contains(node) }

    /// The partitions `node` owns, ascending.
    package func partitions(ownedBy node: NodeID) -> [PartitionID] {
        PartitionID.all(partitionCount).filter { replicas[$0.rawValue].first == node }
    }

    /// The partitions `node` owns or backs up, ascending.
    package func partitions(heldBy node: NodeID) -> [PartitionID] {
        PartitionID.all(partitionCount).filter { replicas[$0.rawValue].contains(node) }
    }

    /// FNV-1a over the id's UTF-8 bytes: stable across processes and releases, unlike `hashValue`.
    static func idHash(_ id: NodeID) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in id.rawValue.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        return hash
    }
}
