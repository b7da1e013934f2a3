@testable import ClusterProtocol
import SessionCore
import Testing

/// One served state transfer step by step: what its chunks hold, their numbers and sizes,
/// their order, and sessions that come and go while it runs.
@Suite struct OutgoingTransferTests {
    let partitionCount = 16
    let t0 = Timestamp(milliseconds: 1_764_000_000_000)
    let payload = AttributeValue(encoding: .utf8, bytes: [UInt8](repeating: 7, count: 200))

    func partition(_ id: SessionID) -> PartitionID { PartitionID(of: id, count: partitionCount) }

    func store(_ ids: [SessionID], shards: Int = 8) throws -> SessionStore {
        let store = SessionStore(configuration: .init(shardCount: shards))
        for id in ids { _ = try store.create(id: id, now: t0, attributes: ["a": payload]) }
        return store
    }

    func ids(_ count: Int, seed: UInt64 = 1) -> [SessionID] {
        var random = SeededRandom(seed: seed)
        return (0..<count).map { _ in SessionID(high: random.next(), low: random.next(), tail: 0) }
    }

    /// Every chunk of `transfer`, until the one marked last (at most `limit`).
    func drain(_ transfer: inout OutgoingTransfer, _ store: SessionStore, maxBytes: Int, limit: Int = 10_000)
        -> [(snapshots: [SessionDelta], index: UInt32, last: Bool)]
    {
        var chunks: [(snapshots: [SessionDelta], index: UInt32, last: Bool)] = []
        repeat {
            chunks.append(transfer.nextChunk(from: store, maxBytes: maxBytes, partition: partition))
        } while chunks.last?.last == false && chunks.count < limit
        return chunks
    }

    @Test func chunksCarryEveryRequestedSessionOnceInNumberedChunksOfBoundedSize() throws {
        let all = ids(400)
        let store = try store(all)
        let wanted: Set<PartitionID> = [0, 3, 4, 9]
        let single = try #require(all.first { !wanted.contains(partition($0)) })
        var transfer = OutgoingTransfer(transferID: 5, viewEpoch: 2, partitions: wanted, sessions: [single])
        let chunkBytes = 4 * 1024
        let chunks = drain(&transfer, store, maxBytes: chunkBytes)

        let sent = chunks.flatMap { $0.snapshots.map(\.id) }
        let expected = all.filter { wanted.contains(partition($0)) || $0 == single }
        #expect(sent.count == expected.count, "each session once")
        #expect(Set(sent) == Set(expected))
        #expect(chunks.map(\.index) == (0..<UInt32(chunks.count)).map { $0 })
        #expect(chunks.last?.last == true)
        let after = transfer.nextChunk(from: store, maxBytes: chunkBytes, partition: partition)
        #expect(after.snapshots.isEmpty && after.last, "nothing more after the last chunk")
        #expect(chunks.count > 3, "a transfer of ~100 sessions of 200 B is cut into several 4 KiB chunks")
        for chunk in chunks.dropLast() {
            let bytes = chunk.snapshots.reduce(0) { $0 + $1.estimatedBytes }
            let largest = chunk.snapshots.map(\.estimatedBytes).max() ?? 0
            #expect(bytes >= chunkBytes && bytes < chunkBytes + largest, "a chunk stops at the first snapshot past the size")
        }
        #expect(chunks.allSatisfy { $0.snapshots.allSatisfy { $0.kind == .snapshot } })
    }

    @Test func theOrderIsFixedWhateverOrderTheStoreWasFilledIn() throws {
        let all = ids(300, seed: 9)
        let wanted = Set(PartitionID.all(partitionCount).filter { $0.rawValue % 2 == 0 })
        var first = OutgoingTransfer(transferID: 1, viewEpoch: 1, partitions: wanted, sessions: [])
        var second = first
        let a = drain(&first, try store(all), maxBytes: 2048).flatMap { $0.snapshots.map(\.id) }
        let b = drain(&second, try store(all.reversed()), maxBytes: 2048).flatMap { $0.snapshots.map(\.id) }
        #expect(a == b, "a simulated run replays only if the chunks do")
    }

    @Test func sessionsEndedBeforeTheirTurnAreSkippedAndNewOnesAheadAreSent() throws {
        let all = ids(200, seed: 4)
        let store = try store(all, shards: 4)
        var transfer = OutgoingTransfer(
            transferID: 1, viewEpoch: 1, partitions: Set(PartitionID.all(partitionCount)), sessions: [])
        let firstChunk = transfer.nextChunk(from: store, maxBytes: 1, partition: partition)
        let firstSent = try #require(firstChunk.snapshots.first?.id)
        #expect(firstChunk.snapshots.count == 1 && !firstChunk.last)

        // Gone from the store (its partition moved away): not sent, nothing breaks.
        let evicted = Set(all.filter { $0 != firstSent }.prefix(20))
        store.evict(where: { evicted.contains($0) })
        // Created after the transfer began, in a shard it has not read yet: sent too.
        let later = ids(50, seed: 77)
        for id in later { _ = try store.create(id: id, now: t0, attributes: ["a": payload]) }

        let rest = drain(&transfer, store, maxBytes: 1).flatMap { $0.snapshots.map(\.id) }
        #expect(rest.allSatisfy { !evicted.contains($0) })
        #expect(Set(rest).isSuperset(of: Set(all).subtracting(evicted).subtracting([firstSent])))
        #expect(!Set(rest).isDisjoint(with: later), "sessions of shards not read yet are included")
        #expect(rest.count == Set(rest).count)
    }

    @Test func anEmptyTransferIsOneEmptyLastChunk() throws {
        let store = try store(ids(50))
        var transfer = OutgoingTransfer(transferID: 1, viewEpoch: 1, partitions: [], sessions: [])
        let chunk = transfer.nextChunk(from: store, maxBytes: 1024, partition: partition)
        #expect(chunk.snapshots.isEmpty && chunk.last && chunk.index == 0)
    }
}
