import Foundation
import Metrics
import SessionCore

extension SessionCluster {
    /// The deadline of the writes the current task makes; nil: none.
    @TaskLocal static var writeDeadline: Timestamp?

    /// Runs `operation` with a deadline on every write it makes through a ``SessionCluster``
    /// (saves, updates, creates, invalidations, rotations): the session's owner refuses a
    /// write that reaches it after `deadline`, unapplied, with
    /// ``SessionClusterError/deadlineExceeded``. Nested calls keep the earlier deadline.
    ///
    /// Why: a load balancer that gives up on a slow node (nginx's `proxy_read_timeout`)
    /// sends the request again to another node, by default for `PUT` and `DELETE`. The slow
    /// node (paused by a long GC or a frozen VM, or behind a slow link) still holds the first
    /// copy; applied when it wakes, it would overwrite whatever the client has written since.
    /// With the deadline at the moment the balancer gives up, that copy is refused instead.
    /// The web integrations set it from the time the balancer stamps in a header
    /// (`RequestDeadline` in `SessionClusterHummingbird`).
    ///
    /// The owner compares `deadline` with its own wall clock, so choose it with the clock
    /// offset between the balancer's host and the nodes' hosts to spare. A node of an older
    /// release refuses the frame of a forwarded write that carries a deadline and closes the
    /// link: set deadlines once every node runs this one.
    public static func withWriteDeadline<Value, Failure: Error>(
        _ deadline: Date, isolation: isolated (any Actor)? = #isolation, operation: () async throws(Failure) -> Value
    ) async throws(Failure) -> Value {
        let timestamp = Timestamp(deadline)
        // Carried out as a Result: the task-local's scope does not keep the error's type.
        let result: Result<Value, Failure> = await $writeDeadline.withValue(min(writeDeadline ?? timestamp, timestamp)) {
            do throws(Failure) { return .success(try await operation()) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

/// The deadline of an HTTP request: the time its load balancer stamped into a header
/// (`X-Request-Start`) plus a budget, read the same way by every web integration. A request
/// is not refused for arriving late: a read then is harmless (and is what the balancer's
/// retry on the next node wants), and a write is refused where it would be applied, by the
/// owner. A header that is not a time is refused, and counted in
/// `session_cluster_http_requests_refused_total{reason="request_start_malformed"}`.
package struct RequestStartDeadline: Sendable {
    /// The request-start header holds no time.
    package struct Malformed: Error {}

    /// How long after the stamped arrival the request's writes may still take effect.
    package let budget: Duration
    private let malformed: Counter

    package init(budget: Duration, nodeID: String) {
        self.budget = budget
        malformed = Counter(
            label: "session_cluster_http_requests_refused_total",
            dimensions: [("node", nodeID), ("reason", "request_start_malformed")])
    }

    /// The deadline of a request whose header holds `value` (nil: no header, no deadline).
    package func deadline(headerValue value: String?) throws(Malformed) -> Date? {
        guard let value else { return nil }
        guard let arrival = Self.arrival(in: value) else {
            malformed.increment()
            throw Malformed()
        }
        let (seconds, attoseconds) = budget.components
        return arrival.addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
    }

    /// The time in a header value: `t=` (optional) followed by seconds (nginx's `$msec`,
    /// e.g. `t=1796695300.031`), milliseconds or microseconds (Apache's `%t`) since 1970,
    /// told apart by their size. Nil when it is not one.
    package static func arrival(in value: some StringProtocol) -> Date? {
        let number = value.hasPrefix("t=") ? value.dropFirst(2) : value[...]
        guard let amount = Double(number), amount.isFinite, amount > 0 else { return nil }
        // Seconds since 1970 stay under 1e11 until the year 5138, milliseconds under 1e14
        // as long; anything larger is microseconds.
        let seconds = amount >= 1e14 ? amount / 1e6 : amount >= 1e11 ? amount / 1e3 : amount
        return Date(timeIntervalSince1970: seconds)
    }
}
