@testable import ClusterProtocol
import SessionCore
import Testing

/// One replication stream step by step: numbering, cumulative acks, overflow, re-stamping.
@Suite struct ReplicationStreamTests {
    let peer = Member(id: "n2", address: PeerAddress(host: "10.0.0.2", port: 7000), incarnation: 1)

    func delta(_ seed: UInt64, version: SessionVersion = 1, bytes: Int = 100) -> SessionDelta {
        SessionDelta(
            id: SessionID(high: seed, low: seed, tail: 0), kind: .update, version: version, previousVersion: SessionVersion(rawValue: version.rawValue - 1),
            lastAccessedAt: Timestamp(milliseconds: 0),
            attributes: [AttributeChange(name: "a", stamp: version, value: AttributeValue(encoding: .utf8, bytes: [UInt8](repeating: 1, count: bytes)))])
    }

    func at(_ milliseconds: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds) }

    @Test func batchesAreNumberedInOrderAndCarryWhatWaited() {
        var stream = OutboundStream(member: peer, now: at(0))
        #expect(stream.nextBatch(from: "n1", epoch: 3, now: at(1)) == nil, "nothing waits")
        stream.enqueue(delta(1))
        stream.enqueue(delta(2))
        let first = stream.nextBatch(from: "n1", epoch: 3, now: at(1))
        #expect(first?.sequence == 1)
        #expect(first?.viewEpoch == 3)
        #expect(first?.deltas.map(\.id) == [delta(1).id, delta(2).id])
        #expect(stream.waiting.isEmpty && stream.waitingBytes == 0)
        stream.enqueue(delta(3))
        #expect(stream.nextBatch(from: "n1", epoch: 3, now: at(2))?.sequence == 2)
        #expect(stream.unacked.map(\.batch.sequence) == [1, 2])
        #expect(stream.queuedBytes == stream.unacked.reduce(0) { $0 + $1.bytes })
    }

    @Test func acksAreCumulativeAndAnAckForANumberNeverSentChangesNothing() {
        var stream = OutboundStream(member: peer, now: at(0))
        for seed in 1...3 {
            stream.enqueue(delta(UInt64(seed)))
            _ = stream.nextBatch(from: "n1", epoch: 1, now: at(Int64(seed)))
        }
        var acknowledged: [UInt64] = []
        #expect(!stream.acknowledge(through: 4, now: at(10)) { acknowledged.append($0.sequence) }, "batch 4 was never sent")
        #expect(stream.unacked.count == 3)
        #expect(stream.acknowledge(through: 2, now: at(10)) { acknowledged.append($0.sequence) })
        #expect(acknowledged == [1, 2])
        #expect(stream.unacked.map(\.batch.sequence) == [3])
        #expect(stream.lastProgressAt == at(10))
        // A duplicate of an older ack is harmless.
        #expect(stream.acknowledge(through: 1, now: at(11)) { acknowledged.append($0.sequence) })
        #expect(acknowledged == [1, 2])
    }

    @Test func anOverflowKeepsTheNumbersDropsTheDeltasAndStallsUntilEverythingIsAcknowledged() {
        var stream = OutboundStream(member: peer, now: at(0))
        stream.enqueue(delta(1))
        _ = stream.nextBatch(from: "n1", epoch: 1, now: at(1))
        stream.enqueue(delta(2))
        _ = stream.nextBatch(from: "n1", epoch: 1, now: at(2))
        stream.enqueue(delta(3))
        stream.dropForOverflow()
        #expect(stream.unacked.map(\.batch.sequence) == [1, 2], "the peer's stream sees no gap")
        #expect(stream.unacked.allSatisfy { $0.batch.deltas.isEmpty && $0.bytes == 0 })
        #expect(stream.queuedBytes == 0)
        stream.enqueue(delta(4))
        #expect(stream.nextBatch(from: "n1", epoch: 1, now: at(3)) == nil, "stalled while batches are unacknowledged")
        _ = stream.acknowledge(through: 1, now: at(4)) { _ in }
        #expect(stream.nextBatch(from: "n1", epoch: 1, now: at(5)) == nil)
        _ = stream.acknowledge(through: 2, now: at(6)) { _ in }
        let resumed = stream.nextBatch(from: "n1", epoch: 1, now: at(7))
        #expect(resumed?.sequence == 3)
        #expect(resumed?.deltas.map(\.id) == [delta(4).id])
    }

    @Test func aNewViewRestampsTheUnacknowledgedBatchesAndDropsMovedSessions() {
        var stream = OutboundStream(member: peer, now: at(0))
        stream.enqueue(delta(1))
        stream.enqueue(delta(2))
        _ = stream.nextBatch(from: "n1", epoch: 1, now: at(1))
        stream.enqueue(delta(3))
        stream.enqueue(delta(4))
        let stays = { (delta: SessionDelta) in delta.id != self.delta(2).id && delta.id != self.delta(4).id }
        let resend = stream.restamp(epoch: 2, now: at(50), keeping: stays)
        stream.filterWaiting(stays)
        #expect(resend.map(\.sequence) == [1])
        #expect(resend.map(\.viewEpoch) == [2])
        #expect(resend[0].deltas.map(\.id) == [delta(1).id])
        #expect(stream.waiting.map(\.id) == [delta(3).id])
        #expect(stream.waitingBytes == delta(3).estimatedBytes)
        #expect(stream.lastProgressAt == at(50))
    }
}

/// The backup's end of a stream, step by step: each batch applied once and in order, the
/// acknowledgement cumulative, a rejoined sender's stream numbered afresh.
@Suite struct InboundStreamTests {
    /// Admits `sequence`, outside `#expect` (which cannot take a mutating call).
    func admit(_ stream: inout InboundStream, _ sequence: UInt64, from incarnation: UInt64) -> Bool {
        stream.admit(sequence, from: incarnation)
    }

    @Test func batchesInOrderAreAppliedOnceAndAcknowledgedCumulatively() {
        var stream = InboundStream(incarnation: 7)
        #expect(stream.acknowledged == 0)
        #expect(admit(&stream, 1, from: 7))
        #expect(admit(&stream, 2, from: 7))
        #expect(stream.acknowledged == 2)
        #expect(!admit(&stream, 2, from: 7), "a duplicate is not applied again")
        #expect(!admit(&stream, 1, from: 7), "nor an older one")
        #expect(stream.acknowledged == 2, "it re-acknowledges what was applied")
    }

    @Test func aBatchPastAGapWaitsForTheResend() {
        var stream = InboundStream(incarnation: 7)
        #expect(admit(&stream, 1, from: 7))
        #expect(!admit(&stream, 3, from: 7), "batch 2 was lost: 3 must not be applied before it")
        #expect(stream.acknowledged == 1, "the sender goes back to 2")
        #expect(admit(&stream, 2, from: 7))
        #expect(admit(&stream, 3, from: 7))
        #expect(stream.acknowledged == 3)
    }

    @Test func aRejoinedSenderStartsANewStreamAtOne() {
        var stream = InboundStream(incarnation: 7)
        for sequence in 1...5 { #expect(admit(&stream, UInt64(sequence), from: 7)) }
        #expect(!admit(&stream, 6, from: 8), "a new incarnation numbers from 1, not where the old one was")
        #expect(stream.incarnation == 8)
        #expect(stream.acknowledged == 0)
        #expect(admit(&stream, 1, from: 8))
        #expect(stream.acknowledged == 1)
    }
}
