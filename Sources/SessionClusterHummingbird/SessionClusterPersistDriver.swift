import Crypto
import Foundation
import Hummingbird
import SessionCluster
import SessionCore
import Synchronization

/// A Hummingbird `PersistDriver` backed by a ``SessionCluster``: hummingbird-auth's
/// `SessionMiddleware` and `SessionStorage` work on it unchanged, and their sessions are
/// replicated across the cluster.
///
/// ```swift
/// let cluster = try SessionCluster(configuration: configuration)
/// let persist = SessionClusterPersistDriver(cluster: cluster)
/// router.add(middleware: SessionMiddleware(storage: persist))
/// let app = Application(router: router, services: [cluster])
/// ```
///
/// Only changes travel. Each top-level key of the value's JSON is one session attribute,
/// and `set` compares the new value with the value this request loaded (`get` or
/// `getWithTTL` earlier in the same task, which is how hummingbird-auth's middleware calls
/// it): an unchanged value writes and sends nothing, a change to one field sends that field
/// only, and two concurrent requests that change different fields both keep their change.
///
/// What the `PersistDriver` interface cannot carry, and so this driver cannot guarantee:
/// - The request's identity: the driver recognises "the value this request loaded" by the
///   task that called `get`. A `set` in another task than its `get` (or without one)
///   compares with the stored value instead, and a concurrent change to a field this
///   request did not touch can then be overwritten with the value it read.
/// - Fields below the top level: two requests that change different members of one nested
///   object conflict, and the later save wins.
/// - Typed errors: hummingbird-auth's middleware turns every driver error into a 500. For
///   413 on a value over the limits and 503 with `Retry-After` when the cluster cannot
///   serve, use ``ClusterSessionMiddleware``, which also saves per attribute without these
///   caveats.
///
/// Keys map to session ids by SHA-256 (a cookie value cannot be crafted to reach another
/// key's session). Expiry is exact and absolute, as in Hummingbird's own drivers: the
/// session's idle timeout is set so that it ends at the requested instant, and reads do not
/// extend it. An ended session's id never comes back (the cluster keeps tombstones), so a
/// key removed or expired and then set again moves to the next of ``generations`` ids.
public struct SessionClusterPersistDriver: PersistDriver {
    /// The cluster the values live in.
    public let cluster: SessionCluster
    /// How many times one key can be removed (or expire) and be set again within the
    /// store's tombstone lifetime (10 minutes by default). Default 8.
    public let generations: Int
    /// What each request loaded, by task, until its `set`.
    let loaded = LoadedValues()

    /// Creates a driver over `cluster`. The cluster's lifecycle is the caller's (add it to
    /// the application's services).
    public init(cluster: SessionCluster, generations: Int = 8) {
        self.cluster = cluster
        self.generations = max(1, generations)
    }

    /// Stores `value` under a new key; throws `PersistError.duplicate` when the key holds a
    /// live value. With `expires`, the value ends that long from now.
    public func create<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        guard try await live(key) == nil else { throw PersistError.duplicate }
        let attributes = try JSONMembers.attributes(of: value)
        guard try await createFresh(key, attributes: attributes, expires: expires) else { throw PersistError.duplicate }
    }

    /// Stores `value` under `key`, sending only the top-level fields that changed. Without
    /// `expires`, an existing value keeps its expiry instant.
    public func set<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        let attributes = try JSONMembers.attributes(of: value)
        let base = loaded.take(key)
        // A concurrent create, or an expiry between the read and the write, sends us round again.
        for _ in 0..<3 {
            if let session = try await live(key) {
                do {
                    try await update(session, from: base?.id == session.id ? base?.attributes : nil, to: attributes, expires: expires)
                    return
                } catch SessionClusterError.refused(.sessionEnded), SessionClusterError.refused(.sessionNotFound) {
                    continue
                }
            }
            if try await createFresh(key, attributes: attributes, expires: expires) { return }
        }
        throw SessionClusterError.viewChanged
    }

    /// The value of `key`, or nil when there is none (or it expired). Throws
    /// `PersistError.invalidConversion` when it does not decode as `Object`.
    public func get<Object: Codable & Sendable>(key: String, as: Object.Type) async throws -> Object? {
        guard let session = try await live(key) else { return nil }
        loaded.remember(key, session)
        return try Self.decode(Object.self, from: session)
    }

    /// The value of `key` and the time left before it expires (nil: never).
    public func getWithTTL<Object: Codable & Sendable>(key: String, as: Object.Type) async throws -> (object: Object, ttl: Duration?)? {
        guard let session = try await live(key) else { return nil }
        loaded.remember(key, session)
        let object = try Self.decode(Object.self, from: session)
        guard let deadline = session.expiresAt else { return (object, nil) }
        return (object, max(.zero, deadline - WallClock.now()))
    }

    /// Removes `key` everywhere in the cluster.
    public func remove(key: String) async throws {
        _ = loaded.take(key)
        for generation in 0..<generations {
            let id = Self.sessionID(for: key, generation: generation)
            guard try await cluster.load(id, touch: false) != nil else { continue }
            do {
                try await cluster.invalidate(id)
            } catch SessionClusterError.refused(.sessionEnded), SessionClusterError.refused(.sessionNotFound) {
                continue
            }
        }
    }

    // MARK: - Internals

    /// The session id of `key` in `generation`: the first 144 bits of SHA-256 over both.
    static func sessionID(for key: String, generation: Int) -> SessionID {
        var hash = SHA256()
        hash.update(data: Array("hummingbird-persist:\(generation):".utf8))
        hash.update(data: Array(key.utf8))
        return SessionID(bytes: Array(hash.finalize()).prefix(SessionID.byteCount))!
    }

    /// The live session holding `key`, if any (reads do not extend the expiry).
    private func live(_ key: String) async throws -> Session? {
        for generation in 0..<generations {
            if let session = try await cluster.load(Self.sessionID(for: key, generation: generation), touch: false) {
                return session
            }
        }
        return nil
    }

    /// Creates `key` at the first generation whose id is free. False when a live session
    /// took it first (a concurrent create).
    private func createFresh(_ key: String, attributes: [String: AttributeValue], expires: Duration?) async throws -> Bool {
        for generation in 0..<generations {
            let id = Self.sessionID(for: key, generation: generation)
            do {
                _ = try await cluster.create(id: id, attributes: attributes, maxInactive: Self.idleTimeout(expires))
                return true
            } catch SessionClusterError.refused(.duplicateID), SessionClusterError.refused(.sessionEnded) {
                // Taken: by a live session (a concurrent create), or by an ended one.
                if try await cluster.load(id, touch: false) != nil { return false }
            }
        }
        throw SessionClusterPersistError.generationsExhausted(generations)
    }

    /// Writes only what differs between `base` (what the request loaded; the stored value
    /// when unknown) and `attributes`, keeping the expiry instant unless `expires` sets a new
    /// one.
    private func update(
        _ session: Session, from base: [String: AttributeValue]?, to attributes: [String: AttributeValue], expires: Duration?
    ) async throws {
        var session = session
        let base = base ?? session.attributes
        for (name, value) in attributes where base[name] != value { session.setAttribute(name, value) }
        for name in base.keys where attributes[name] == nil { session.removeAttribute(name) }
        let now = WallClock.now()
        if let expires {
            session.setMaxInactive(milliseconds: Self.idleTimeout(expires).wholeMilliseconds)
            if !session.hasChanges {
                // Same value, same timeout: only the start of the timeout moves.
                try await cluster.touch(session.id)
                return
            }
        } else if session.hasChanges, session.maxInactiveMilliseconds > 0 {
            // A write moves the last access to now; shorten the timeout so the end stays put.
            let deadline = session.lastAccessedAt.adding(milliseconds: session.maxInactiveMilliseconds)
            session.setMaxInactive(milliseconds: max(1, deadline.milliseconds(since: now)))
        }
        try await cluster.save(session)
    }

    /// The idle timeout standing for an absolute expiry `expires` from now: zero (never)
    /// without one, and at least a millisecond (zero would mean never).
    private static func idleTimeout(_ expires: Duration?) -> Duration {
        guard let expires else { return .zero }
        return max(expires, .milliseconds(1))
    }

    private static func decode<Object: Decodable>(_ type: Object.Type, from session: Session) throws -> Object {
        do {
            return try JSONDecoder().decode(type, from: Data(JSONMembers.json(of: session.attributes)))
        } catch {
            throw PersistError.invalidConversion
        }
    }
}

/// Why ``SessionClusterPersistDriver`` could not store a value.
public enum SessionClusterPersistError: Error, Hashable, Sendable {
    /// The key was removed or expired and set again more than `generations` times within the
    /// store's tombstone lifetime; every id it may use is still remembered as ended.
    case generationsExhausted(Int)
}

/// The values requests loaded through a ``SessionClusterPersistDriver``, by key and by the
/// task that loaded them, so that a request's `set` saves what it changed relative to what
/// it loaded. Bounded: an entry whose request never saved goes after a minute, and at most
/// `capacity` entries are kept.
final class LoadedValues: Sendable {
    struct Key: Hashable {
        var key: String
        var task: Int
    }
    struct Entry {
        var id: SessionID
        var attributes: [String: AttributeValue]
        var at: ContinuousClock.Instant
    }

    let capacity: Int
    private let entries = Mutex<[Key: Entry]>([:])
    private static let lifetime = Duration.seconds(60)

    init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    var count: Int { entries.withLock { $0.count } }

    func remember(_ key: String, _ session: Session) {
        guard let task = Self.currentTask() else { return }
        let now = ContinuousClock.now
        let entry = Entry(id: session.id, attributes: session.attributes, at: now)
        entries.withLock { entries in
            if entries.count >= capacity {
                entries = entries.filter { now - $0.value.at < Self.lifetime }
                // Still full: the oldest half goes (their requests fall back to the stored value).
                if entries.count >= capacity {
                    let cut = entries.values.map(\.at).sorted()[entries.count / 2]
                    entries = entries.filter { $0.value.at > cut }
                }
            }
            entries[Key(key: key, task: task)] = entry
        }
    }

    /// What this task loaded for `key`, forgotten as it is returned.
    func take(_ key: String) -> Entry? {
        guard let task = Self.currentTask() else { return nil }
        let now = ContinuousClock.now
        return entries.withLock { entries in
            guard let entry = entries.removeValue(forKey: Key(key: key, task: task)), now - entry.at < Self.lifetime else {
                return nil
            }
            return entry
        }
    }

    /// The running task's identity (its hash), used only to compare, never to reach the task.
    private static func currentTask() -> Int? {
        withUnsafeCurrentTask { $0?.hashValue }
    }
}
