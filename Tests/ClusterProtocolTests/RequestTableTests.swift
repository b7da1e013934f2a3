@testable import ClusterProtocol
import SessionCore
import Testing

/// The table of requests sent to other owners: each leaves it exactly once, by its reply,
/// a view that routes it elsewhere, or its deadline, in request order.
@Suite struct RequestTableTests {
    let a = SessionID(high: 1, low: 1, tail: 1)
    let b = SessionID(high: 2, low: 2, tail: 2)

    func at(_ milliseconds: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds) }

    func rotation(from old: SessionID, to new: SessionID, owner: NodeID, deadline: Int64) -> PendingRotation {
        PendingRotation(origin: .local(RequestID(99)), oldID: old, newID: new, concern: .replicated(1), newOwner: owner, deadline: at(deadline))
    }

    func ids(_ entries: [RequestTable.Entry]) -> [UInt64] {
        entries.map {
            switch $0 {
            case .forward(let id, _): id.rawValue
            case .rotation(let id, _): id.rawValue
            }
        }
    }

    @Test func aReplySettlesItsRequestOnceAndALateOneFindsNothing() {
        var table = RequestTable()
        table.forward(.write, RequestID(1), session: a, owner: "n2", deadline: at(2_000))
        #expect(table.count == 1)
        #expect(table.settleForward(RequestID(1))?.owner == "n2")
        #expect(table.settleForward(RequestID(1)) == nil)
        #expect(table.count == 0)
        // Nothing else expires for it either.
        #expect(table.removeExpired(at: at(10_000)).isEmpty)
    }

    @Test func rotationsGetTheirOwnInternalIDs() {
        var table = RequestTable()
        let first = table.rotate(rotation(from: a, to: b, owner: "n3", deadline: 2_000))
        let second = table.rotate(rotation(from: b, to: a, owner: "n3", deadline: 2_000))
        #expect(first != second)
        #expect(first.rawValue & PendingWrite.Origin.internalRequestBit != 0)
        #expect(PendingWrite.Origin.forwarded("n1", first).isRotationCreate)
        // A forward under an application id never answers a rotation.
        #expect(table.settleForward(first) == nil)
        #expect(table.settleRotation(first)?.newID == b)
        #expect(table.count == 1)
    }

    @Test func aNewOwnerSettlesOnlyTheRequestsRoutedAwayInRequestOrder() {
        var table = RequestTable()
        table.forward(.read, RequestID(7), session: a, owner: "n2", deadline: at(2_000))
        table.forward(.write, RequestID(3), session: a, owner: "n2", deadline: at(2_000))
        table.forward(.write, RequestID(5), session: b, owner: "n3", deadline: at(2_000))
        let rotated = table.rotate(rotation(from: b, to: a, owner: "n2", deadline: 2_000))
        // The partition of `a` moved from n2 to n4; `b` stays with n3.
        let routed = table.removeRoutedAway { $0 == a ? "n4" : "n3" }
        #expect(ids(routed) == [3, 7, rotated.rawValue])
        #expect(table.count == 1)
        #expect(table.removeRoutedAway { $0 == a ? "n4" : "n3" }.isEmpty)
    }

    @Test func theDeadlineSettlesWhatGotNoAnswer() {
        var table = RequestTable()
        table.forward(.write, RequestID(1), session: a, owner: "n2", deadline: at(1_000))
        table.forward(.write, RequestID(2), session: a, owner: "n2", deadline: at(3_000))
        _ = table.rotate(rotation(from: a, to: b, owner: "n2", deadline: 1_000))
        #expect(table.removeExpired(at: at(999)).isEmpty)
        let expired = table.removeExpired(at: at(1_000))
        #expect(expired.count == 2)
        #expect(ids(expired).first == 1)
        #expect(table.count == 1)
        #expect(table.settleForward(RequestID(2)) != nil)
    }
}
