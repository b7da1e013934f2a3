import ClusterProtocol
import SessionCore
import Testing
@testable import WireFormat

/// Snapshots travel from the store's packed buffers to the wire and back into a joining
/// store without being unpacked per attribute: what arrives must be what was sent.
@Suite struct StateTransferCodingTests {
    let codec = SampleMessages.codec()
    let now = Timestamp(milliseconds: 5_000)

    @Test func aTransferredChunkFillsAnEmptyStoreWithExactlyTheSourcesSessions() throws {
        let source = SessionStore()
        for index in 0..<40 {
            var session = try source.create(now: now)
            session.setAttribute("cart", AttributeValue(encoding: .json, bytes: Array("[\(index)]".utf8)))
            session.setAttribute("prénom", AttributeValue(string: "Zoë \(index)"))  // not ASCII
            if index % 3 == 0 { session.setAttribute("flash", AttributeValue(string: "saved")) }
            try source.save(session, now: now)
            if index % 5 == 0 {  // a snapshot that also carries a removal
                var again = try #require(source.load(session.id, now: now))
                again.removeAttribute("cart")
                try source.save(again, now: now)
            }
        }
        let snapshots = source.snapshots(where: { _ in true })
        let chunk = ClusterMessage.stateTransferChunk(
            StateTransferChunk(from: "n1", transferID: 1, index: 0, last: true, snapshots: snapshots))
        let decoded = try codec.decode(codec.encode(chunk).bytes)
        #expect(decoded == chunk)
        guard case .stateTransferChunk(let received) = decoded else { throw WireError.malformed("not a chunk") }

        let joiner = SessionStore()
        for snapshot in received.snapshots { #expect(joiner.apply(snapshot, now: now) == .applied) }
        for id in source.sessionIDs(where: { _ in true }) {
            #expect(joiner.load(id, now: now, touch: false)?.attributes == source.load(id, now: now, touch: false)?.attributes)
            #expect(joiner.snapshot(id) == source.snapshot(id))
        }
        // The joiner holds clean copies: nothing of them is sent on as its own write.
        #expect(joiner.drainDeltas(includeTouches: true).isEmpty)
    }

    /// Partitions are numbered from 0: a request naming a negative one is malformed (the
    /// signed encoding could carry it), not a request for no sessions.
    @Test func aTransferRequestForANegativePartitionIsRefused() throws {
        let request = ClusterMessage.stateTransferRequest(
            StateTransferRequest(from: "n3", transferID: 8, viewEpoch: 18, partitions: [0, PartitionID(-1)], sessions: []))
        #expect(codec.decodingError(codec.encode(request).bytes) == .malformed("stateTransferRequest.partitions: negative partition -1"))
        let valid = ClusterMessage.stateTransferRequest(
            StateTransferRequest(from: "n3", transferID: 8, viewEpoch: 18, partitions: [0, 270], sessions: []))
        #expect(try codec.decode(codec.encode(valid).bytes) == valid)
    }
}
