import SessionCore

/// Everything that can happen to a node, as one type: the runtime and the simulator drive a
/// ``ClusterNode`` only through ``ClusterNode/handle(_:now:into:)``, with the time of the
/// input, and carry out the ``Effect``s it appends. A recorded list of inputs and times
/// replays a node exactly.
package enum Input {
    /// The transport is bound: contact the seeds.
    case start
    /// A message from a peer.
    case message(ClusterMessage)
    /// Time passed: heartbeats, failure detection, elections, flushes, retransmissions,
    /// timeouts and expiry sweeps due by now. Due at ``ClusterNode/nextTickDeadline`` at the latest.
    case tick
    /// The application writes `operation` to a session with `concern` (nil: the configured
    /// default). Completes with exactly one ``Effect/completeWrite(_:_:)`` for `requestID`.
    /// Past `deadline` (wall clock), the owner refuses it unapplied.
    case write(WriteOperation, to: SessionID, concern: WriteConcern?, requestID: RequestID, deadline: Timestamp? = nil)
    /// The application reads a session; with `touch` false its last-access time stays as it
    /// is. Completes with exactly one ``Effect/completeRead(_:_:)`` for `requestID`.
    case read(SessionID, touch: Bool, requestID: RequestID)
    /// The end of an event-loop turn: send now the deltas that acknowledged writes wait for
    /// (group commit, see `flushForWaitingWrites`).
    case endOfTurn
    /// Leave the cluster gracefully: the leader hands this node's partitions over.
    case leave
}

extension ClusterNode {
    /// Handles one input at the core's (monotonic) `now`, appending what the node asks the
    /// world to do to `effects`: a caller that keeps one buffer across calls allocates no
    /// array per input.
    package func handle(_ input: Input, now: Timestamp, into effects: inout [Effect]) {
        switch input {
        case .start: start(now: now, into: &effects)
        case .message(let message): receive(message, now: now, into: &effects)
        case .tick: tick(now: now, into: &effects)
        case .write(let operation, let session, let concern, let requestID, let deadline):
            write(operation, to: session, concern: concern, requestID: requestID, deadline: deadline, now: now, into: &effects)
        case .read(let session, let touch, let requestID): read(session, touch: touch, requestID: requestID, now: now, into: &effects)
        case .endOfTurn: flushForWaitingWrites(now: now, into: &effects)
        case .leave: leave(now: now, into: &effects)
        }
    }

    /// ``handle(_:now:into:)`` with a fresh buffer.
    package func handle(_ input: Input, now: Timestamp) -> [Effect] {
        var effects = [Effect]()
        handle(input, now: now, into: &effects)
        return effects
    }
}
