import SessionCore

/// A write this node applied as owner, waiting for its write concern.
struct PendingWrite {
    enum Origin {
        /// This node's application asked.
        case local(RequestID)
        /// Another node forwarded it.
        case forwarded(NodeID, RequestID)
        /// The second half of a rotation this node runs.
        case rotation(RequestID)
        /// An expiry this node's sweep decided: nobody waits, only its event does.
        case expiry

        /// Set in the request ids a node gives its own internal requests (the create of a
        /// rotation's new id at another owner).
        static let internalRequestBit: UInt64 = 1 << 63

        /// True for the create a rotation sends to the new id's owner.
        var isRotationCreate: Bool {
            guard case .forwarded(_, let request) = self else { return false }
            return request.rawValue & Self.internalRequestBit != 0
        }
    }
    var origin: Origin
    /// The sessions and versions that must reach `backupsRequired` backups: one, or two
    /// for a rotation (the new id and the old one's tombstone).
    var targets: InlineFirstList<(id: SessionID, version: SessionVersion)>
    var backupsRequired: Int
    var deadline: Timestamp
    var event: SessionEvent?
    /// What the caller gets back.
    var result: SessionVersion
}

/// A request this node sent to another node for its application.
struct PendingForward {
    enum Kind { case write, read }
    var kind: Kind
    /// The session asked about, and the owner the request was sent to: when a new view
    /// makes someone else the owner, the request is answered with `.retry` at once.
    var session: SessionID
    var owner: NodeID
    var deadline: Timestamp
}

/// A rotation whose new session is created at another owner; the old id ends here after.
struct PendingRotation {
    var origin: PendingWrite.Origin
    var oldID: SessionID
    var newID: SessionID
    var concern: WriteConcern
    /// The owner of the new id's partition the create was sent to.
    var newOwner: NodeID
    var deadline: Timestamp
    /// The request's own deadline (wall clock): past it the old id is not ended.
    var requestDeadline: Timestamp? = nil
}

/// The writes waiting on one session and the versions its backups acknowledged since the
/// first of them began waiting: one table entry per session, so an ack costs one lookup per
/// acknowledged delta. Most sessions have one write waiting and most partitions one or two
/// backups, so both lists keep their first element inline and the common case allocates
/// nothing.
struct SessionWaiters {
    /// Ids of the pending writes with a target on this session, ascending.
    var writes = InlineFirstList<UInt64>()
    /// The highest version each backup acknowledged, one entry per backup.
    var acknowledged = InlineFirstList<(node: NodeID, version: SessionVersion)>()

    /// The highest version `node` acknowledged, 0 if none.
    func acknowledgedVersion(by node: NodeID) -> SessionVersion {
        for entry in acknowledged where entry.node == node { return entry.version }
        return 0
    }

    /// Records that `node` applied this session at `version` (acks may repeat or regress).
    mutating func credit(_ node: NodeID, version: SessionVersion) {
        let found = acknowledged.updateFirst(where: { $0.node == node }) { $0.version = max($0.version, version) }
        if !found { acknowledged.append((node, version)) }
    }

    /// Forgets what `node` acknowledged (it left the view or restarted).
    mutating func forget(_ node: NodeID) {
        acknowledged.removeAll { $0.node == node }
    }
}

/// An ordered list whose first element is stored inline, without an allocation.
struct InlineFirstList<Element>: Sequence {
    /// nil only when the list is empty.
    private var head: Element?
    private var rest: [Element] = []

    init() {}

    init(_ first: Element) { head = first }

    var isEmpty: Bool { head == nil }

    mutating func append(_ element: Element) {
        if head == nil { head = element } else { rest.append(element) }
    }

    /// Calls `change` on the first element matching `predicate`; false when none does.
    mutating func updateFirst(where predicate: (Element) -> Bool, _ change: (inout Element) -> Void) -> Bool {
        guard head != nil else { return false }
        if predicate(head!) {
            change(&head!)
            return true
        }
        guard let index = rest.firstIndex(where: predicate) else { return false }
        change(&rest[index])
        return true
    }

    mutating func removeAll(where predicate: (Element) -> Bool) {
        guard let first = head else { return }
        if rest.isEmpty {
            if predicate(first) { head = nil }
            return
        }
        var kept = Array(self)
        kept.removeAll(where: predicate)
        head = kept.first
        rest = Array(kept.dropFirst())
    }

    func makeIterator() -> Iterator { Iterator(list: self) }

    struct Iterator: IteratorProtocol {
        let list: InlineFirstList
        var position = 0

        mutating func next() -> Element? {
            defer { position += 1 }
            if position == 0 { return list.head }
            return position - 1 < list.rest.count ? list.rest[position - 1] : nil
        }
    }
}
