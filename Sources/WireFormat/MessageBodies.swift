import ClusterProtocol
import SessionCore

// The body of each frame type, field by field in declaration order.

extension Heartbeat: WireCodable {
    static var minimumEncodedBytes: Int { Member.minimumEncodedBytes + 4 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeVarint(term)
        writer.writeVarint(viewEpoch)
        writer.writeVarint(sequence)
        writer.writeBool(fromLeader)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            from: try reader.read(), term: try reader.readTerm("term"), viewEpoch: try reader.readEpoch("viewEpoch"),
            sequence: try reader.readVarint("sequence"), fromLeader: try reader.readBool("fromLeader"))
    }
}

extension HeartbeatReply: WireCodable {
    static var minimumEncodedBytes: Int { Member.minimumEncodedBytes + 3 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeVarint(term)
        writer.writeVarint(viewEpoch)
        writer.writeVarint(sequence)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            from: try reader.read(), term: try reader.readTerm("term"), viewEpoch: try reader.readEpoch("viewEpoch"),
            sequence: try reader.readVarint("sequence"))
    }
}

extension ProbeRequest: WireCodable {
    static var minimumEncodedBytes: Int { 3 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.write(target)
        writer.writeVarint(probeID)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(from: try reader.read(), target: try reader.read(), probeID: try reader.readVarint("probeID"))
    }
}

extension ProbeReply: WireCodable {
    static var minimumEncodedBytes: Int { 4 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.write(target)
        writer.writeVarint(probeID)
        writer.writeBool(alive)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            from: try reader.read(), target: try reader.read(), probeID: try reader.readVarint("probeID"),
            alive: try reader.readBool("alive"))
    }
}

extension VoteRequest: WireCodable {
    static var minimumEncodedBytes: Int { Member.minimumEncodedBytes + 2 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeVarint(term)
        writer.writeVarint(lastViewEpoch)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(from: try reader.read(), term: try reader.readTerm("term"), lastViewEpoch: try reader.readEpoch("lastViewEpoch"))
    }
}

extension VoteReply: WireCodable {
    static var minimumEncodedBytes: Int { 3 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeVarint(term)
        writer.writeBool(granted)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(from: try reader.read(), term: try reader.readTerm("term"), granted: try reader.readBool("granted"))
    }
}

extension JoinRequest: WireCodable {
    static var minimumEncodedBytes: Int { Member.minimumEncodedBytes + 1 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeBool(leaving)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(from: try reader.read(), leaving: try reader.readBool("leaving"))
    }
}

extension View: WireCodable {
    static var minimumEncodedBytes: Int { 4 }
    func write(to writer: inout BinaryWriter) {
        writer.writeVarint(term)
        writer.writeVarint(epoch)
        writer.write(leader)
        writer.writeArray(members)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            term: try reader.readTerm("term"), epoch: try reader.readEpoch("epoch"), leader: try reader.read(),
            members: try reader.readArray("members"))
    }
}

extension DeltaBatch: WireCodable {
    static var minimumEncodedBytes: Int { 4 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeVarint(viewEpoch)
        writer.writeVarint(sequence)
        writer.writeArray(deltas)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            from: try reader.read(), viewEpoch: try reader.readEpoch("viewEpoch"), sequence: try reader.readVarint("sequence"),
            deltas: try reader.readArray("deltas"))
    }
}

extension DeltaAck: WireCodable {
    static var minimumEncodedBytes: Int { 3 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeVarint(sequence)
        writer.writeArray(needSnapshots)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(from: try reader.read(), sequence: try reader.readVarint("sequence"), needSnapshots: try reader.readArray("needSnapshots"))
    }
}

extension WriteOperation: WireCodable {
    static var minimumEncodedBytes: Int { 1 }
    func write(to writer: inout BinaryWriter) {
        switch self {
        case .create(let metadata, let changes):
            writer.writeByte(0)
            writer.write(metadata)
            writer.write(changes)
        case .update(let changes):
            writer.writeByte(1)
            writer.write(changes)
        case .invalidate: writer.writeByte(2)
        case .rotate(let newID):
            writer.writeByte(3)
            writer.writeSessionID(newID)
        case .touch(let timestamp):
            writer.writeByte(4)
            writer.writeTimestamp(timestamp)
        }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        switch try reader.readByte("operation") {
        case 0: self = .create(try reader.read(), try reader.read())
        case 1: self = .update(try reader.read())
        case 2: self = .invalidate
        case 3: self = .rotate(to: try reader.readSessionID("operation.rotate"))
        case 4: self = .touch(try reader.readTimestamp("operation.touch"))
        case let tag: throw BinaryReader.fail("operation", "unknown case \(tag)")
        }
    }
}

extension ForwardedWrite: WireCodable {
    static var minimumEncodedBytes: Int { SessionID.byteCount + 4 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.write(requestID)
        writer.writeSessionID(sessionID)
        writer.write(operation)
        writer.write(concern)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            from: try reader.read(), requestID: try reader.read(), sessionID: try reader.read(), operation: try reader.read(),
            concern: try reader.read())
    }
}

extension WriteReply: WireCodable {
    static var minimumEncodedBytes: Int { 4 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.write(requestID)
        switch result {
        case .success(let version):
            writer.writeByte(0)
            writer.writeVarint(version)
        case .failure(let failure):
            writer.writeByte(1)
            writer.write(failure)
        }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        let from = try reader.read(NodeID.self)
        let requestID = try reader.read(RequestID.self)
        let result: Result<SessionVersion, ClusterFailure>
        switch try reader.readByte("result") {
        case 0: result = .success(try reader.readVersion("result.success"))
        case 1: result = .failure(try reader.read())
        case let tag: throw BinaryReader.fail("result", "unknown case \(tag)")
        }
        self.init(from: from, requestID: requestID, result: result)
    }
}

extension StateTransferRequest: WireCodable {
    static var minimumEncodedBytes: Int { 5 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeVarint(transferID)
        writer.writeVarint(viewEpoch)
        writer.writeArray(partitions) { writer, partition in writer.writeVarint(partition.rawValue) }
        writer.writeArray(sessions)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            from: try reader.read(), transferID: try reader.readVarint("transferID"), viewEpoch: try reader.readEpoch("viewEpoch"),
            partitions: try reader.readArray("partitions", minimumElementBytes: 1) { reader throws(WireError) in
                let partition = try reader.readInt("partitions")
                guard partition >= 0 else { throw BinaryReader.fail("partitions", "negative partition \(partition)") }
                return PartitionID(partition)
            },
            sessions: try reader.readArray("sessions"))
    }
}

extension StateTransferChunk: WireCodable {
    static var minimumEncodedBytes: Int { 5 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.writeVarint(transferID)
        writer.writeVarint(UInt64(index))
        writer.writeBool(last)
        writer.writeArray(snapshots)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            from: try reader.read(), transferID: try reader.readVarint("transferID"), index: try reader.readUnsigned(UInt32.self, "index"),
            last: try reader.readBool("last"), snapshots: try reader.readArray("snapshots"))
    }
}

extension ReadRequest: WireCodable {
    static var minimumEncodedBytes: Int { SessionID.byteCount + 3 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.write(requestID)
        writer.writeSessionID(sessionID)
        writer.writeOptional(knownVersion) { writer, version in writer.writeVarint(version) }
        // Options, written only when one is set, so that a touching read is byte for byte
        // what nodes without options send and read (they touched on every read).
        if !touch { writer.writeByte(Self.noTouch) }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(
            from: try reader.read(), requestID: try reader.read(), sessionID: try reader.read(),
            knownVersion: try reader.readOptional("knownVersion") { reader throws(WireError) in try reader.readVersion("knownVersion") })
        if reader.remaining > 0 {
            let options = try reader.readByte("options")
            guard options & ~Self.noTouch == 0 else { throw BinaryReader.fail("options", "unknown bits \(options)") }
            touch = options & Self.noTouch == 0
        }
    }
    /// The option bit of a read that must not move the last-access time.
    private static var noTouch: UInt8 { 1 }
}

extension ReadResult: WireCodable {
    static var minimumEncodedBytes: Int { 1 }
    func write(to writer: inout BinaryWriter) {
        switch self {
        case .found(let delta):
            writer.writeByte(0)
            writer.write(delta)
        case .notModified(let version):
            writer.writeByte(1)
            writer.writeVarint(version)
        case .notFound: writer.writeByte(2)
        case .failed(let failure):
            writer.writeByte(3)
            writer.write(failure)
        }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        switch try reader.readByte("result") {
        case 0: self = .found(try reader.read())
        case 1: self = .notModified(version: try reader.readVersion("result.notModified"))
        case 2: self = .notFound
        case 3: self = .failed(try reader.read())
        case let tag: throw BinaryReader.fail("result", "unknown case \(tag)")
        }
    }
}

extension ReadReply: WireCodable {
    static var minimumEncodedBytes: Int { 3 }
    func write(to writer: inout BinaryWriter) {
        writer.write(from)
        writer.write(requestID)
        writer.write(result)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(from: try reader.read(), requestID: try reader.read(), result: try reader.read())
    }
}

extension ProtocolErrorMessage: WireCodable {
    static var minimumEncodedBytes: Int { 2 }
    func write(to writer: inout BinaryWriter) {
        writer.writeVarint(UInt64(code))
        writer.writeString(message)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        self.init(code: try reader.readUnsigned(UInt16.self, "code"), message: try reader.readString("message"))
    }
}
