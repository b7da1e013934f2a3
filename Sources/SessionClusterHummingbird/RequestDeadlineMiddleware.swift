import Foundation
import Hummingbird
import SessionCluster

/// When the load balancer gives up on a request: the time it stamps into a header when the
/// request reaches it, plus a budget no longer than its upstream timeout.
///
/// nginx, whose `proxy_read_timeout` is 2 s here:
///
/// ```nginx
/// proxy_set_header X-Request-Start "t=${msec}";
/// proxy_read_timeout 2s;
/// ```
///
/// ```swift
/// router.add(middleware: RequestDeadlineMiddleware(RequestDeadline(budget: .milliseconds(1900)), nodeID: "n1"))
/// ```
///
/// Keep the budget under the upstream timeout by the clock offset between the balancer's
/// host and the nodes' hosts: a write applied after the balancer gave up (and may have sent
/// the request to another node) is what the deadline is there to prevent.
public struct RequestDeadline: Sendable {
    /// The header the balancer writes the request's arrival into: `t=` followed by seconds
    /// (nginx's `$msec`, e.g. `t=1796695300.031`), milliseconds or microseconds (Apache's
    /// `%t`) since 1970, told apart by their size. Default `X-Request-Start`.
    public let header: String
    /// How long after the stamped arrival the request's writes may still take effect.
    public let budget: Duration
    let field: HTTPFields.Element.Name

    /// Creates a deadline rule; `header` must be a valid header name and `budget` positive.
    public init(header: String = "X-Request-Start", budget: Duration) {
        precondition(budget > .zero, "a RequestDeadline budget must be positive")
        guard let field = HTTPFields.Element.Name(header) else { preconditionFailure("'\(header)' is not a header name") }
        self.header = header
        self.field = field
        self.budget = budget
    }
}

/// Keeps a request its load balancer has given up on from writing late (see
/// ``RequestDeadline``).
///
/// The request runs under ``SessionCluster/withWriteDeadline(_:isolation:operation:)``: a
/// write it makes (the session middleware's save, or the route's own) is refused unapplied,
/// with 503 `deadline_exceeded`, if it reaches the session's owner after the deadline,
/// wherever it was held up (a paused node, a slow link). A request that only reads is served
/// whenever it arrives: harmless, and what the balancer's retry on the next node needs. A balancer's retry
/// of a write after its timeout therefore fails too: the request it stamped is past its
/// deadline everywhere. A request without the header runs without a deadline; one whose
/// header is not a time is answered 400 (`request_start_malformed`), counted in
/// `session_cluster_http_requests_refused_total`. Add it before the session middleware.
public struct RequestDeadlineMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The header and budget.
    public let deadline: RequestDeadline
    private let check: RequestStartDeadline

    /// Creates the middleware for node `nodeID` (the metrics' `node` label).
    public init(_ deadline: RequestDeadline, nodeID: String) {
        self.deadline = deadline
        self.check = RequestStartDeadline(budget: deadline.budget, nodeID: nodeID)
    }

    /// Runs the rest of the chain under the request's deadline.
    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let due: Date?
        do {
            due = try check.deadline(headerValue: request.headers[deadline.field])
        } catch {
            throw SessionAPIError.malformedRequestStart
        }
        guard let due else { return try await next(request, context) }
        return try await SessionCluster.withWriteDeadline(due) { try await next(request, context) }
    }
}
