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

/// Refuses, and keeps from writing late, a request its load balancer has given up on
/// (see ``RequestDeadline``).
///
/// A request already past its deadline when it arrives is answered 503
/// (`deadline_exceeded`) without running the route; any other runs with
/// ``SessionCluster/withWriteDeadline(_:isolation:operation:)``, so a write it makes is
/// refused unapplied if it reaches the session's owner too late (held up in a paused node or a
/// slow link). A request without the header runs without a deadline; one whose header is not
/// a time is answered 400 (`request_start_malformed`). Both refusals are counted in
/// `session_cluster_http_requests_refused_total` by `reason`.
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
        } catch .malformed {
            throw SessionAPIError.malformedRequestStart
        } catch .pastDeadline {
            throw SessionAPIError.deadlineExceeded
        }
        guard let due else { return try await next(request, context) }
        return try await SessionCluster.withWriteDeadline(due) { try await next(request, context) }
    }
}
