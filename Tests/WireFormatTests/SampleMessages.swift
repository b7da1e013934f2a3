import ClusterProtocol
import SessionCore
@testable import WireFormat

/// Fixed messages, one per frame type, built from constants only: the golden frames are
/// these values encoded with ``goldenKey``.
enum SampleMessages {
    static let goldenKey = Array("golden-test-cluster-key-0123456789".utf8)

    static func codec(key: [UInt8] = goldenKey) -> FrameCodec {
        FrameCodec(configuration: try! WireConfiguration(clusterKey: key))
    }

    static let sessionA = SessionID(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210, tail: 0xBEEF)
    static let sessionB = SessionID(high: 0x1111_2222_3333_4444, low: 0x5555_6666_7777_8888, tail: 0x9999)
    static let n1 = Member(id: "n1", address: PeerAddress(host: "10.0.0.1", port: 7400), incarnation: 3)
    static let n2 = Member(id: "n2", address: PeerAddress(host: "node-2.internal", port: 7400), incarnation: 1)
    static let n3 = Member(id: "n3", address: PeerAddress(host: "::1", port: 7401), incarnation: 12)

    static let metadata = SessionMetadata(
        createdAt: Timestamp(milliseconds: 1_764_000_000_000), maxInactiveMilliseconds: 1_800_000,
        absoluteDeadline: Timestamp(milliseconds: 1_764_086_400_000), principal: "alice@example.com", stamp: 1)

    /// A session as a shop writes it: a cart and a CSRF token, values in JSON.
    static func realisticDelta(index: Int) -> SessionDelta {
        let id = SessionID(high: 0xA000_0000 &+ UInt64(index), low: UInt64(index) &* 0x9E37_79B9, tail: UInt16(truncatingIfNeeded: index))
        let cart = "{\"items\":[" + (0..<(2 + index % 4)).map { item in
            "{\"sku\":\"SKU-\(1000 + item * 7 + index % 13)\",\"name\":\"Organic cotton T-shirt\",\"quantity\":\(1 + item % 3),\"unitPrice\":{\"amount\":\"19.90\",\"currency\":\"EUR\"}}"
        }.joined(separator: ",") + "],\"coupon\":null,\"updatedAt\":\"2026-11-26T15:\(10 + index % 50):00Z\"}"
        let version = SessionVersion(rawValue: UInt64(40 + index))
        return SessionDelta(
            id: id, kind: index % 5 == 0 ? .snapshot : .update, version: version, previousVersion: SessionVersion(rawValue: version.rawValue - 1),
            lastAccessedAt: Timestamp(milliseconds: 1_764_169_800_000 + Int64(index) * 250),
            metadata: index % 5 == 0 ? metadata : nil,
            attributes: [
                AttributeChange(name: "cart", stamp: version, value: AttributeValue(encoding: .json, bytes: Array(cart.utf8))),
                AttributeChange(
                    name: "csrf", stamp: version,
                    value: AttributeValue(string: "csrf-\(String(index * 7919, radix: 16))-4f1c9a2e7b3d")),
                AttributeChange(name: "flash", stamp: version, value: nil),
            ])
    }

    static let invalidateDelta = SessionDelta(
        id: sessionB, kind: .invalidate, version: 9, previousVersion: 8, lastAccessedAt: Timestamp(milliseconds: -5),
        invalidation: .rotated(to: sessionA))

    /// The messages of the golden bundle: an ack, a batch and a heartbeat reply, as a
    /// busy link carries them in one flush.
    static let bundle: [ClusterMessage] = [message(.deltaAck), message(.deltaBatch), message(.heartbeatReply)]

    /// The sample of frame type `type`.
    static func message(_ type: FrameType) -> ClusterMessage {
        all.first { $0.name == "\(type)" }!.message
    }

    /// One message per frame type, in frame type order, with the file name of its golden frame.
    static let all: [(name: String, message: ClusterMessage)] = [
        ("heartbeat", .heartbeat(Heartbeat(from: n1, term: 4, viewEpoch: 17, sequence: 90_001, fromLeader: true))),
        ("heartbeatReply", .heartbeatReply(HeartbeatReply(from: n2, term: 4, viewEpoch: 17, sequence: 90_001))),
        ("probeRequest", .probeRequest(ProbeRequest(from: "n1", target: "n3", probeID: 77))),
        ("probeReply", .probeReply(ProbeReply(from: "n2", target: "n3", probeID: 77, alive: false))),
        ("voteRequest", .voteRequest(VoteRequest(from: n3, term: 5, lastViewEpoch: 17))),
        ("voteReply", .voteReply(VoteReply(from: "n1", term: 5, granted: true))),
        ("joinRequest", .joinRequest(JoinRequest(from: n3, leaving: false))),
        ("view", .view(View(term: 5, epoch: 18, leader: "n3", members: [n3, n1, n2]))),
        ("deltaBatch", .deltaBatch(DeltaBatch(
            from: "n1", viewEpoch: 18, sequence: 1234, deltas: (0..<6).map(realisticDelta) + [invalidateDelta]))),
        ("deltaAck", .deltaAck(DeltaAck(from: "n2", sequence: 1234, needSnapshots: [sessionA, sessionB]))),
        ("forwardedWrite", .forwardedWrite(ForwardedWrite(
            from: "n2", requestID: RequestID(555), sessionID: sessionA,
            operation: .create(metadata, SessionChanges(
                updated: ["theme": AttributeValue(string: "dark"), "roles": AttributeValue(encoding: .json, bytes: Array("[\"admin\"]".utf8))],
                removed: ["legacy", "flash"], maxInactiveMilliseconds: 600_000, principal: .some(nil))),
            concern: .replicated(1)))),
        ("writeReply", .writeReply(WriteReply(
            from: "n1", requestID: RequestID(555),
            result: .failure(.store(.attributeTooLarge(name: "cart", bytes: 70_000, limit: 65_536)))))),
        ("stateTransferRequest", .stateTransferRequest(StateTransferRequest(
            from: "n3", transferID: 8, viewEpoch: 18, partitions: [0, 7, 270], sessions: [sessionB]))),
        ("stateTransferChunk", .stateTransferChunk(StateTransferChunk(
            from: "n1", transferID: 8, index: 2, last: true, snapshots: (10..<16).map(realisticDelta)))),
        ("readRequest", .readRequest(ReadRequest(from: "n2", requestID: RequestID(9), sessionID: sessionA, knownVersion: 41))),
        ("readReply", .readReply(ReadReply(from: "n1", requestID: RequestID(9), result: .found(realisticDelta(index: 5))))),
        ("error", .error(ProtocolErrorMessage(code: WireError.authenticationFailed.code, message: "frame authentication failed"))),
        ("forwardedWriteWithDeadline", .forwardedWrite(ForwardedWrite(
            from: "n3", requestID: RequestID(556), sessionID: sessionB,
            operation: .update(SessionChanges(updated: ["step": AttributeValue(string: "2")])), concern: .replicated(1),
            deadline: Timestamp(milliseconds: 1_796_695_300_031)))),
    ]
}
