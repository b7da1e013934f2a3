import Foundation
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
    /// release refuses a forwarded write that carries a deadline: set deadlines once every
    /// node runs this one.
    public static func withWriteDeadline<Result>(
        _ deadline: Date, isolation: isolated (any Actor)? = #isolation, operation: () async throws -> Result
    ) async rethrows -> Result {
        let timestamp = Timestamp(deadline)
        return try await $writeDeadline.withValue(min(writeDeadline ?? timestamp, timestamp), operation: operation)
    }
}
