/// A session as the application sees it: a snapshot loaded from the store, with the
/// changes the application made since it was loaded.
///
/// Mutations are recorded per attribute, so saving hands the store only what changed:
/// two requests that load the same session and change different attributes both survive,
/// and a save that changed nothing writes nothing.
///
/// ```swift
/// var session = try await cluster.create()
/// try session.set("cart", cart)
/// try await cluster.save(session)
/// ```
public struct Session: Sendable {
    /// The session's id.
    public let id: SessionID
    /// The version this snapshot was loaded at. Versions only grow.
    public let version: SessionVersion
    /// When the session was created.
    public let createdAt: Timestamp
    /// When the session was last used, as of this snapshot.
    public let lastAccessedAt: Timestamp
    /// The absolute deadline, if the session has one: it expires then however active it is.
    public let absoluteDeadline: Timestamp?
    /// The idle timeout in milliseconds (``maxInactive`` for applications).
    package private(set) var maxInactiveMilliseconds: Int64

    /// The idle timeout: the session expires this long after its last use.
    public var maxInactive: Duration { .milliseconds(maxInactiveMilliseconds) }
    /// The signed-in user's name, indexed so that all of a user's sessions can be found.
    public private(set) var principal: String?
    /// The attributes as loaded, shared copy-on-write with the store's copy.
    let stored: PackedAttributes
    /// What changed since the snapshot was loaded.
    public private(set) var changes: SessionChanges

    /// The attributes, with this snapshot's changes applied.
    ///
    /// Builds a dictionary on each call; to read one attribute, use the subscript.
    public var attributes: [String: AttributeValue] {
        var result = stored.dictionary()
        for name in changes.removed { result.removeValue(forKey: name) }
        result.merge(changes.updated) { _, updated in updated }
        return result
    }

    /// Creates a snapshot. The store makes these; applications get them from it.
    package init(
        id: SessionID,
        version: SessionVersion,
        createdAt: Timestamp,
        lastAccessedAt: Timestamp,
        maxInactiveMilliseconds: Int64,
        absoluteDeadline: Timestamp? = nil,
        principal: String? = nil,
        attributes: [String: AttributeValue] = [:]
    ) {
        self.init(
            id: id, version: version, createdAt: createdAt, lastAccessedAt: lastAccessedAt,
            maxInactiveMilliseconds: maxInactiveMilliseconds, absoluteDeadline: absoluteDeadline, principal: principal,
            stored: PackedAttributes(attributes, stamp: 0))
    }

    init(
        id: SessionID, version: SessionVersion, createdAt: Timestamp, lastAccessedAt: Timestamp, maxInactiveMilliseconds: Int64,
        absoluteDeadline: Timestamp?, principal: String?, stored: PackedAttributes
    ) {
        self.id = id
        self.version = version
        self.createdAt = createdAt
        self.lastAccessedAt = lastAccessedAt
        self.maxInactiveMilliseconds = maxInactiveMilliseconds
        self.absoluteDeadline = absoluteDeadline
        self.principal = principal
        self.stored = stored
        self.changes = SessionChanges()
    }

    /// True when saving would change the stored session.
    public var hasChanges: Bool { !changes.isEmpty }

    /// The value of the attribute `name`, if set.
    public subscript(name: String) -> AttributeValue? {
        if let updated = changes.updated[name] { return updated }
        if changes.removed.contains(name) { return nil }
        return stored.value(of: name)
    }

    /// Sets an attribute. Setting the value it already has records nothing.
    public mutating func setAttribute(_ name: String, _ value: AttributeValue) {
        if let updated = changes.updated[name] {
            guard updated != value else { return }
        } else if !changes.removed.contains(name), stored.holds(name, value) {
            return
        }
        changes.removed.remove(name)
        changes.updated[name] = value
    }

    /// Removes an attribute. Removing one that is not there records nothing.
    public mutating func removeAttribute(_ name: String) {
        if changes.updated.removeValue(forKey: name) == nil {
            guard !changes.removed.contains(name), stored.contains(name) else { return }
        }
        changes.removed.insert(name)
    }

    /// Encodes `value` with `serializer` and sets it as the attribute `name`.
    public mutating func set<Value: Encodable>(
        _ name: String, _ value: Value, using serializer: some SessionSerializer = JSONSessionSerializer()
    ) throws {
        setAttribute(name, AttributeValue(encoding: serializer.encoding, bytes: try serializer.encode(value)))
    }

    /// Decodes the attribute `name` as `type`; nil when it is not set.
    ///
    /// Throws ``AttributeDecodingError`` when the stored value has another encoding or does
    /// not decode (a rolling deploy changed its type): callers drop the attribute rather
    /// than fail the request.
    public func get<Value: Decodable>(
        _ name: String, as type: Value.Type, using serializer: some SessionSerializer = JSONSessionSerializer()
    ) throws(AttributeDecodingError) -> Value? {
        guard let stored = self[name] else { return nil }
        guard stored.encoding == serializer.encoding else {
            throw AttributeDecodingError(name: name, storedEncoding: stored.encoding, expectedEncoding: serializer.encoding)
        }
        do {
            return try serializer.decode(type, from: stored.bytes)
        } catch {
            throw AttributeDecodingError(
                name: name, storedEncoding: stored.encoding, expectedEncoding: serializer.encoding,
                underlying: String(describing: error))
        }
    }

    /// Changes the idle timeout (whole milliseconds count; zero or less never expires).
    public mutating func setMaxInactive(_ timeout: Duration) {
        setMaxInactive(milliseconds: timeout.wholeMilliseconds)
    }

    /// ``setMaxInactive(_:)`` in milliseconds, for the modules that keep time as such.
    package mutating func setMaxInactive(milliseconds: Int64) {
        guard milliseconds != maxInactiveMilliseconds else { return }
        maxInactiveMilliseconds = milliseconds
        changes.maxInactiveMilliseconds = milliseconds
    }

    /// Signs a user in (or out, with nil): the principal is indexed across the cluster.
    public mutating func setPrincipal(_ principal: String?) {
        guard principal != self.principal else { return }
        self.principal = principal
        changes.principal = .some(principal)
    }

    /// When the session expires unless it is used again first: the earlier of its idle
    /// deadline (``lastAccessedAt`` plus ``maxInactive``) and ``absoluteDeadline``; nil when
    /// it has neither.
    public var expiresAt: Timestamp? {
        SessionExpiry.deadline(
            lastAccessedAt: lastAccessedAt, maxInactiveMilliseconds: maxInactiveMilliseconds,
            absoluteDeadline: absoluteDeadline)
    }

    /// True when the session has expired at `now` (a wall-clock instant, e.g. from
    /// ``Timestamp/init(_:)``), by idle or absolute timeout: when `now` has reached
    /// ``expiresAt``.
    public func isExpired(at now: Timestamp) -> Bool {
        SessionExpiry.isExpired(
            lastAccessedAt: lastAccessedAt, maxInactiveMilliseconds: maxInactiveMilliseconds,
            absoluteDeadline: absoluteDeadline, now: now)
    }
}

/// The changes an application made to a session: what a save sends to the store, and what
/// a node that does not own the session forwards to its owner.
public struct SessionChanges: Hashable, Sendable {
    /// Attributes set (added or changed), by name.
    public var updated: [String: AttributeValue]
    /// Attributes removed.
    public var removed: Set<String>
    /// A new idle timeout in milliseconds, if it changed (``maxInactive`` for applications).
    package var maxInactiveMilliseconds: Int64?
    /// A new idle timeout, if it changed.
    public var maxInactive: Duration? {
        get { maxInactiveMilliseconds.map { .milliseconds($0) } }
        set { maxInactiveMilliseconds = newValue?.wholeMilliseconds }
    }
    /// A new principal, if it changed (`.some(nil)` signs the user out).
    public var principal: String??

    /// No changes, or the ones given.
    public init(
        updated: [String: AttributeValue] = [:], removed: Set<String> = [], maxInactive: Duration? = nil,
        principal: String?? = nil
    ) {
        self.init(updated: updated, removed: removed, maxInactiveMilliseconds: maxInactive?.wholeMilliseconds, principal: principal)
    }

    /// ``init(updated:removed:maxInactive:principal:)`` in milliseconds, for the wire and the core.
    package init(updated: [String: AttributeValue], removed: Set<String>, maxInactiveMilliseconds: Int64?, principal: String??) {
        self.updated = updated
        self.removed = removed
        self.maxInactiveMilliseconds = maxInactiveMilliseconds
        self.principal = principal
    }

    /// True when there is nothing to save.
    public var isEmpty: Bool {
        updated.isEmpty && removed.isEmpty && maxInactiveMilliseconds == nil && principal == nil
    }
}

/// The one expiry rule, for application snapshots and the store's entries alike.
enum SessionExpiry {
    /// The earlier of the idle deadline (`lastAccessedAt` plus a positive idle timeout) and
    /// `absoluteDeadline`; nil when there is neither. An idle timeout too long to add to the
    /// last access is no deadline at all.
    static func deadline(lastAccessedAt: Timestamp, maxInactiveMilliseconds: Int64, absoluteDeadline: Timestamp?) -> Timestamp? {
        let (end, overflow) = lastAccessedAt.milliseconds.addingReportingOverflow(maxInactiveMilliseconds)
        guard maxInactiveMilliseconds > 0, !overflow else { return absoluteDeadline }
        return min(Timestamp(milliseconds: end), absoluteDeadline ?? Timestamp(milliseconds: .max))
    }

    /// True once `now` has reached the ``deadline(lastAccessedAt:maxInactiveMilliseconds:absoluteDeadline:)``.
    static func isExpired(
        lastAccessedAt: Timestamp, maxInactiveMilliseconds: Int64, absoluteDeadline: Timestamp?, now: Timestamp
    ) -> Bool {
        guard let deadline = deadline(
            lastAccessedAt: lastAccessedAt, maxInactiveMilliseconds: maxInactiveMilliseconds, absoluteDeadline: absoluteDeadline)
        else { return false }
        return now >= deadline
    }
}
