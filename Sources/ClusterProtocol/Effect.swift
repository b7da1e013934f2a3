import SessionCore

/// What the protocol core asks the world to do. The core returns effects; the runtime
/// (SwiftNIO) or the simulator carries them out. This is the only way the core acts.
package enum Effect: Hashable, Sendable {
    /// Send `message` to `to` over `channel`.
    case send(ClusterMessage, to: Member, channel: Channel)
    /// A write the application asked for is done: the version written, or why not.
    case completeWrite(RequestID, Result<SessionVersion, ClusterFailure>)
    /// A read the application asked for is done.
    case completeRead(RequestID, ReadResult)
    /// This node installed a new view (for logs, metrics and status).
    case installedView(View)
    /// A session event, fired once, by the owner, after replication.
    case event(SessionEvent)
    /// Drop queued traffic to `member` and close its link (it was declared down or left).
    case disconnect(Member)
    /// This node, the session's owner, refused a write unapplied because its deadline had
    /// passed (for metrics: the caller may have stopped waiting long before).
    case refusedPastDeadline(SessionID)

    /// How a message travels.
    package enum Channel: Hashable, Sendable {
        /// Unreliable and unordered (UDP): heartbeats and probes.
        case datagram
        /// Reliable and ordered per peer (TCP): everything else.
        case stream
    }
}
