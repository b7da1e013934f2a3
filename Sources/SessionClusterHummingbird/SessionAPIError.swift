import Foundation
import Hummingbird
import SessionCluster

/// An HTTP error of the session API: a status and a JSON body
/// `{"error": "<code>", "message": "<text>"}`, where `code` is stable.
public struct SessionAPIError: HTTPResponseError, Sendable {
    /// The HTTP status.
    public var status: HTTPResponse.Status
    /// A stable, machine-readable code, e.g. `"session_unknown"`.
    public var code: String
    /// A human-readable explanation (never a whole session id).
    public var message: String
    /// Seconds after which a retry may succeed, sent as `Retry-After`; set for 503s.
    public var retryAfterSeconds: Int?

    /// Creates an error.
    public init(status: HTTPResponse.Status, code: String, message: String, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// 401: no session cookie.
    public static let missingCookie = SessionAPIError(
        status: .unauthorized, code: "session_missing", message: "no SESSION_ID cookie")
    /// 401: the cookie is not a session id.
    public static let malformedCookie = SessionAPIError(
        status: .unauthorized, code: "session_malformed", message: "the SESSION_ID cookie is not a session id")
    /// 400: the load balancer's request-start header (``RequestDeadline``) is not a time.
    public static let malformedRequestStart = SessionAPIError(
        status: .badRequest, code: "request_start_malformed",
        message: "the request-start header is not a time (t=SECONDS, MILLISECONDS or MICROSECONDS since 1970)")
    /// 401: no live session has this id (unknown, expired, invalidated or rotated).
    public static let unknownSession = SessionAPIError(
        status: .unauthorized, code: "session_unknown", message: "no live session with this id")

    /// The error a ``SessionClusterError`` becomes over HTTP, with the status of
    /// ``SessionClusterError/httpStatus``: 401 for an unknown or ended session, 413 for a
    /// size or count limit, 409 for a taken id, 503 with `Retry-After` when the cluster
    /// cannot serve right now.
    public init(_ error: SessionClusterError) {
        let code: String
        switch error {
        case .refused(.sessionNotFound), .refused(.sessionEnded):
            self = .unknownSession
            return
        case .refused(.duplicateID): code = "duplicate_id"
        case .refused(.tooManySessions), .refused(.storeFull): code = "store_full"
        case .refused: code = "too_large"
        case .notInMajority, .replicationTimeout, .ownerUnreachable, .viewChanged, .notRunning: code = "cluster_unavailable"
        case .deadlineExceeded: code = "deadline_exceeded"
        case .invalidConfiguration: code = "misconfigured"
        }
        self.init(
            status: HTTPResponse.Status(code: error.httpStatus), code: code, message: error.description,
            retryAfterSeconds: error.retryAfterSeconds)
    }

    /// The response: ``status`` and the JSON body.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = try encoder.encode(["error": code, "message": message])
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if let retryAfterSeconds { headers[.retryAfter] = "\(retryAfterSeconds)" }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Runs a cluster call, turning its typed error into the HTTP one (401, 409, 413, 503).
func withHTTPErrors<Value>(_ body: () async throws(SessionClusterError) -> Value) async throws(SessionAPIError) -> Value {
    do {
        return try await body()
    } catch {
        throw SessionAPIError(error)
    }
}
