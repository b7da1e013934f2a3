import Metrics
import SessionCluster
import SessionCore
import Vapor

/// A Vapor session driver backed by a ``SessionCluster``: Vapor's `SessionsMiddleware` and
/// `req.session` work unchanged, and the sessions are replicated across the cluster.
///
/// ```swift
/// let cluster = try SessionCluster(configuration: configuration)
/// app.sessions.use(.cluster(cluster))          // also starts and stops the cluster with the app
/// app.middleware.use(app.sessions.middleware)
/// ```
///
/// Vapor calls `updateSession` at the end of every request that has a session. The driver
/// compares the data with what *this request* loaded (kept in the request's storage) and
/// saves only the keys the request changed: nothing when nothing changed, and two
/// concurrent requests that change different keys both keep their change.
///
/// Answers: a cookie that is not a session id, or names an unknown or ended session, reads
/// as no session (Vapor then starts a fresh one; malformed cookies are counted in
/// `session_cluster_http_malformed_cookies_total`). Data over the store's limits is a 413,
/// and a cluster that cannot serve right now a 503 with `Retry-After`. A session that ended
/// while the request ran (logged out everywhere) is not brought back: the request's changes
/// are dropped.
public struct SessionClusterVaporDriver: AsyncSessionDriver {
    /// The cluster the sessions live in.
    public let cluster: SessionCluster
    /// Whether reading a session slides its idle timeout (a local, coalesced touch).
    public let touch: Bool
    private let malformedCookies: Counter

    /// Creates a driver over `cluster`. Its lifecycle is the caller's, unless the driver is
    /// installed with `app.sessions.use(.cluster(_:))`.
    public init(cluster: SessionCluster, touch: Bool = true) {
        self.cluster = cluster
        self.touch = touch
        self.malformedCookies = Counter(
            label: "session_cluster_http_malformed_cookies_total", dimensions: [("node", cluster.configuration.nodeID.rawValue)])
    }

    /// Creates a session holding `data`.
    public func createSession(_ data: SessionData, for request: Request) async throws -> Vapor.SessionID {
        let session = try await Self.mapErrors { () async throws(SessionClusterError) in
            try await request.withWriteDeadline { () async throws(SessionClusterError) in
                try await cluster.create(attributes: Self.attributes(of: data), principal: data[Self.principalKey])
            }
        }
        request.storage[LoadedKey.self] = Loaded(id: session.id, data: data.snapshot)
        return Vapor.SessionID(string: session.id.text)
    }

    /// The session's data, or nil when the id is malformed, unknown or ended.
    public func readSession(_ sessionID: Vapor.SessionID, for request: Request) async throws -> SessionData? {
        guard let id = try? SessionCore.SessionID(sessionID.string) else {
            malformedCookies.increment()
            return nil
        }
        let session = try await Self.mapErrors { () async throws(SessionClusterError) in try await cluster.load(id, touch: touch) }
        guard let session else { return nil }
        var values: [String: String] = [:]
        for (name, value) in session.attributes { values[name] = value.string ?? "" }
        request.storage[LoadedKey.self] = Loaded(id: id, data: values)
        return SessionData(initialData: values)
    }

    /// Saves the keys this request changed; nothing when it changed none.
    public func updateSession(_ sessionID: Vapor.SessionID, to data: SessionData, for request: Request) async throws -> Vapor.SessionID {
        guard let id = try? SessionCore.SessionID(sessionID.string) else { return sessionID }
        let loaded = request.storage[LoadedKey.self].flatMap { $0.id == id ? $0.data : nil }
        // Without what the request loaded (a driver used outside SessionsMiddleware), every
        // key is written: nothing is removed that the request did not know of.
        let base = loaded ?? [:]
        let now = data.snapshot
        var changes = SessionChanges()
        for (name, value) in now where base[name] != value { changes.updated[name] = AttributeValue(string: value) }
        if now[Self.principalKey] != base[Self.principalKey] { changes.principal = .some(now[Self.principalKey]) }
        if loaded != nil {
            for name in base.keys where now[name] == nil { changes.removed.insert(name) }
        }
        guard !changes.isEmpty else { return sessionID }
        do {
            try await request.withWriteDeadline { () async throws(SessionClusterError) in
                try await cluster.update(id, changes: changes)
            }
            request.storage[LoadedKey.self] = Loaded(id: id, data: now)
        } catch .refused(.sessionEnded), .refused(.sessionNotFound) {
            request.logger.debug("the session ended during the request; its changes are dropped")
        } catch {
            throw Self.abort(error)
        }
        return sessionID
    }

    /// Ends the session everywhere.
    public func deleteSession(_ sessionID: Vapor.SessionID, for request: Request) async throws {
        guard let id = try? SessionCore.SessionID(sessionID.string) else { return }
        do {
            try await request.withWriteDeadline { () async throws(SessionClusterError) in try await cluster.invalidate(id) }
        } catch .refused(.sessionEnded), .refused(.sessionNotFound) {
            return
        } catch {
            throw Self.abort(error)
        }
    }

    /// The session data key that holds the signed-in user (`req.session.signIn(_:)`); the
    /// driver indexes it across the cluster.
    public static let principalKey = "session-cluster.principal"

    // MARK: - Internals

    /// What the request loaded, so that its update saves only what it changed.
    struct Loaded: Sendable {
        var id: SessionCore.SessionID
        var data: [String: String]
    }

    enum LoadedKey: StorageKey {
        typealias Value = Loaded
    }

    static func attributes(of data: SessionData) -> [String: AttributeValue] {
        data.snapshot.mapValues { AttributeValue(string: $0) }
    }

    static func mapErrors<Value>(_ body: () async throws(SessionClusterError) -> Value) async throws(Abort) -> Value {
        do {
            return try await body()
        } catch {
            throw abort(error)
        }
    }

    /// The HTTP error of a cluster error (``SessionClusterError/httpStatus``): 413 for a
    /// limit, 503 with `Retry-After` when the cluster cannot serve, never a 500.
    static func abort(_ error: SessionClusterError) -> Abort {
        var headers = HTTPHeaders()
        if let seconds = error.retryAfterSeconds { headers.add(name: .retryAfter, value: "\(seconds)") }
        return Abort(HTTPResponseStatus(statusCode: error.httpStatus), headers: headers, reason: error.description)
    }
}

extension Application.Sessions.Provider {
    /// Sessions in `cluster`, through ``SessionClusterVaporDriver``; the cluster starts when
    /// the application boots and leaves gracefully when it shuts down.
    ///
    /// - Parameters:
    ///   - cluster: Where the sessions live.
    ///   - touch: Whether reading a session slides its idle timeout.
    ///   - configuration: Replaces `app.sessions.configuration`: by default
    ///     ``Vapor/SessionsConfiguration/cluster(cookieName:secure:domain:path:sameSite:)``,
    ///     whose cookie is `HttpOnly; Secure; SameSite=Lax` (Vapor's own default cookie is
    ///     neither HttpOnly nor Secure). Nil keeps the application's configuration.
    public static func cluster(
        _ cluster: SessionCluster, touch: Bool = true, configuration: SessionsConfiguration? = .cluster()
    ) -> Self {
        .init { application in
            if let configuration { application.sessions.configuration = configuration }
            application.sessions.use { _ in SessionClusterVaporDriver(cluster: cluster, touch: touch) }
            application.storage[SessionClusterKey.self] = cluster
            application.lifecycle.use(SessionClusterLifecycle(cluster: cluster))
        }
    }
}

extension SessionsConfiguration {
    /// Vapor's session cookie with the attributes a session cookie should have: `HttpOnly`
    /// (hidden from scripts), `SameSite` (`lax` by default), `Secure` unless `secure` is false,
    /// and no expiry, since the cluster's idle and absolute timeouts end the session.
    ///
    /// - Parameters:
    ///   - cookieName: The cookie's name. Default `vapor-session`, Vapor's.
    ///   - secure: Whether browsers send the cookie over HTTPS only. Default true; false only
    ///     for plain HTTP in development.
    ///   - domain: The domain it is sent to; nil: the host that set it.
    ///   - path: The path it is sent for. Default `/`.
    ///   - sameSite: Cross-site sending. Default `lax`.
    public static func cluster(
        cookieName: String = "vapor-session", secure: Bool = true, domain: String? = nil, path: String = "/",
        sameSite: HTTPCookies.SameSitePolicy = .lax
    ) -> SessionsConfiguration {
        SessionsConfiguration(cookieName: cookieName) { id in
            HTTPCookies.Value(
                string: id.string, expires: nil, maxAge: nil, domain: domain, path: path, isSecure: secure, isHTTPOnly: true,
                sameSite: sameSite)
        }
    }
}

/// Starts a ``SessionCluster`` when a Vapor application boots and shuts it down (leaving the
/// cluster gracefully) when the application does. Installed by `app.sessions.use(.cluster(_:))`.
public struct SessionClusterLifecycle: LifecycleHandler {
    /// The cluster it starts and stops.
    public let cluster: SessionCluster

    /// Creates the handler.
    public init(cluster: SessionCluster) {
        self.cluster = cluster
    }

    /// Starts the cluster (binds its ports and joins).
    public func willBootAsync(_ application: Application) async throws {
        try await cluster.start()
    }

    /// Leaves the cluster and closes its sockets.
    public func shutdownAsync(_ application: Application) async {
        await cluster.shutdown()
    }
}

enum SessionClusterKey: StorageKey {
    typealias Value = SessionCluster
}

extension Vapor.Session {
    /// Signs `principal` in (nil: out); the driver indexes it across the cluster, for
    /// `req.logOutEverywhere()` and ``SessionCluster/sessions(of:)``. After a sign-in, rotate
    /// the session id against fixation (`req.session.destroy()`, then start a new session).
    public func signIn(_ principal: String?) {
        data[SessionClusterVaporDriver.principalKey] = principal
    }

    /// The signed-in user, if any.
    public var principal: String? { data[SessionClusterVaporDriver.principalKey] }
}

extension Request {
    /// The cluster installed with `app.sessions.use(.cluster(_:))`.
    public var sessionCluster: SessionCluster {
        guard let cluster = application.storage[SessionClusterKey.self] else {
            fatalError("no session cluster: install one with app.sessions.use(.cluster(cluster))")
        }
        return cluster
    }

    /// Ends every session of the signed-in user across the cluster, this one included, and
    /// returns how many ended; 0 when nobody is signed in.
    @discardableResult
    public func logOutEverywhere() async throws -> Int {
        guard let principal = session.principal else { return 0 }
        let ended = try await SessionClusterVaporDriver.mapErrors { () async throws(SessionClusterError) in
            try await withWriteDeadline { () async throws(SessionClusterError) in
                try await sessionCluster.invalidateAll(of: principal)
            }
        }
        session.destroy()
        return ended
    }
}
