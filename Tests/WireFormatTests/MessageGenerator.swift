import ClusterProtocol
import SessionCore

/// Builds random messages of every kind, with edge values (0, max, negative, empty,
/// non-ASCII) mixed in, so the round trip covers what a fixed sample would miss.
struct MessageGenerator {
    var random: SeededRandom

    init(seed: UInt64) { random = SeededRandom(seed: seed) }

    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }

    mutating func integer() -> UInt64 {
        switch random.next() % 4 {
        case 0: [0, 1, 127, 128, UInt64.max, UInt64(Int64.max)][Int(random.next() % 6)]
        case 1: random.next() % 128
        case 2: random.next() % 100_000
        default: random.next()
        }
    }

    mutating func signed() -> Int64 {
        switch random.next() % 3 {
        case 0: [0, -1, 1, Int64.min, Int64.max][Int(random.next() % 5)]
        case 1: Int64(random.next() % 200_000) - 100_000
        default: Int64(bitPattern: random.next())
        }
    }

    mutating func int() -> Int { Int(signed()) }

    mutating func bool() -> Bool { random.next() & 1 == 1 }

    mutating func string(maxLength: Int = 24) -> String {
        let alphabet: [Character] = ["a", "b", "z", "0", "_", "-", ".", " ", "é", "ß", "名", "🙂", "\u{0}", "\""]
        let length = Int(random.next() % UInt64(maxLength + 1))
        return String((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
    }

    mutating func bytes(maxLength: Int = 64) -> [UInt8] {
        (0..<Int(random.next() % UInt64(maxLength + 1))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    mutating func sessionID() -> SessionID { SessionID.random(using: &random) }
    mutating func timestamp() -> Timestamp { Timestamp(milliseconds: signed()) }
    mutating func nodeID() -> NodeID { NodeID(string(maxLength: 12)) }

    mutating func member() -> Member {
        Member(id: nodeID(), address: PeerAddress(host: string(maxLength: 20), port: int()), incarnation: integer())
    }

    mutating func array<Element>(max: Int, _ make: (inout MessageGenerator) -> Element) -> [Element] {
        (0..<Int(random.next() % UInt64(max + 1))).map { _ in make(&self) }
    }

    mutating func optional<Value>(_ make: (inout MessageGenerator) -> Value) -> Value? {
        bool() ? make(&self) : nil
    }

    mutating func attributeValue() -> AttributeValue {
        AttributeValue(encoding: AttributeEncoding(rawValue: UInt8(truncatingIfNeeded: random.next() % 6)), bytes: bytes())
    }

    mutating func version() -> SessionVersion { SessionVersion(rawValue: integer()) }

    mutating func metadata() -> SessionMetadata {
        SessionMetadata(
            createdAt: timestamp(), maxInactiveMilliseconds: signed(), absoluteDeadline: optional { $0.timestamp() },
            principal: optional { $0.string() }, stamp: version())
    }

    mutating func invalidationReason() -> InvalidationReason {
        switch random.next() % 3 {
        case 0: .invalidated
        case 1: .expired
        default: .rotated(to: sessionID())
        }
    }

    mutating func delta() -> SessionDelta {
        SessionDelta(
            id: sessionID(), kind: SessionDelta.Kind.allCases[Int(random.next() % 4)], version: version(),
            previousVersion: version(), lastAccessedAt: timestamp(), metadata: optional { $0.metadata() },
            attributes: array(max: 6) { AttributeChange(name: $0.string(), stamp: $0.version(), value: $0.optional { $0.attributeValue() }) },
            invalidation: optional { $0.invalidationReason() })
    }

    mutating func changes() -> SessionChanges {
        var updated: [String: AttributeValue] = [:]
        for _ in 0..<(random.next() % 5) { updated[string()] = attributeValue() }
        let principal: String?? =
            switch random.next() % 3 {
            case 0: .none
            case 1: .some(.none)
            default: .some(string())
            }
        return SessionChanges(
            updated: updated, removed: Set(array(max: 4) { $0.string() }), maxInactiveMilliseconds: optional { $0.signed() },
            principal: principal)
    }

    mutating func storeError() -> SessionStoreError {
        switch random.next() % 8 {
        case 0: .attributeTooLarge(name: string(), bytes: int(), limit: int())
        case 1: .sessionTooLarge(bytes: int(), limit: int())
        case 2: .tooManyAttributes(count: int(), limit: int())
        case 3: .tooManySessions(limit: int())
        case 4: .sessionNotFound(sessionID())
        case 5: .sessionEnded(sessionID(), invalidationReason())
        case 6: .duplicateID(sessionID())
        default: .storeFull(bytes: int(), limit: int())
        }
    }

    mutating func failure() -> ClusterFailure {
        switch random.next() % 5 {
        case 0: .store(storeError())
        case 1: .notInMajority
        case 2: .replicationTimeout
        case 3: .ownerUnreachable
        default: .retry
        }
    }

    mutating func operation() -> WriteOperation {
        switch random.next() % 5 {
        case 0: .create(metadata(), changes())
        case 1: .update(changes())
        case 2: .invalidate
        case 3: .rotate(to: sessionID())
        default: .touch(timestamp())
        }
    }

    mutating func readResult() -> ReadResult {
        switch random.next() % 4 {
        case 0: .found(delta())
        case 1: .notModified(version: version())
        case 2: .notFound
        default: .failed(failure())
        }
    }

    /// A random message of the case numbered `kind` (0 to 16, in `ClusterMessage` order).
    mutating func message(kind: Int) -> ClusterMessage {
        switch kind {
        case 0: .heartbeat(Heartbeat(from: member(), term: Term(rawValue: integer()), viewEpoch: Epoch(rawValue: integer()), sequence: integer(), fromLeader: bool()))
        case 1: .heartbeatReply(HeartbeatReply(from: member(), term: Term(rawValue: integer()), viewEpoch: Epoch(rawValue: integer()), sequence: integer()))
        case 2: .probeRequest(ProbeRequest(from: nodeID(), target: nodeID(), probeID: integer()))
        case 3: .probeReply(ProbeReply(from: nodeID(), target: nodeID(), probeID: integer(), alive: bool()))
        case 4: .voteRequest(VoteRequest(from: member(), term: Term(rawValue: integer()), lastViewEpoch: Epoch(rawValue: integer())))
        case 5: .voteReply(VoteReply(from: nodeID(), term: Term(rawValue: integer()), granted: bool()))
        case 6: .joinRequest(JoinRequest(from: member(), leaving: bool()))
        case 7: .view(View(term: Term(rawValue: integer()), epoch: Epoch(rawValue: integer()), leader: nodeID(), members: array(max: 7) { $0.member() }))
        case 8: .deltaBatch(DeltaBatch(from: nodeID(), viewEpoch: Epoch(rawValue: integer()), sequence: integer(), deltas: array(max: 8) { $0.delta() }))
        case 9: .deltaAck(DeltaAck(from: nodeID(), sequence: integer(), needSnapshots: array(max: 5) { $0.sessionID() }))
        case 10:
            .forwardedWrite(ForwardedWrite(
                from: nodeID(), requestID: RequestID(integer()), sessionID: sessionID(), operation: operation(),
                concern: bool() ? .local : .replicated(int())))
        case 11:
            .writeReply(WriteReply(from: nodeID(), requestID: RequestID(integer()), result: bool() ? .success(version()) : .failure(failure())))
        case 12:
            .stateTransferRequest(StateTransferRequest(
                from: nodeID(), transferID: integer(), viewEpoch: Epoch(rawValue: integer()), partitions: array(max: 10) { PartitionID(Int($0.integer() % 100_000)) },
                sessions: array(max: 4) { $0.sessionID() }))
        case 13:
            .stateTransferChunk(StateTransferChunk(
                from: nodeID(), transferID: integer(), index: UInt32(truncatingIfNeeded: integer()), last: bool(),
                snapshots: array(max: 8) { $0.delta() }))
        case 14:
            .readRequest(ReadRequest(from: nodeID(), requestID: RequestID(integer()), sessionID: sessionID(), knownVersion: optional { $0.version() },
                touch: bool()))
        case 15: .readReply(ReadReply(from: nodeID(), requestID: RequestID(integer()), result: readResult()))
        default: .error(ProtocolErrorMessage(code: UInt16(truncatingIfNeeded: integer()), message: string(maxLength: 80)))
        }
    }

    static let messageKinds = 17

    mutating func message() -> ClusterMessage { message(kind: Int(random.next() % UInt64(Self.messageKinds))) }
}
