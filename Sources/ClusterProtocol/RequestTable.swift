import SessionCore

/// The requests this node sent to other owners and still waits on: forwarded writes and
/// reads, and rotations whose new id is created at another owner. A value with no I/O:
/// the node asks it what a reply, a new view or the clock settles, and answers each
/// settled request exactly once.
///
/// Every entry leaves the table one way: its reply (``settleForward(_:)``,
/// ``settleRotation(_:)``), a view that routes it to another owner
/// (``removeRoutedAway(ownerOf:)``), or its deadline (``removeExpired(at:)``). A reply that
/// comes after the entry left finds nothing and is dropped, so no caller hears twice.
struct RequestTable {
    /// One settled entry, for the node to answer.
    enum Entry {
        case forward(RequestID, PendingForward)
        case rotation(RequestID, PendingRotation)
    }

    private var forwards: [RequestID: PendingForward] = [:]
    private var rotations: [RequestID: PendingRotation] = [:]
    private var lastInternalRequest: UInt64 = 0

    /// Requests waiting.
    var count: Int { forwards.count + rotations.count }

    /// Waits for the reply to `requestID`, sent to `owner` about `session`.
    mutating func forward(_ kind: PendingForward.Kind, _ requestID: RequestID, session: SessionID, owner: NodeID, deadline: Timestamp) {
        forwards[requestID] = PendingForward(kind: kind, session: session, owner: owner, deadline: deadline)
    }

    /// Waits for the create of a rotation's new id, under a request id of this node's own
    /// (marked with ``PendingWrite/Origin/internalRequestBit``, so it never meets an
    /// application's), which it returns.
    mutating func rotate(_ rotation: PendingRotation) -> RequestID {
        lastInternalRequest += 1
        let requestID = RequestID(PendingWrite.Origin.internalRequestBit | lastInternalRequest)
        rotations[requestID] = rotation
        return requestID
    }

    /// The forward `requestID` answers, if it still waits; it waits no more.
    mutating func settleForward(_ requestID: RequestID) -> PendingForward? {
        forwards.removeValue(forKey: requestID)
    }

    /// The rotation `requestID` answers, if it still waits; it waits no more.
    mutating func settleRotation(_ requestID: RequestID) -> PendingRotation? {
        rotations.removeValue(forKey: requestID)
    }

    /// Removes the requests sent to a node that `ownerOf` no longer names as the owner of
    /// their session (for a rotation: of its new id), forwards first, each in request order.
    mutating func removeRoutedAway(ownerOf: (SessionID) -> NodeID?) -> [Entry] {
        removeAll(forwardsWhere: { ownerOf($0.session) != $0.owner }, rotationsWhere: { ownerOf($0.newID) != $0.newOwner })
    }

    /// Removes the requests whose deadline is `now` or earlier, forwards first, each in request order.
    mutating func removeExpired(at now: Timestamp) -> [Entry] {
        removeAll(forwardsWhere: { now >= $0.deadline }, rotationsWhere: { now >= $0.deadline })
    }

    private mutating func removeAll(
        forwardsWhere forwardIsDone: (PendingForward) -> Bool, rotationsWhere rotationIsDone: (PendingRotation) -> Bool
    ) -> [Entry] {
        var done = [Entry]()
        for requestID in forwards.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            guard let forward = forwards[requestID], forwardIsDone(forward) else { continue }
            forwards.removeValue(forKey: requestID)
            done.append(.forward(requestID, forward))
        }
        for requestID in rotations.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            guard let rotation = rotations[requestID], rotationIsDone(rotation) else { continue }
            rotations.removeValue(forKey: requestID)
            done.append(.rotation(requestID, rotation))
        }
        return done
    }
}
