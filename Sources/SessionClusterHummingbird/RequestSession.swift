import Hummingbird
import Logging
import SessionCluster
import SessionCore
import Synchronization

/// A request context that carries the request's session, for ``ClusterSessionMiddleware``.
public protocol ClusterSessionRequestContext: RequestContext {
    /// The request's session: loaded before the route runs, its changes saved after.
    var session: RequestSession { get }
}

/// The request context of an app that needs nothing but a session.
public struct BasicClusterSessionRequestContext: ClusterSessionRequestContext {
    /// Hummingbird's own per-request state.
    public var coreContext: CoreRequestContextStorage
    /// The request's session.
    public let session: RequestSession

    /// Creates the context of one request.
    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.session = RequestSession()
    }
}

/// The session of one request, as ``ClusterSessionMiddleware`` loaded it.
///
/// Every change is recorded per attribute against what the request loaded, and at the end
/// of the request only those changes are saved: a request that changed nothing writes
/// nothing, and two concurrent requests that change different attributes of one session
/// both keep their change, whichever node each went through.
///
/// ```swift
/// router.post("/cart") { request, context in
///     var cart = try context.session.get("cart", as: [String].self) ?? []
///     cart.append("apple")
///     try context.session.set("cart", cart)   // creates the session if there was none
///     return HTTPResponse.Status.noContent
/// }
/// ```
public final class RequestSession: Sendable {
    struct State: Sendable {
        /// The loaded session with this request's changes, or a new one (`isNew`).
        var session: Session?
        var isNew = false
        /// The loaded session is to end (log out).
        var endLoaded = false
        /// Every session of this principal is to end (log out everywhere).
        var endAllOf: String?
        var rotate = false
        var serializer: any SessionSerializer = JSONSessionSerializer()
        var logger = Logger(label: "session-cluster.hummingbird")
    }

    let state = Mutex(State())

    /// An empty session state; the middleware fills it in.
    public init() {}

    /// True when the request has a live session (loaded, or created by this request).
    public var exists: Bool { state.withLock { $0.session != nil } }

    /// The session's id; nil when there is none, or it is created at the end of this request.
    public var id: SessionID? {
        state.withLock { $0.isNew ? nil : $0.session?.id }
    }

    /// The signed-in user of the session, if any.
    public var principal: String? { state.withLock { $0.session?.principal } }

    /// The attribute `name` decoded as `type` with the middleware's serializer; nil when it
    /// is not set.
    ///
    /// A stored value that does not decode as `type` (an older release stored another type
    /// under this name) is dropped from the session and reads as nil: a rolling deploy
    /// costs that attribute, never the request.
    public func get<Value: Decodable>(_ name: String, as type: Value.Type = Value.self) -> Value? {
        let (session, serializer, logger) = state.withLock { ($0.session, $0.serializer, $0.logger) }
        guard let session else { return nil }
        do {
            return try session.get(name, as: type, using: serializer)
        } catch {
            logger.notice("dropping an attribute that does not decode", metadata: ["error": "\(error)"])
            state.withLock { $0.session?.removeAttribute(name) }
            return nil
        }
    }

    /// The raw value of the attribute `name`.
    public subscript(name: String) -> AttributeValue? {
        state.withLock { $0.session?[name] }
    }

    /// Sets the attribute `name` to `value`, encoded with the middleware's serializer.
    /// Without a session, this starts one (created at the end of the request). Setting the
    /// value it already has records nothing.
    public func set<Value: Encodable>(_ name: String, _ value: Value) throws {
        try state.withLock { state in
            Self.startIfNeeded(&state)
            try state.session!.set(name, value, using: state.serializer)
        }
    }

    /// Sets the attribute `name` to a raw value. Without a session, this starts one.
    public func setAttribute(_ name: String, _ value: AttributeValue) {
        state.withLock { state in
            Self.startIfNeeded(&state)
            state.session!.setAttribute(name, value)
        }
    }

    /// Removes the attribute `name`.
    public func remove(_ name: String) {
        state.withLock { $0.session?.removeAttribute(name) }
    }

    /// Signs `principal` in (nil: out). Without a session, this starts one. After a sign-in,
    /// call ``rotateID()`` too, against session fixation.
    public func setPrincipal(_ principal: String?) {
        state.withLock { state in
            Self.startIfNeeded(&state)
            state.session!.setPrincipal(principal)
        }
    }

    /// Gives the session a new id at the end of the request (after saving this request's
    /// changes), and ends the old id everywhere. A new session gets a fresh id anyway.
    public func rotateID() {
        state.withLock { $0.rotate = true }
    }

    /// Ends the session everywhere at the end of the request and clears the cookie. Setting
    /// an attribute afterwards starts a new session.
    public func invalidate() {
        state.withLock { state in
            if state.session != nil, !state.isNew { state.endLoaded = true }
            state.session = nil
            state.isNew = false
        }
    }

    /// Ends every session of the signed-in user across the cluster at the end of the
    /// request, this one included ("log out everywhere"), and clears the cookie.
    public func logOutEverywhere() {
        state.withLock { state in
            guard let principal = state.session?.principal else { return }
            state.endAllOf = principal
            if !state.isNew { state.endLoaded = true }
            state.session = nil
            state.isNew = false
        }
    }

    // MARK: - Internals

    private static func startIfNeeded(_ state: inout State) {
        guard state.session == nil else { return }
        state.session = Session(
            id: provisionalID, version: 0, createdAt: .zero, lastAccessedAt: .zero, maxInactiveMilliseconds: 0)
        state.isNew = true
    }

    /// The id a new session carries until the cluster gives it one at the end of the request.
    private static let provisionalID = SessionID(high: 0, low: 0, tail: 0)

    /// Called by the middleware before the route runs.
    func begin(_ loaded: Session?, serializer: any SessionSerializer, logger: Logger) {
        state.withLock { $0 = State(session: loaded, serializer: serializer, logger: logger) }
    }

    /// What the middleware must do at the end of the request.
    struct Ending: Sendable {
        /// The loaded session to end (invalidated, or replaced by a new one).
        var invalidate: SessionID?
        /// The loaded session with its changes, to save.
        var save: Session?
        /// A new session's attributes and principal, to create.
        var create: (attributes: [String: AttributeValue], principal: String?)?
        var rotate: Bool
        /// The principal whose every session ends.
        var endAllOf: String?
    }

    func end(loadedID: SessionID?) -> Ending {
        state.withLock { state in
            var ending = Ending(rotate: state.rotate, endAllOf: state.endAllOf)
            if state.endLoaded { ending.invalidate = loadedID }
            if state.isNew, let session = state.session {
                ending.create = (session.attributes, session.principal)
            } else if let session = state.session, session.hasChanges {
                ending.save = session
            }
            return ending
        }
    }
}
