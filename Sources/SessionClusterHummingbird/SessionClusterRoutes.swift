import Foundation
import Hummingbird
import SessionCluster
import SessionCore

/// The HTTP API of a session node, over a ``SessionCluster``:
///
/// | route | answer |
/// | --- | --- |
/// | `POST /session` | 201, cookie `SESSION_ID`, `{"id": "..."}` |
/// | `PUT /session/attributes/{name}` (raw body) | 204 |
/// | `GET /session/attributes/{name}` | 200 and the raw value, or 404 |
/// | `DELETE /session/attributes/{name}` | 204 |
/// | `GET /session` | 200, a JSON object of all attributes (values as UTF-8 text) |
/// | `DELETE /session` | 204; the id then gives 401 on every node |
/// | `POST /session/rotate` | 200, a new cookie and `{"id": "..."}`; the old id gives 401 |
/// | `PUT /session/principal` (the user's name as body, `Authorization: Bearer <sign-in token>`) | 204: the session is signed in as that user; 403 without the token |
/// | `GET /session/principal/sessions` | 200, `{"principal": "...", "sessions": [{"id": "abc123…", "createdAt": ms, "lastAccessedAt": ms}]}`, every live session of the session's user across the cluster (ids redacted) |
/// | `DELETE /session/principal/sessions` | 200, `{"ended": n}`: every session of the user ends, this one included ("log out everywhere") |
/// | `GET /cluster` | 200, this node's view of the cluster as JSON |
/// | `GET /health` | 200 once the node is in a view, 503 before |
///
/// A missing, malformed, unknown or expired cookie gives 401, a value over the limits 413,
/// a full store 503 (`store_full`, with `Retry-After`), a `POST /session` over the
/// ``SessionCreationLimit`` given to ``init(cluster:signInToken:secureCookie:creationLimit:)``
/// 429 (`rate_limited`, with `Retry-After`), all with a JSON ``SessionAPIError`` body. Add ``NodeHeaderMiddleware`` for `X-Node`.
///
/// ``register(on:)`` adds them all; ``registerSessionRoutes(on:)`` and
/// ``registerAdminRoutes(on:)`` split them between a public listener (the sessions and
/// `/health`) and an operators' one (`/cluster`).
public struct SessionClusterRoutes<Context: RequestContext>: Sendable {
    /// The cookie that carries the session id.
    public static var cookieName: String { "SESSION_ID" }

    /// The cluster the routes read and write.
    public let cluster: SessionCluster
    /// The bearer token a caller of `PUT /session/principal` must present: signing a session
    /// in as a user is for the backend that checked the user's password, not for any client.
    /// Nil: the route answers 403.
    public let signInToken: String?
    /// The attributes of the `SESSION_ID` cookie the routes set: `HttpOnly; SameSite=Lax`,
    /// and `Secure` unless the routes were made with `secureCookie: false`.
    public let cookie: SessionCookie
    /// The per-client limit on `POST /session`; nil: none.
    public let creationLimit: SessionCreationLimit?

    /// Creates the routes over `cluster`.
    ///
    /// - Parameters:
    ///   - cluster: The cluster the routes read and write.
    ///   - signInToken: The token `PUT /session/principal` requires; nil refuses it.
    ///   - secureCookie: Whether the session cookie carries `Secure` (browsers then send it
    ///     over HTTPS only). Default true; false only for plain HTTP in development.
    ///   - creationLimit: A per-client limit on `POST /session` (429 over it); default none.
    public init(
        cluster: SessionCluster, signInToken: String? = nil, secureCookie: Bool = true,
        creationLimit: SessionCreationLimit? = nil
    ) {
        self.cluster = cluster
        self.creationLimit = creationLimit
        self.signInToken = signInToken.flatMap { $0.isEmpty ? nil : $0 }
        self.cookie = SessionCookie(name: Self.cookieName, secure: secureCookie)
    }

    /// Adds every route to `router`: the session routes and the admin routes.
    public func register(on router: Router<Context>) {
        registerSessionRoutes(on: router)
        registerAdminRoutes(on: router)
    }

    /// Adds the routes of operators, who see the membership and partitions of the cluster:
    /// `GET /cluster`.
    public func registerAdminRoutes(on router: Router<Context>) {
        let cluster = self.cluster
        router.get("/cluster") { _, _ -> Response in
            let status = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.status() }
            return try Self.json(ClusterStatusBody(status), status: .ok)
        }
    }

    /// Adds the routes clients and load balancers use: every `/session` route and
    /// `GET /health`.
    public func registerSessionRoutes(on router: Router<Context>) {
        let (cluster, cookie, creationLimit) = (self.cluster, self.cookie, self.creationLimit)
        router.post("/session") { request, context -> Response in
            try creationLimit?.check(request, context: context)
            let session = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.create() }
            return try Self.sessionResponse(status: .created, id: session.id, cookie: cookie)
        }
        router.get("/session") { request, _ -> Response in
            let session = try await Self.liveSession(request, cluster)
            var values: [String: String] = [:]
            for (name, value) in session.attributes { values[name] = String(decoding: value.bytes, as: UTF8.self) }
            return try Self.json(values, status: .ok)
        }
        router.delete("/session") { request, _ -> Response in
            let id = try Self.sessionID(request)
            try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.invalidate(id) }
            var response = Response(status: .noContent)
            response.setCookie(cookie.expired)
            return response
        }
        router.post("/session/rotate") { request, _ -> Response in
            let id = try Self.sessionID(request)
            let newID = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.rotateID(id) }
            return try Self.sessionResponse(status: .ok, id: newID, cookie: cookie)
        }
        router.put("/session/attributes/:name") { request, context -> HTTPResponse.Status in
            let id = try Self.sessionID(request)
            let name = try context.parameters.require("name")
            let value = try await Self.collect(request.body, limit: cluster.configuration.limits.maxAttributeBytes)
            let changes = SessionChanges(updated: [name: AttributeValue(encoding: .raw, bytes: value)])
            _ = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.update(id, changes: changes) }
            return .noContent
        }
        router.get("/session/attributes/:name") { request, context -> Response in
            let session = try await Self.liveSession(request, cluster)
            let name = try context.parameters.require("name")
            guard let value = session[name] else {
                throw SessionAPIError(status: .notFound, code: "attribute_unknown", message: "no attribute with this name")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/octet-stream"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: value.bytes)))
        }
        router.delete("/session/attributes/:name") { request, context -> HTTPResponse.Status in
            let id = try Self.sessionID(request)
            let name = try context.parameters.require("name")
            let changes = SessionChanges(removed: [name])
            _ = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.update(id, changes: changes) }
            return .noContent
        }
        let signInToken = self.signInToken
        router.put("/session/principal") { request, _ -> HTTPResponse.Status in
            guard let signInToken, request.headers[.authorization] == "Bearer \(signInToken)" else {
                throw SessionAPIError(
                    status: .forbidden, code: "sign_in_refused", message: "signing in needs the sign-in token")
            }
            let id = try Self.sessionID(request)
            let name = String(decoding: try await Self.collect(request.body, limit: 256), as: UTF8.self)
            guard !name.isEmpty, !name.hasPrefix("\u{0}") else {
                throw SessionAPIError(status: .badRequest, code: "principal_invalid", message: "the principal must be a non-empty name")
            }
            _ = try await withHTTPErrors { () async throws(SessionClusterError) in
                try await cluster.update(id, changes: SessionChanges(principal: .some(name)))
            }
            return .noContent
        }
        router.get("/session/principal/sessions") { request, _ -> Response in
            let principal = try await Self.principal(request, cluster)
            let sessions = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.sessions(of: principal) }
            let listed = sessions.map { PrincipalSessionBody(id: $0.id.redacted, createdAt: $0.createdAt.milliseconds, lastAccessedAt: $0.lastAccessedAt.milliseconds) }
            return try Self.json(PrincipalSessionsBody(principal: principal, sessions: listed), status: .ok)
        }
        router.delete("/session/principal/sessions") { request, _ -> Response in
            let principal = try await Self.principal(request, cluster)
            let ended = try await withHTTPErrors { () async throws(SessionClusterError) in try await cluster.invalidateAll(of: principal) }
            var response = try Self.json(["ended": ended], status: .ok)
            response.setCookie(cookie.expired)
            return response
        }
        router.get("/health") { _, _ -> Response in
            let ready = await cluster.isReady()
            return try Self.json(["status": ready ? "ok" : "joining"], status: ready ? .ok : .serviceUnavailable)
        }
    }

    // MARK: - Helpers

    static func sessionID(_ request: Request) throws(SessionAPIError) -> SessionID {
        guard let cookie = request.cookies[cookieName] else { throw .missingCookie }
        do {
            return try SessionID(cookie.value)
        } catch {
            throw .malformedCookie
        }
    }

    /// The user the request's session is signed in as; 403 when it is signed in as nobody.
    static func principal(_ request: Request, _ cluster: SessionCluster) async throws -> String {
        guard let principal = try await liveSession(request, cluster).principal else {
            throw SessionAPIError(status: .forbidden, code: "not_signed_in", message: "the session is not signed in")
        }
        return principal
    }

    static func liveSession(_ request: Request, _ cluster: SessionCluster) async throws -> Session {
        let id = try sessionID(request)
        guard let session = try await withHTTPErrors({ () async throws(SessionClusterError) in try await cluster.load(id) }) else {
            throw SessionAPIError.unknownSession
        }
        return session
    }

    /// The request body, refused with 413 as soon as it passes `limit` bytes.
    static func collect(_ body: RequestBody, limit: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        for try await part in body {
            guard bytes.count + part.readableBytes <= limit else {
                throw SessionAPIError(
                    status: .contentTooLarge, code: "too_large", message: "the value is over the limit of \(limit) bytes")
            }
            bytes.append(contentsOf: part.readableBytesView)
        }
        return bytes
    }

    static func sessionResponse(status: HTTPResponse.Status, id: SessionID, cookie: SessionCookie) throws -> Response {
        var response = try json(["id": id.text], status: status)
        response.setCookie(cookie.cookie(for: id))
        return response
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}

struct PrincipalSessionBody: Encodable {
    var id: String
    var createdAt: Int64
    var lastAccessedAt: Int64
}

struct PrincipalSessionsBody: Encodable {
    var principal: String
    var sessions: [PrincipalSessionBody]
}
