import SessionCore

/// A node's name in the cluster, chosen by the operator (`--id n1`). Stable across restarts.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The name.
    public var rawValue: String
    /// Creates a node id.
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }
}

/// Where a node listens for peers: TCP for data and UDP for heartbeats, on one port.
public struct PeerAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Host name or IP address.
    public var host: String
    /// Port, the same number for TCP and UDP.
    public var port: Int
    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    /// Parses `HOST:PORT`.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        let host = String(text[..<colon])
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }
    public static func < (lhs: PeerAddress, rhs: PeerAddress) -> Bool { (lhs.host, lhs.port) < (rhs.host, rhs.port) }
    public var description: String { "\(host):\(port)" }
}

// Term and Epoch are two concrete types rather than one generic tagged type: a generic
// struct used from another module (the wire decoder) goes through its metadata at runtime.

/// An election term, as in Raft: a candidate raises it, a node adopts any higher one it
/// hears, and there is at most one leader per term (I2).
public struct Term: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// The number.
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt64) { self.rawValue = value }
    /// The term a candidate stands in after this one.
    package var next: Term { Term(rawValue: rawValue + 1) }
    public static func < (lhs: Term, rhs: Term) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "t\(rawValue)" }
}

/// A view's number: grows with every view a leader publishes, within and across terms.
/// Deltas carry it, so a backup applies only batches of the view it is in (a deposed
/// owner's writes are fenced off). 0 before any view.
public struct Epoch: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// The number.
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt64) { self.rawValue = value }
    /// The epoch of the next view.
    package var next: Epoch { Epoch(rawValue: rawValue + 1) }
    public static func < (lhs: Epoch, rhs: Epoch) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "e\(rawValue)" }
}

/// A member of a view: who and where.
public struct Member: Hashable, Sendable, CustomStringConvertible {
    /// The node's id.
    public var id: NodeID
    /// Where it listens for peers.
    public var address: PeerAddress
    /// The node's incarnation: a number it raises each time it starts, so a restarted
    /// node (with empty memory) is told apart from the one that was there before.
    public var incarnation: UInt64
    /// Creates a member.
    public init(id: NodeID, address: PeerAddress, incarnation: UInt64) {
        self.id = id
        self.address = address
        self.incarnation = incarnation
    }
    public var description: String { "\(id)@\(address)#\(incarnation)" }
}

/// What the leader publishes: the agreed member list, from which every node derives the
/// same partition table. `epoch` grows with every change within and across terms.
package struct View: Hashable, Sendable {
    /// The election term the leader was elected in.
    package var term: Term
    /// Grows with every published view.
    package var epoch: Epoch
    /// The leader that published it.
    package var leader: NodeID
    /// The members, sorted by id.
    package var members: [Member]
    /// Creates a view; members are sorted by id.
    package init(term: Term, epoch: Epoch, leader: NodeID, members: [Member]) {
        self.term = term
        self.epoch = epoch
        self.leader = leader
        self.members = members.sorted { $0.id < $1.id }
    }
}

/// How many copies must hold a write before `save` returns.
public enum WriteConcern: Hashable, Sendable {
    /// Acknowledged after the owner applied it; a crash of the owner can lose it.
    case local
    /// Acknowledged after the owner and `n` backups applied it. The default, `.replicated(1)`,
    /// loses no acknowledged write when any one node dies.
    case replicated(Int)

    /// The number of backups that must have applied the write.
    package var backupsRequired: Int {
        switch self {
        case .local: 0
        case .replicated(let count): max(0, count)
        }
    }
}

/// Identifies one application request inside a node, to match its completion effect.
package struct RequestID: Hashable, Sendable, CustomStringConvertible {
    /// The number; unique within the node that made it.
    package var rawValue: UInt64
    /// Creates a request id.
    package init(_ rawValue: UInt64) { self.rawValue = rawValue }
    package var description: String { "r\(rawValue)" }
}

/// A partition, `0..<partitionCount`: sessions hash to partitions (``PartitionID/init(of:count:)``),
/// partitions to members (``PartitionTable``). Its own type so that a partition is not
/// mistaken for a count, an index of something else, or a node's rank.
package struct PartitionID: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// The partition's number.
    package var rawValue: Int
    /// The partition numbered `rawValue`.
    package init(_ rawValue: Int) { self.rawValue = rawValue }
    package init(integerLiteral rawValue: Int) { self.rawValue = rawValue }
    /// The partition `session` hashes to among `count`.
    package init(of session: SessionID, count: Int) { rawValue = session.partition(of: count) }
    /// Every partition of a table of `count`, ascending.
    package static func all(_ count: Int) -> [PartitionID] { (0..<count).map { PartitionID($0) } }
    package static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    package var description: String { "p\(rawValue)" }
}
