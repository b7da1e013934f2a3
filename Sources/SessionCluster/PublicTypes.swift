import ClusterProtocol
import SessionCore

// The types an application names, from the modules below this one, so that
// `import SessionCluster` is the only import an app needs. Everything else in those
// modules is `package`: visible to this package's modules and tests, not to apps.

/// A session: id, version, timestamps, principal and attributes. See ``SessionCluster/load(_:touch:)``.
public typealias Session = SessionCore.Session
/// A session's version: grows by one with each write that changes the session.
public typealias SessionVersion = SessionCore.SessionVersion
/// A session's id: 144 random bits, written as 24 characters of URL-safe base64.
public typealias SessionID = SessionCore.SessionID
/// Why a string is not a session id.
public typealias SessionIDError = SessionCore.SessionIDError
/// The attributes set and removed, and the idle timeout or principal changed, by one write.
public typealias SessionChanges = SessionCore.SessionChanges
/// One attribute's bytes and how they were encoded.
public typealias AttributeValue = SessionCore.AttributeValue
/// How an attribute's bytes were encoded (JSON, binary, raw...).
public typealias AttributeEncoding = SessionCore.AttributeEncoding
/// An attribute's bytes do not decode as the asked type.
public typealias AttributeDecodingError = SessionCore.AttributeDecodingError
/// Turns attribute values into bytes and back; pluggable per cluster or per call.
public typealias SessionSerializer = SessionCore.SessionSerializer
/// The default serializer: JSON through `Codable`.
public typealias JSONSessionSerializer = SessionCore.JSONSessionSerializer
/// A compact binary serializer through `Codable`.
public typealias BinarySessionSerializer = SessionCore.BinarySessionSerializer
/// Why the store refused an operation (limits, unknown or ended sessions).
public typealias SessionStoreError = SessionCore.SessionStoreError
/// Size and count limits of sessions and attributes.
public typealias SessionLimits = SessionCore.SessionLimits
/// How each node's store is sized and when it drops things.
public typealias SessionStoreConfiguration = SessionCore.SessionStoreConfiguration
/// A session's life: created, invalidated, expired, rotated. See ``SessionCluster/events(bufferingNewest:)``.
public typealias SessionEvent = SessionCore.SessionEvent
/// Why a session ended.
public typealias InvalidationReason = SessionCore.InvalidationReason
/// A wall-clock instant in milliseconds since 1970, as sessions record it.
public typealias Timestamp = SessionCore.Timestamp
/// A node's name in the cluster.
public typealias NodeID = ClusterProtocol.NodeID
/// Where a node listens for peers (TCP and UDP on one port).
public typealias PeerAddress = ClusterProtocol.PeerAddress
/// How many copies must hold a write before it is acknowledged.
public typealias WriteConcern = ClusterProtocol.WriteConcern
/// A member of the cluster: id, address and incarnation (``ClusterStatus`` lists them).
public typealias Member = ClusterProtocol.Member
/// An election term (``ClusterStatus/term``).
public typealias Term = ClusterProtocol.Term
/// A view's number (``ClusterStatus/viewEpoch``).
public typealias Epoch = ClusterProtocol.Epoch
/// What a node knows about itself and the cluster. See ``SessionCluster/status()``.
public typealias ClusterStatus = ClusterProtocol.ClusterStatus
