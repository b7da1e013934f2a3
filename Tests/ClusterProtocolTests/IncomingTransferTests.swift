@testable import ClusterProtocol
import SessionCore
import Testing

/// One received state transfer step by step: whom it waits for, chunks in and out of
/// order, credits, stale chunks, stalled sources.
@Suite struct IncomingTransferTests {
    func at(_ milliseconds: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds) }

    func chunk(from source: NodeID, transfer: UInt64, index: UInt32, last: Bool = false) -> StateTransferChunk {
        StateTransferChunk(from: source, transferID: transfer, index: index, last: last, snapshots: [])
    }

    /// A fill of partitions 2, 5 and 7 by n1, from n2 and n3, with n4 (gone) asked too;
    /// every source asked once, with transfer ids 1, 2, 3 in the order of `sources`.
    func started() -> IncomingTransfer {
        var fill = IncomingTransfer(
            epoch: 4, partitions: [7, 2, 5], requester: "n1", required: ["n3", "n2"], optional: ["n4", "n2"], now: at(0))
        for (offset, source) in fill.sources.enumerated() {
            _ = fill.request(from: source, transferID: UInt64(offset + 1), now: at(0))
        }
        return fill
    }

    @Test func theFillAsksEveryMemberAndFormerMemberButWaitsOnlyForMembers() {
        var fill = started()
        #expect(fill.sources == ["n2", "n3", "n4"], "members first, a former member not twice")
        #expect(fill.partitions == [2, 5, 7])
        #expect(fill.fills(5) && !fill.fills(3))
        let request = fill.request(from: "n2", transferID: 9, now: at(1))
        #expect(request == StateTransferRequest(from: "n1", transferID: 9, viewEpoch: 4, partitions: [2, 5, 7]))
        #expect(fill.request(from: "n9", transferID: 10, now: at(1)) == nil, "a stranger is not a source")

        #expect(fill.accept(chunk(from: "n2", transfer: 9, index: 0, last: true), now: at(2)) == .apply(credit: nil))
        #expect(!fill.isDone, "n3 has not finished")
        #expect(fill.accept(chunk(from: "n3", transfer: 2, index: 0, last: true), now: at(2)) == .apply(credit: nil))
        #expect(fill.isDone, "done without the former member n4")
        #expect(fill.sources == ["n4"], "n4 may still send")
    }

    @Test func chunksInOrderEarnCreditsAndAGapAsksAfresh() {
        var fill = started()
        let credit = StateTransferRequest(from: "n1", transferID: 1, viewEpoch: 4, partitions: [2, 5, 7])
        #expect(fill.accept(chunk(from: "n2", transfer: 1, index: 0), now: at(5)) == .apply(credit: credit))
        #expect(fill.accept(chunk(from: "n2", transfer: 1, index: 1), now: at(6)) == .apply(credit: credit))
        #expect(fill.accept(chunk(from: "n2", transfer: 1, index: 3), now: at(7)) == .askAgain, "chunk 2 went missing")
        #expect(fill.accept(chunk(from: "n2", transfer: 1, index: 1), now: at(7)) == .askAgain, "a repeat is out of order too")

        // Asked afresh: the old transfer's chunks are stale, the new one starts at 0.
        _ = fill.request(from: "n2", transferID: 8, now: at(8))
        #expect(fill.accept(chunk(from: "n2", transfer: 1, index: 2), now: at(9)) == .ignore)
        #expect(fill.accept(chunk(from: "n2", transfer: 8, index: 0), now: at(9)) != .ignore)
        #expect(fill.accept(chunk(from: "n9", transfer: 8, index: 0), now: at(9)) == .ignore, "not a source")

        // After the last chunk, more from that source is stale.
        #expect(fill.accept(chunk(from: "n3", transfer: 2, index: 0, last: true), now: at(10)) == .apply(credit: nil))
        #expect(fill.accept(chunk(from: "n3", transfer: 2, index: 1), now: at(10)) == .ignore)
    }

    @Test func onlyAMemberThatMadeNoProgressIsStalled() {
        var fill = started()
        #expect(fill.stalled(now: at(499), timeoutMilliseconds: 500).isEmpty)
        _ = fill.accept(chunk(from: "n3", transfer: 2, index: 0), now: at(400))
        #expect(fill.stalled(now: at(500), timeoutMilliseconds: 500) == ["n2"], "n3's chunk at 400 was progress; n4 is not waited for")
        _ = fill.request(from: "n2", transferID: 7, now: at(500))
        #expect(fill.stalled(now: at(900), timeoutMilliseconds: 500) == ["n3"])
        #expect(fill.stalled(now: at(1000), timeoutMilliseconds: 500) == ["n2", "n3"])
    }
}
