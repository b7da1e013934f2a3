import ClusterProtocol
import SessionCore

/// A value with a body encoding. Field order is the wire format: changing it changes the
/// golden frames in `Fixtures/frames`, on purpose or not.
protocol WireCodable {
    /// The fewest bytes an encoded value takes, so a claimed element count can be checked
    /// against the bytes left before anything is reserved.
    static var minimumEncodedBytes: Int { get }
    func write(to writer: inout BinaryWriter)
    init(reading reader: inout BinaryReader) throws(WireError)
}

extension BinaryWriter {
    mutating func write(_ value: some WireCodable) {
        value.write(to: &self)
    }

    mutating func writeArray<Element: WireCodable>(_ elements: [Element]) {
        writeArray(elements) { writer, element in element.write(to: &writer) }
    }

    mutating func writeOptional(_ value: (some WireCodable)?) {
        writeOptional(value) { writer, value in value.write(to: &writer) }
    }
}

extension BinaryReader {
    mutating func read<Value: WireCodable>(_ type: Value.Type = Value.self) throws(WireError) -> Value {
        try Value(reading: &self)
    }

    mutating func readArray<Element: WireCodable>(_ field: StaticString, of type: Element.Type = Element.self) throws(WireError) -> [Element] {
        try readArray(field, minimumElementBytes: Element.minimumEncodedBytes) { reader throws(WireError) in
            try Element(reading: &reader)
        }
    }

    mutating func readOptional<Value: WireCodable>(_ field: StaticString, of type: Value.Type) throws(WireError) -> Value? {
        try readOptional(field) { reader throws(WireError) in try Value(reading: &reader) }
    }

    mutating func readTimestamp(_ field: StaticString) throws(WireError) -> Timestamp {
        Timestamp(milliseconds: try readSignedVarint(field))
    }
}

extension BinaryWriter {
    mutating func writeTimestamp(_ timestamp: Timestamp) {
        writeVarint(timestamp.milliseconds)
    }

    mutating func writeVarint(_ term: Term) { writeVarint(term.rawValue) }
    mutating func writeVarint(_ epoch: Epoch) { writeVarint(epoch.rawValue) }
    mutating func writeVarint(_ version: SessionVersion) { writeVarint(version.rawValue) }
}

extension BinaryReader {
    mutating func readTerm(_ field: StaticString) throws(WireError) -> Term { Term(rawValue: try readVarint(field)) }
    mutating func readEpoch(_ field: StaticString) throws(WireError) -> Epoch { Epoch(rawValue: try readVarint(field)) }
    mutating func readVersion(_ field: StaticString) throws(WireError) -> SessionVersion {
        SessionVersion(rawValue: try readVarint(field))
    }
}

// MARK: - Identity

extension NodeID: WireCodable {
    static var minimumEncodedBytes: Int { 1 }
    func write(to writer: inout BinaryWriter) { writer.writeString(rawValue) }
    init(reading reader: inout BinaryReader) throws(WireError) { self.init(try reader.readString("nodeID")) }
}

extension RequestID: WireCodable {
    static var minimumEncodedBytes: Int { 1 }
    func write(to writer: inout BinaryWriter) { writer.writeVarint(rawValue) }
    init(reading reader: inout BinaryReader) throws(WireError) { self.init(try reader.readVarint("requestID")) }
}

extension SessionID: WireCodable {
    static var minimumEncodedBytes: Int { SessionID.byteCount }
    func write(to writer: inout BinaryWriter) { writer.writeSessionID(self) }
    init(reading reader: inout BinaryReader) throws(WireError) { self = try reader.readSessionID("sessionID") }
}

extension Member: WireCodable {
    static var minimumEncodedBytes: Int { 4 }
    func write(to writer: inout BinaryWriter) {
        writer.write(id)
        writer.writeString(address.host)
        writer.writeVarint(address.port)
        writer.writeVarint(incarnation)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        let id = try reader.read(NodeID.self)
        let host = try reader.readString("member.address.host")
        let port = try reader.readInt("member.address.port")
        let incarnation = try reader.readVarint("member.incarnation")
        self.init(id: id, address: PeerAddress(host: host, port: port), incarnation: incarnation)
    }
}

extension WriteConcern: WireCodable {
    static var minimumEncodedBytes: Int { 1 }
    func write(to writer: inout BinaryWriter) {
        switch self {
        case .local: writer.writeByte(0)
        case .replicated(let count):
            writer.writeByte(1)
            writer.writeVarint(count)
        }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        switch try reader.readByte("writeConcern") {
        case 0: self = .local
        case 1: self = .replicated(try reader.readInt("writeConcern.replicated"))
        case let tag: throw BinaryReader.fail("writeConcern", "unknown case \(tag)")
        }
    }
}

// MARK: - Sessions

extension AttributeValue: WireCodable {
    static var minimumEncodedBytes: Int { 2 }
    func write(to writer: inout BinaryWriter) {
        writer.writeByte(encoding.rawValue)
        writer.writeBytes(bytes)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        let encoding = AttributeEncoding(rawValue: try reader.readByte("attributeValue.encoding"))
        self.init(encoding: encoding, bytes: try reader.readBytes("attributeValue.bytes"))
    }
}

extension AttributeChange: WireCodable {
    static var minimumEncodedBytes: Int { 3 }
    func write(to writer: inout BinaryWriter) {
        writer.writeString(name)
        writer.writeVarint(stamp)
        writer.writeOptional(value)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        let name = try reader.readString("attributeChange.name")
        let stamp = try reader.readVersion("attributeChange.stamp")
        let value = try reader.readOptional("attributeChange.value", of: AttributeValue.self)
        self.init(name: name, stamp: stamp, value: value)
    }
}

extension SessionMetadata: WireCodable {
    static var minimumEncodedBytes: Int { 5 }
    func write(to writer: inout BinaryWriter) {
        writer.writeTimestamp(createdAt)
        writer.writeVarint(maxInactiveMilliseconds)
        writer.writeOptional(absoluteDeadline) { writer, deadline in writer.writeTimestamp(deadline) }
        writer.writeOptional(principal) { writer, principal in writer.writeString(principal) }
        writer.writeVarint(stamp)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        let createdAt = try reader.readTimestamp("metadata.createdAt")
        let maxInactive = try reader.readSignedVarint("metadata.maxInactiveMilliseconds")
        let deadline = try reader.readOptional("metadata.absoluteDeadline") { reader throws(WireError) in
            try reader.readTimestamp("metadata.absoluteDeadline")
        }
        let principal = try reader.readOptional("metadata.principal") { reader throws(WireError) in
            try reader.readString("metadata.principal")
        }
        let stamp = try reader.readVersion("metadata.stamp")
        self.init(
            createdAt: createdAt, maxInactiveMilliseconds: maxInactive, absoluteDeadline: deadline,
            principal: principal, stamp: stamp
        )
    }
}

extension InvalidationReason: WireCodable {
    static var minimumEncodedBytes: Int { 1 }
    func write(to writer: inout BinaryWriter) {
        switch self {
        case .invalidated: writer.writeByte(0)
        case .expired: writer.writeByte(1)
        case .rotated(let newID):
            writer.writeByte(2)
            writer.writeSessionID(newID)
        }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        switch try reader.readByte("invalidationReason") {
        case 0: self = .invalidated
        case 1: self = .expired
        case 2: self = .rotated(to: try reader.readSessionID("invalidationReason.rotated"))
        case let tag: throw BinaryReader.fail("invalidationReason", "unknown case \(tag)")
        }
    }
}

extension SessionDelta: WireCodable {
    static var minimumEncodedBytes: Int { SessionID.byteCount + 7 }
    func write(to writer: inout BinaryWriter) {
        writer.writeSessionID(id)
        writer.writeByte(kind.rawValue)
        writer.writeVarint(version)
        writer.writeVarint(previousVersion)
        writer.writeTimestamp(lastAccessedAt)
        writer.writeOptional(metadata)
        // The same bytes as writeArray(attributes), read in place from the delta's buffer.
        writer.writeVarint(UInt64(attributeCount))
        forEachAttributeChange { name, stamp, value in
            writer.writeBytes(name)
            writer.writeVarint(stamp)
            guard let (encoding, bytes) = value else { return writer.writeByte(0) }
            writer.writeByte(1)
            writer.writeByte(encoding.rawValue)
            writer.writeBytes(bytes)
        }
        writer.writeOptional(invalidation)
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        let id = try reader.readSessionID("delta.id")
        let rawKind = try reader.readByte("delta.kind")
        guard let kind = Kind(rawValue: rawKind) else { throw BinaryReader.fail("delta.kind", "unknown kind \(rawKind)") }
        let version = try reader.readVersion("delta.version")
        let previousVersion = try reader.readVersion("delta.previousVersion")
        let lastAccessedAt = try reader.readTimestamp("delta.lastAccessedAt")
        let metadata = try reader.readOptional("delta.metadata", of: SessionMetadata.self)
        // Snapshots only: they fill empty replicas (state transfer), where the buffer is
        // kept as it is; an update delta is merged value by value anyway.
        if kind == .snapshot, let packed = Self.packedValues(&reader) {
            let invalidation = try reader.readOptional("delta.invalidation", of: InvalidationReason.self)
            self.init(
                id: id, kind: kind, version: version, previousVersion: previousVersion, lastAccessedAt: lastAccessedAt,
                metadata: metadata, attributes: packed, invalidation: invalidation)
            return
        }
        let attributes = try reader.readArray("delta.attributes", of: AttributeChange.self)
        let invalidation = try reader.readOptional("delta.invalidation", of: InvalidationReason.self)
        self.init(
            id: id, kind: kind, version: version, previousVersion: previousVersion, lastAccessedAt: lastAccessedAt,
            metadata: metadata, attributes: attributes, invalidation: invalidation
        )
    }

    /// Reads attribute changes that all set a value straight into one packed buffer of
    /// exact size (a first pass sizes it): no allocation per attribute, and the joining
    /// store keeps the buffer as it is. Nil, with `reader` untouched, when a change is a
    /// removal or anything is malformed: the general path then reads (or refuses) them.
    private static func packedValues(_ reader: inout BinaryReader) -> AttributeChangesBuilder? {
        func scan(_ reader: inout BinaryReader, into builder: inout AttributeChangesBuilder?) throws(WireError) -> Int? {
            let count = try reader.readVarint("delta.attributes")
            guard count <= UInt64(reader.remaining / AttributeChange.minimumEncodedBytes) else { return nil }
            var byteCount = 0
            for _ in 0..<count {
                let name = try reader.readByteSlice("attributeChange.name")
                // Names are nearly always ASCII: check that without building a String.
                guard name.allSatisfy({ $0 < 0x80 }) || String(validating: name, as: UTF8.self) != nil else { return nil }
                let stamp = try reader.readVersion("attributeChange.stamp")
                guard try reader.readByte("attributeChange.value") == 1 else { return nil }
                let encoding = AttributeEncoding(rawValue: try reader.readByte("attributeValue.encoding"))
                let value = try reader.readByteSlice("attributeValue.bytes")
                byteCount += AttributeChangesBuilder.byteCount(nameCount: name.count, valueCount: value.count)
                builder?.append(name: name, stamp: stamp, encoding: encoding, value: value)
            }
            return byteCount
        }
        var sizing = reader
        var none: AttributeChangesBuilder?
        guard let byteCount = try? scan(&sizing, into: &none) else { return nil }
        var builder: AttributeChangesBuilder? = AttributeChangesBuilder(byteCount: byteCount)
        _ = try? scan(&reader, into: &builder)
        return builder
    }
}

/// Dictionary and set entries are written sorted by name, so one value has one encoding
/// (the golden frames depend on it); a repeated name on decoding is malformed.
extension SessionChanges: WireCodable {
    static var minimumEncodedBytes: Int { 4 }
    func write(to writer: inout BinaryWriter) {
        let writeEntry = { (writer: inout BinaryWriter, entry: (key: String, value: AttributeValue)) in
            writer.writeString(entry.key)
            writer.write(entry.value)
        }
        // Names go in order, so equal changes encode equally; one name (the usual update)
        // is in order already, without a sorted copy.
        if updated.count <= 1 {
            writer.writeArray(updated, writeEntry)
        } else {
            writer.writeArray(updated.sorted { $0.key < $1.key }, writeEntry)
        }
        writer.writeArray(removed.sorted()) { writer, name in writer.writeString(name) }
        writer.writeOptional(maxInactiveMilliseconds) { writer, milliseconds in writer.writeVarint(milliseconds) }
        switch principal {
        case .none: writer.writeByte(0)
        case .some(.none): writer.writeByte(1)
        case .some(.some(let name)):
            writer.writeByte(2)
            writer.writeString(name)
        }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        let updatedEntries = try reader.readArray("changes.updated", minimumElementBytes: 3) { reader throws(WireError) in
            (try reader.readString("changes.updated.name"), try reader.read(AttributeValue.self))
        }
        var updated: [String: AttributeValue] = [:]
        updated.reserveCapacity(updatedEntries.count)
        for (name, value) in updatedEntries {
            guard updated.updateValue(value, forKey: name) == nil else {
                throw BinaryReader.fail("changes.updated.name", "repeated name")
            }
        }
        let removedNames = try reader.readArray("changes.removed", minimumElementBytes: 1) { reader throws(WireError) in
            try reader.readString("changes.removed.name")
        }
        var removed = Set<String>(minimumCapacity: removedNames.count)
        for name in removedNames {
            guard removed.insert(name).inserted else { throw BinaryReader.fail("changes.removed.name", "repeated name") }
        }
        let maxInactive = try reader.readOptional("changes.maxInactiveMilliseconds") { reader throws(WireError) in
            try reader.readSignedVarint("changes.maxInactiveMilliseconds")
        }
        let principal: String??
        switch try reader.readByte("changes.principal") {
        case 0: principal = .none
        case 1: principal = .some(.none)
        case 2: principal = .some(try reader.readString("changes.principal"))
        case let tag: throw BinaryReader.fail("changes.principal", "unknown case \(tag)")
        }
        self.init(updated: updated, removed: removed, maxInactiveMilliseconds: maxInactive, principal: principal)
    }
}

// MARK: - Failures

extension SessionStoreError: WireCodable {
    static var minimumEncodedBytes: Int { 2 }
    func write(to writer: inout BinaryWriter) {
        switch self {
        case .attributeTooLarge(let name, let bytes, let limit):
            writer.writeByte(0)
            writer.writeString(name)
            writer.writeVarint(bytes)
            writer.writeVarint(limit)
        case .sessionTooLarge(let bytes, let limit):
            writer.writeByte(1)
            writer.writeVarint(bytes)
            writer.writeVarint(limit)
        case .tooManyAttributes(let count, let limit):
            writer.writeByte(2)
            writer.writeVarint(count)
            writer.writeVarint(limit)
        case .tooManySessions(let limit):
            writer.writeByte(3)
            writer.writeVarint(limit)
        case .sessionNotFound(let id):
            writer.writeByte(4)
            writer.writeSessionID(id)
        case .sessionEnded(let id, let reason):
            writer.writeByte(5)
            writer.writeSessionID(id)
            writer.write(reason)
        case .duplicateID(let id):
            writer.writeByte(6)
            writer.writeSessionID(id)
        case .storeFull(let bytes, let limit):
            writer.writeByte(7)
            writer.writeVarint(bytes)
            writer.writeVarint(limit)
        }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        switch try reader.readByte("storeError") {
        case 0:
            self = .attributeTooLarge(
                name: try reader.readString("storeError.attributeTooLarge.name"),
                bytes: try reader.readInt("storeError.attributeTooLarge.bytes"),
                limit: try reader.readInt("storeError.attributeTooLarge.limit"))
        case 1:
            self = .sessionTooLarge(
                bytes: try reader.readInt("storeError.sessionTooLarge.bytes"),
                limit: try reader.readInt("storeError.sessionTooLarge.limit"))
        case 2:
            self = .tooManyAttributes(
                count: try reader.readInt("storeError.tooManyAttributes.count"),
                limit: try reader.readInt("storeError.tooManyAttributes.limit"))
        case 3: self = .tooManySessions(limit: try reader.readInt("storeError.tooManySessions.limit"))
        case 4: self = .sessionNotFound(try reader.readSessionID("storeError.sessionNotFound"))
        case 5: self = .sessionEnded(try reader.readSessionID("storeError.sessionEnded.id"), try reader.read(InvalidationReason.self))
        case 6: self = .duplicateID(try reader.readSessionID("storeError.duplicateID"))
        case 7:
            self = .storeFull(
                bytes: try reader.readInt("storeError.storeFull.bytes"), limit: try reader.readInt("storeError.storeFull.limit"))
        case let tag: throw BinaryReader.fail("storeError", "unknown case \(tag)")
        }
    }
}

extension ClusterFailure: WireCodable {
    static var minimumEncodedBytes: Int { 1 }
    func write(to writer: inout BinaryWriter) {
        switch self {
        case .store(let error):
            writer.writeByte(0)
            writer.write(error)
        case .notInMajority: writer.writeByte(1)
        case .replicationTimeout: writer.writeByte(2)
        case .ownerUnreachable: writer.writeByte(3)
        case .retry: writer.writeByte(4)
        case .deadlineExceeded: writer.writeByte(5)
        }
    }
    init(reading reader: inout BinaryReader) throws(WireError) {
        switch try reader.readByte("clusterFailure") {
        case 0: self = .store(try reader.read(SessionStoreError.self))
        case 1: self = .notInMajority
        case 2: self = .replicationTimeout
        case 3: self = .ownerUnreachable
        case 4: self = .retry
        case 5: self = .deadlineExceeded
        case let tag: throw BinaryReader.fail("clusterFailure", "unknown case \(tag)")
        }
    }
}
