/// What one session's replicas need to catch up with its owner: the attributes that
/// changed since the last flush, coalesced, each stamped with the version that wrote it.
///
/// Applying a delta is idempotent and commutative per attribute: an attribute applies only
/// when its stamp is newer than the replica's, so a duplicated or stale delta changes
/// nothing and two deltas touching different attributes both apply, in any order.
public struct SessionDelta: Hashable, Sendable {
    /// What the delta carries.
    public enum Kind: UInt8, Hashable, Sendable, CaseIterable {
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
    public var id: SessionID
    /// What the delta carries.
    public var kind: Kind
    /// The owner's session version after this delta.
    public var version: UInt64
    /// The version the previous delta to the same replicas ended at. A replica behind it
    /// missed a delta and asks for a snapshot.
    public var previousVersion: UInt64
    /// The newest last-access time the owner knows.
    public var lastAccessedAt: Timestamp
    /// Present when the session was created, its metadata changed, and in snapshots.
    public var metadata: SessionMetadata?
    /// Changed attributes; in a snapshot, every attribute and recent removal.
    public var attributes: [AttributeChange]
    /// Why the session ended, for ``Kind/invalidate``.
    public var invalidation: InvalidationReason?

    /// Creates a delta.
    public init(
        id: SessionID, kind: Kind, version: UInt64, previousVersion: UInt64, lastAccessedAt: Timestamp,
        metadata: SessionMetadata? = nil, attributes: [AttributeChange] = [], invalidation: InvalidationReason? = nil
    ) {
        self.id = id
        self.kind = kind
        self.version = version
        self.previousVersion = previousVersion
        self.lastAccessedAt = lastAccessedAt
        self.metadata = metadata
        self.attributes = attributes
        self.invalidation = invalidation
    }

    /// The bytes of attribute names and values carried, a measure for batching.
    public var payloadByteCount: Int {
        attributes.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.bytes.count ?? 0) }
    }
}

/// A session's metadata: what does not change per request.
public struct SessionMetadata: Hashable, Sendable {
    /// When the session was created.
    public var createdAt: Timestamp
    /// The idle timeout in milliseconds (0: never idles out).
    public var maxInactiveMilliseconds: Int64
    /// The absolute deadline, if any.
    public var absoluteDeadline: Timestamp?
    /// The signed-in user's name, if any.
    public var principal: String?
    /// The version that last wrote the metadata.
    public var stamp: UInt64

    /// Creates metadata.
    public init(
        createdAt: Timestamp, maxInactiveMilliseconds: Int64, absoluteDeadline: Timestamp? = nil,
        principal: String? = nil, stamp: UInt64
    ) {
        self.createdAt = createdAt
        self.maxInactiveMilliseconds = maxInactiveMilliseconds
        self.absoluteDeadline = absoluteDeadline
        self.principal = principal
        self.stamp = stamp
    }
}

/// One attribute in a delta: set to a value, or removed (nil), at version `stamp`.
public struct AttributeChange: Hashable, Sendable {
    /// The attribute's name.
    public var name: String
    /// The version that wrote this change.
    public var stamp: UInt64
    /// The new value; nil when the attribute was removed.
    public var value: AttributeValue?

    /// Creates a change.
    public init(name: String, stamp: UInt64, value: AttributeValue?) {
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
