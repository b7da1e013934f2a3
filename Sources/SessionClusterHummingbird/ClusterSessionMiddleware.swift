import Foundation
import Hummingbird
import Logging
import Metrics
import SessionCluster
import SessionCore

/// Sessions for a Hummingbird app, stored in a ``SessionCluster``.
///
/// Before the route runs, the middleware loads the session named by the cookie into
/// ``ClusterSessionRequestContext/session``; after it, it saves only what the request
/// changed relative to what it loaded (nothing when nothing changed), creates a new session,
/// rotates the id or ends the session, as the route asked, and sets the cookie.
///
/// ```swift
/// let router = Router(context: BasicClusterSessionRequestContext.self)
/// router.add(middleware: ClusterSessionMiddleware(cluster: cluster))
/// router.post("/login") { _, context in
///     context.session.setPrincipal("ada")
///     context.session.rotateID()
///     return HTTPResponse.Status.noContent
/// }
/// let app = Application(router: router, services: [cluster])
/// ```
///
/// Answers, never a 500 for an expected condition:
/// - no cookie, a malformed one (counted in `session_cluster_http_malformed_cookies_total`),
///   or one naming an unknown or ended session: the route runs without a session, and the
///   stale cookie is cleared;
/// - a value over the store's limits: 413;
/// - the cluster cannot load or save right now: 503 with `Retry-After`.
///
/// A session that ended while the request ran (logged out everywhere, expired) is not
/// brought back by the request's save: its changes are dropped and the cookie cleared.
public struct ClusterSessionMiddleware<Context: ClusterSessionRequestContext>: RouterMiddleware {
    /// The cluster the sessions live in.
    public let cluster: SessionCluster
    /// The cookie that carries the session id.
    public let cookie: SessionCookie
    /// Encodes and decodes typed attributes (``RequestSession/get(_:as:)``).
    public let serializer: any SessionSerializer
    /// Whether loading a session slides its idle timeout. The touch is local and coalesced,
    /// never a write per request.
    public let touch: Bool
    /// The idle timeout of new sessions; nil: the store's default (30 minutes).
    public let maxInactive: Duration?
    /// The absolute lifetime of new sessions, however active; nil: none.
    public let absoluteTimeout: Duration?
    /// A cookie naming this node, set with every new or rotated session id, whose sessions
    /// land on the node that made them: a load balancer that routes on it (nginx: `map
    /// $cookie_NAME`) sends each session's requests to its owner, where reads and writes
    /// need no hop between nodes. Nil (the default): none.
    public let affinityCookie: String?
    private let malformedCookies: Counter

    /// Creates the middleware.
    public init(
        cluster: SessionCluster, cookie: SessionCookie = SessionCookie(),
        serializer: any SessionSerializer = JSONSessionSerializer(), touch: Bool = true,
        maxInactive: Duration? = nil, absoluteTimeout: Duration? = nil, affinityCookie: String? = nil
    ) {
        self.affinityCookie = affinityCookie
        self.cluster = cluster
        self.cookie = cookie
        self.serializer = serializer
        self.touch = touch
        self.maxInactive = maxInactive
        self.absoluteTimeout = absoluteTimeout
        self.malformedCookies = Counter(
            label: "session_cluster_http_malformed_cookies_total", dimensions: [("node", cluster.configuration.nodeID.rawValue)])
    }

    /// Loads the session, runs the route, saves what it changed.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var clearCookie = false
        var loaded: Session?
        if let value = request.cookies[cookie.name]?.value {
            if let id = try? SessionID(value) {
                loaded = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.load(id, touch: touch) }
                clearCookie = loaded == nil
            } else {
                malformedCookies.increment()
                clearCookie = true
            }
        }
        context.session.begin(loaded, serializer: serializer, logger: context.logger)
        var response = try await next(request, context)
        let ending = context.session.end(loadedID: loaded?.id)
        if let principal = ending.endAllOf {
            _ = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.invalidateAll(of: principal) }
        }
        if let id = ending.invalidate {
            _ = try await Self.unlessEnded { () async throws(SessionClusterError) in try await cluster.invalidate(id) }
            clearCookie = true
        }
        if let create = ending.create {
            let session = try await withHTTPErrors { () async throws(SessionClusterError) in
                try await cluster.create(
                    attributes: create.attributes, maxInactive: maxInactive, absoluteTimeout: absoluteTimeout,
                    principal: create.principal)
            }
            setSessionCookie(session.id, on: &response)
            return response
        }
        if let session = ending.save {
            let saved = try await Self.unlessEnded { () async throws(SessionClusterError) in try await cluster.save(session) }
            if saved == nil {
                context.logger.debug("the session ended during the request; its changes are dropped")
                clearCookie = true
            }
        }
        if ending.rotate, !clearCookie, let id = loaded?.id {
            let newID = try await Self.unlessEnded { () async throws(SessionClusterError) in try await cluster.rotateID(id) }
            if let newID {
                setSessionCookie(newID, on: &response)
            } else {
                clearCookie = true
            }
        }
        if clearCookie { response.setCookie(cookie.expired) }
        return response
    }

    /// The session cookie naming `id`, and the affinity cookie naming this node, which owns
    /// the partition a new id is drawn from.
    private func setSessionCookie(_ id: SessionID, on response: inout Response) {
        response.setCookie(cookie.cookie(for: id))
        if let affinityCookie {
            response.setCookie(cookie.cookie(named: affinityCookie, value: cluster.configuration.nodeID.rawValue))
        }
    }

    /// Runs a cluster call on a loaded session: nil when the session ended meanwhile,
    /// otherwise the HTTP error of ``withHTTPErrors(_:)``.
    static func unlessEnded<Value>(_ body: () async throws(SessionClusterError) -> Value) async throws(SessionAPIError) -> Value? {
        do {
            return try await body()
        } catch .refused(.sessionNotFound), .refused(.sessionEnded) {
            return nil
        } catch {
            throw SessionAPIError(error)
        }
    }
}

/// The cookie that carries a session id, and its attributes: by default
/// `Path=/; Secure; HttpOnly; SameSite=Lax` and no expiry (the store ends the session).
/// ``ClusterSessionMiddleware``'s affinity cookie and the cookie that clears a session take
/// the same attributes.
///
/// ```swift
/// // Served over plain HTTP in development: without Secure, browsers would not send it back.
/// ClusterSessionMiddleware(cluster: cluster, cookie: SessionCookie(secure: false))
/// ```
public struct SessionCookie: Sendable {
    /// The cookie's name. Default `SESSION_ID`.
    public var name: String
    /// The path it is sent for. Default `/`.
    public var path: String
    /// The domain it is sent to; nil: the host that set it.
    public var domain: String?
    /// Sent over HTTPS only. Default true: set it to false only for local development.
    public var secure: Bool
    /// Hidden from scripts. Default true.
    public var httpOnly: Bool
    /// Cross-site sending. Default `lax`.
    public var sameSite: Cookie.SameSite

    /// Creates a cookie description; every default is the safe one.
    public init(
        name: String = "SESSION_ID", path: String = "/", domain: String? = nil, secure: Bool = true,
        httpOnly: Bool = true, sameSite: Cookie.SameSite = .lax
    ) {
        self.name = name
        self.path = path
        self.domain = domain
        self.secure = secure
        self.httpOnly = httpOnly
        self.sameSite = sameSite
    }

    /// The cookie naming `id`. A session cookie (no expiry): the store ends the session.
    func cookie(for id: SessionID) -> Cookie {
        cookie(named: name, value: id.text)
    }

    /// Another cookie with the same attributes.
    func cookie(named name: String, value: String) -> Cookie {
        Cookie(name: name, value: value, domain: domain, path: path, secure: secure, httpOnly: httpOnly, sameSite: sameSite)
    }

    /// The cookie that makes the browser forget the session.
    var expired: Cookie {
        Cookie(
            name: name, value: "", maxAge: 0, domain: domain, path: path, secure: secure, httpOnly: httpOnly,
            sameSite: sameSite)
    }
}
