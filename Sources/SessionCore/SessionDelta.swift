/// What one session's replicas need to catch up with its owner: the attributes that
/// changed since the last flush, coalesced, each stamped with the version that wrote it.
///
/// Applying a delta is idempotent and commutative per attribute: an attribute applies only
/// when its stamp is newer than the replica's, so a duplicated or stale delta changes
/// nothing and two deltas touching different attributes both apply, in any order.
///
/// A snapshot taken from the store carries its attribute values in the store's packed
/// buffer (shared, not copied) until someone reads ``attributes``; wire codecs read and
/// build that form in place through ``forEachAttributeChange(_:)`` and
/// ``AttributeChangesBuilder``, so a state transfer does not allocate per attribute.
package struct SessionDelta: Hashable, Sendable {
    /// What the delta carries.
    package enum Kind: UInt8, Hashable, Sendable, CaseIterable {
        /// Attribute or metadata changes.
        case update = 0
        /// Only a newer last-access time: travels lazily, never bumps the version.
        case touch = 1
        /// The session ended; replicas keep a tombstone so that no late delta revives it.
        case invalidate = 2
        /// The whole session (state transfer, read replies, repair of a gap).
        case snapshot = 3
    }

    /// The session.
    package var id: SessionID
    /// What the delta carries.
    package var kind: Kind
    /// The owner's session version after this delta.
    package var version: SessionVersion
    /// The version the previous delta to the same replicas ended at. A replica behind it
    /// missed a delta and asks for a snapshot.
    package var previousVersion: SessionVersion
    /// The newest last-access time the owner knows.
    package var lastAccessedAt: Timestamp
    /// Present when the session was created, its metadata changed, and in snapshots.
    package var metadata: SessionMetadata?
    /// Changed attributes; in a snapshot, every attribute and recent removal.
    package var attributes: [AttributeChange] {
        get {
            guard packedValues.count > 0 else { return otherChanges }
            var changes = [AttributeChange]()
            changes.reserveCapacity(attributeCount)
            packedValues.forEach { record, buffer in
                changes.append(AttributeChange(name: record.name(in: buffer), stamp: record.stamp(in: buffer), value: record.value(in: buffer)))
            }
            return changes + otherChanges
        }
        set {
            packedValues = PackedAttributes()
            otherChanges = newValue
        }
    }
    /// Attribute values carried packed, ahead of ``otherChanges`` in ``attributes``.
    var packedValues = PackedAttributes()
    /// The changes not in ``packedValues``: all of them, or a snapshot's removals.
    var otherChanges: [AttributeChange]
    /// Why the session ended, for ``Kind/invalidate``.
    package var invalidation: InvalidationReason?

    /// Creates a delta.
    package init(
        id: SessionID, kind: Kind, version: SessionVersion, previousVersion: SessionVersion, lastAccessedAt: Timestamp,
        metadata: SessionMetadata? = nil, attributes: [AttributeChange] = [], invalidation: InvalidationReason? = nil
    ) {
        self.id = id
        self.kind = kind
        self.version = version
        self.previousVersion = previousVersion
        self.lastAccessedAt = lastAccessedAt
        self.metadata = metadata
        self.otherChanges = attributes
        self.invalidation = invalidation
    }

    /// Creates a delta whose attribute changes were built in place (a wire decoder's path).
    package init(
        id: SessionID, kind: Kind, version: SessionVersion, previousVersion: SessionVersion, lastAccessedAt: Timestamp,
        metadata: SessionMetadata? = nil, attributes: AttributeChangesBuilder, invalidation: InvalidationReason? = nil
    ) {
        self.init(
            id: id, kind: kind, version: version, previousVersion: previousVersion, lastAccessedAt: lastAccessedAt,
            metadata: metadata, invalidation: invalidation)
        packedValues = attributes.packed
    }

    /// The bytes of attribute names and values carried, a measure for batching.
    package var payloadByteCount: Int {
        otherChanges.reduce(packedValues.payloadByteCount) { $0 + $1.name.utf8.count + ($1.value?.bytes.count ?? 0) }
    }

    /// The number of attribute changes, without building them.
    package var attributeCount: Int { packedValues.count + otherChanges.count }

    /// The project's one size estimate of encoded deltas, before compression: payload plus
    /// the fixed fields of each delta and change. Send queues, batch thresholds and frame
    /// buffers are sized with it before (or without) encoding; the simulator measures with
    /// the encoder itself.
    package static func estimatedBytes(of deltas: [SessionDelta]) -> Int {
        let totals = totals(of: deltas)
        return 48 * deltas.count + totals.payloadBytes + 10 * totals.attributes
    }

    /// ``estimatedBytes(of:)`` of this delta alone.
    package var estimatedBytes: Int { payloadByteCount + 48 + attributeCount * 10 }

    /// ``payloadByteCount`` and ``attributeCount`` summed over `deltas`, read where they
    /// are: a caller in another module copies each delta (a retain per reference it holds)
    /// to call the getters, and send queues ask this for every batch.
    package static func totals(of deltas: [SessionDelta]) -> (payloadBytes: Int, attributes: Int) {
        var bytes = 0
        var attributes = 0
        for index in deltas.indices {
            bytes += deltas[index].packedValues.payloadByteCount
            for change in deltas[index].otherChanges { bytes += change.name.utf8.count + (change.value?.bytes.count ?? 0) }
            attributes += deltas[index].packedValues.count + deltas[index].otherChanges.count
        }
        return (bytes, attributes)
    }

    /// Calls `body` with each attribute change, in the order of ``attributes``: the name's
    /// UTF-8 bytes, the stamp, and the encoding and bytes of the value (nil for a removal).
    /// The buffers are valid only during the call; nothing is copied out.
    package func forEachAttributeChange(
        _ body: (_ name: UnsafeRawBufferPointer, _ stamp: SessionVersion, _ value: (AttributeEncoding, UnsafeRawBufferPointer)?) -> Void
    ) {
        packedValues.forEach { record, buffer in
            let raw = UnsafeRawBufferPointer(buffer)
            body(
                UnsafeRawBufferPointer(rebasing: raw[record.nameStart..<record.valueStart]), record.stamp(in: buffer),
                (record.encoding(in: buffer), UnsafeRawBufferPointer(rebasing: raw[record.valueStart..<record.end])))
        }
        for change in otherChanges {
            var name = change.name
            name.withUTF8 { name in
                guard let value = change.value else { return body(UnsafeRawBufferPointer(name), change.stamp, nil) }
                value.bytes.withUnsafeBytes { bytes in body(UnsafeRawBufferPointer(name), change.stamp, (value.encoding, bytes)) }
            }
        }
    }

    package static func == (lhs: SessionDelta, rhs: SessionDelta) -> Bool {
        lhs.id == rhs.id && lhs.kind == rhs.kind && lhs.version == rhs.version && lhs.previousVersion == rhs.previousVersion
            && lhs.lastAccessedAt == rhs.lastAccessedAt && lhs.metadata == rhs.metadata && lhs.invalidation == rhs.invalidation
            && lhs.attributes == rhs.attributes
    }

    package func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(version)
        hasher.combine(attributes)
    }
}

/// Attribute values set (not removals) appended one by one into a delta's packed form:
/// for wire decoders, which know each change's size before they copy it, so the buffer
/// is allocated once at its exact size.
package struct AttributeChangesBuilder {
    var packed: PackedAttributes

    /// The bytes one change takes in the buffer.
    package static func byteCount(nameCount: Int, valueCount: Int) -> Int {
        PackedAttributes.recordByteCount(nameCount: nameCount, valueCount: valueCount)
    }

    /// An empty builder for changes taking `byteCount` bytes in all (sum of ``byteCount(nameCount:valueCount:)``).
    package init(byteCount: Int) {
        packed = PackedAttributes(reservingCapacity: byteCount)
    }

    /// Appends a change that sets the attribute `name` (UTF-8, already validated).
    package mutating func append(name: UnsafeRawBufferPointer, stamp: SessionVersion, encoding: AttributeEncoding, value: UnsafeRawBufferPointer) {
        packed.append(name: name, stamp: stamp, encoding: encoding, value: value)
    }
}

/// A session's metadata: what does not change per request.
extension SessionMetadata {
    /// The principal of the cluster's own principal index records (SessionCluster's
    /// `PrincipalIndex`): no application can sign a user in by this name, and the owner
    /// announces no event for a session created with it.
    package static let indexRecordPrincipal = "\u{0}principal-index"
}

package struct SessionMetadata: Hashable, Sendable {
    /// When the session was created.
    package var createdAt: Timestamp
    /// The idle timeout in milliseconds (0: never idles out).
    package var maxInactiveMilliseconds: Int64
    /// The absolute deadline, if any.
    package var absoluteDeadline: Timestamp?
    /// The signed-in user's name, if any.
    package var principal: String?
    /// The version that last wrote the metadata.
    package var stamp: SessionVersion

    /// Creates metadata.
    package init(
        createdAt: Timestamp, maxInactiveMilliseconds: Int64, absoluteDeadline: Timestamp? = nil,
        principal: String? = nil, stamp: SessionVersion
    ) {
        self.createdAt = createdAt
        self.maxInactiveMilliseconds = maxInactiveMilliseconds
        self.absoluteDeadline = absoluteDeadline
        self.principal = principal
        self.stamp = stamp
    }
}

/// One attribute in a delta: set to a value, or removed (nil), at version `stamp`.
package struct AttributeChange: Hashable, Sendable {
    /// The attribute's name.
    package var name: String
    /// The version that wrote this change.
    package var stamp: SessionVersion
    /// The new value; nil when the attribute was removed.
    package var value: AttributeValue?

    /// Creates a change.
    package init(name: String, stamp: SessionVersion, value: AttributeValue?) {
        self.name = name
        self.stamp = stamp
        self.value = value
    }
}

/// Why a session ended.
public enum InvalidationReason: Hashable, Sendable {
    /// The application invalidated it (logout).
    case invalidated
    /// Its idle or absolute timeout passed on the owner's clock.
    case expired
    /// Its id was rotated; the attributes live on under the new id.
    case rotated(to: SessionID)
}

/// Something that happened to a session, reported once by the node that owns it.
public enum SessionEvent: Hashable, Sendable {
    /// A session was created.
    case created(SessionID)
    /// A session expired.
    case expired(SessionID)
    /// A session was invalidated.
    case invalidated(SessionID)
    /// A session's id was rotated from the first id to the second.
    case idRotated(from: SessionID, to: SessionID)

    /// The session the event is about (for rotation, the new id).
    public var id: SessionID {
        switch self {
        case .created(let id), .expired(let id), .invalidated(let id): id
        case .idRotated(_, let to): to
        }
    }
}
