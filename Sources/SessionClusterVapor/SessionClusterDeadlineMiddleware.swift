import Foundation
import SessionCluster
import Vapor

/// Keeps a request its load balancer has given up on from writing late: the Vapor form of
/// `RequestDeadlineMiddleware` (see ``SessionCluster/withWriteDeadline(_:isolation:operation:)``).
///
/// The balancer stamps when it took the request, and the deadline is that time plus
/// `budget`, no longer than the balancer's upstream timeout less the clock offset between
/// hosts. With nginx:
///
/// ```nginx
/// proxy_set_header X-Request-Start "t=${msec}";
/// proxy_read_timeout 2s;
/// ```
///
/// ```swift
/// app.middleware.use(SessionClusterDeadlineMiddleware(budget: .milliseconds(1900), nodeID: "n1"))
/// app.middleware.use(app.sessions.middleware)   // after it, so that its saves are covered
/// ```
///
/// The session driver's saves run under the deadline: a save that reaches the session's
/// owner after it is refused unapplied (503), wherever it was held up. Vapor runs routes and
/// drivers outside the middleware's task, so a route's own cluster writes take the deadline
/// from ``Vapor/Request/withWriteDeadline(isolation:_:)``. A request that only reads is served
/// whenever it arrives. A request without the header has no deadline; a header that is not a time is a 400, counted
/// in `session_cluster_http_requests_refused_total`.
public struct SessionClusterDeadlineMiddleware: AsyncMiddleware {
    /// The header the balancer writes the request's arrival into (`t=` and seconds,
    /// milliseconds or microseconds since 1970).
    public let header: String
    /// How long after the stamped arrival the request's writes may still take effect.
    public let budget: Duration
    private let check: RequestStartDeadline

    /// Creates the middleware for node `nodeID` (the metrics' `node` label); `budget` must be positive.
    public init(header: String = "X-Request-Start", budget: Duration, nodeID: String) {
        precondition(budget > .zero, "a deadline budget must be positive")
        self.header = header
        self.budget = budget
        self.check = RequestStartDeadline(budget: budget, nodeID: nodeID)
    }

    /// Runs the rest of the chain under the request's deadline.
    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let due: Date?
        do {
            due = try check.deadline(headerValue: request.headers.first(name: header))
        } catch {
            throw Abort(.badRequest, reason: "the \(header) header is not a time (t=SECONDS, MILLISECONDS or MICROSECONDS since 1970)")
        }
        guard let due else { return try await next.respond(to: request) }
        // Vapor runs session drivers outside this task, where the task-local does not reach:
        // the driver finds the deadline on the request.
        request.storage[WriteDeadlineKey.self] = due
        return try await SessionCluster.withWriteDeadline(due) { try await next.respond(to: request) }
    }
}

enum WriteDeadlineKey: StorageKey {
    typealias Value = Date
}

extension Request {
    /// Runs `operation` under the write deadline ``SessionClusterDeadlineMiddleware`` found
    /// for this request (none: as it is). Vapor runs a route outside the middleware's task,
    /// where the deadline does not reach on its own: wrap the route's own cluster writes in it.
    ///
    /// ```swift
    /// app.post("cart", ":item") { req in
    ///     try await req.withWriteDeadline { try await req.sessionCluster.update(id, changes: changes) }
    /// }
    /// ```
    public func withWriteDeadline<Value, Failure: Error>(
        isolation: isolated (any Actor)? = #isolation, _ operation: () async throws(Failure) -> Value
    ) async throws(Failure) -> Value {
        guard let due = storage[WriteDeadlineKey.self] else { return try await operation() }
        return try await SessionCluster.withWriteDeadline(due, isolation: isolation, operation: operation)
    }
}
