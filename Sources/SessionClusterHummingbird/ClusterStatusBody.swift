import SessionCluster

/// `GET /cluster`: this node's view of the cluster, as JSON.
struct ClusterStatusBody: Encodable {
    struct MemberBody: Encodable {
        var id: String
        var address: String
        var state: String
    }

    var node: String
    var incarnation: UInt64
    var term: UInt64
    var leader: String?
    var role: String
    var viewEpoch: UInt64
    var members: [MemberBody]
    var partitionsOwned: Int
    var partitionsBacked: Int
    /// Partitions this node holds but is still receiving by state transfer.
    var partitionsFilling: Int
    var sessionCount: Int
    var leaseValid: Bool

    init(_ status: ClusterStatus) {
        node = status.id.rawValue
        incarnation = status.incarnation
        term = status.term.rawValue
        leader = status.leader?.rawValue
        role = "\(status.role)"
        viewEpoch = status.viewEpoch.rawValue
        members = status.members.map { MemberBody(id: $0.member.id.rawValue, address: "\($0.member.address)", state: "\($0.state)") }
        partitionsOwned = status.partitionsOwned
        partitionsBacked = status.partitionsBacked
        partitionsFilling = status.partitionsFilling
        sessionCount = status.sessionCount
        leaseValid = status.leaseValid
    }
}
