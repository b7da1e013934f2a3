import ClusterProtocol
import SessionCore
import WireFormat

/// Why a ``SessionCluster`` call failed. Every case has a stable meaning, so an HTTP layer
/// can map it to a status once (see ``SessionClusterError/isClientError``).
public enum SessionClusterError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The store refused the operation: a limit, an unknown session or an ended one. The
    /// stored session is unchanged.
    case refused(SessionStoreError)
    /// This node is not in a view with a valid lease (it is cut off from the majority), so it
    /// may not acknowledge writes. Another node may succeed.
    case notInMajority
    /// Fewer replicas than the write concern asked for applied the write in time. The write
    /// may still become visible; it is not acknowledged.
    case replicationTimeout
    /// The session's owner could not be reached in time.
    case ownerUnreachable
    /// The view changed while the request was in flight, or the owner was still waiting for
    /// a lease (its first, or the next leader's after its leader died), for longer than the
    /// node's own retries (as long as an election can take: 1 s by default); retrying is safe.
    case viewChanged
    /// The write's deadline (``SessionCluster/withWriteDeadline(_:isolation:operation:)``)
    /// passed before the session's owner could apply it, so it was not applied: the load
    /// balancer has given up on the request, and a copy it sent elsewhere must not be
    /// overwritten later. (Should an earlier attempt have been interrupted by a view change,
    /// whose outcome is unknown, the error is ``viewChanged`` instead.)
    case deadlineExceeded
    /// The cluster is not running (not started yet, or shut down).
    case notRunning
    /// The configuration cannot work (for example a cluster key shorter than 16 bytes);
    /// found when the cluster is created, before any socket is opened.
    case invalidConfiguration(String)

    /// Maps the wire layer's refusal of a key to the public error.
    init(_ error: ClusterKeyError) {
        self = .invalidConfiguration(error.description)
    }

    /// Maps the protocol core's failure to the public error.
    init(_ failure: ClusterFailure) {
        switch failure {
        case .store(let error): self = .refused(error)
        case .notInMajority: self = .notInMajority
        case .replicationTimeout: self = .replicationTimeout
        case .ownerUnreachable: self = .ownerUnreachable
        case .retry: self = .viewChanged
        case .deadlineExceeded: self = .deadlineExceeded
        }
    }

    /// True when the request itself was at fault (a limit, an unknown or ended session), as
    /// opposed to the cluster being unable to serve it right now.
    public var isClientError: Bool {
        guard case .refused(let error) = self else { return false }
        switch error {
        case .tooManySessions, .storeFull: return false
        default: return true
        }
    }

    /// The HTTP status a web framework answers with when this error ends a request: 401 for
    /// an unknown or ended session, 413 for a size or count limit, 409 for a taken id, 503
    /// when the cluster cannot serve right now (see ``retryAfterSeconds``). Never 500: each
    /// case is an expected condition, except a configuration that cannot work.
    public var httpStatus: Int {
        switch self {
        case .refused(.sessionNotFound), .refused(.sessionEnded): 401
        case .refused(.attributeTooLarge), .refused(.sessionTooLarge), .refused(.tooManyAttributes): 413
        case .refused(.duplicateID): 409
        case .refused, .notInMajority, .replicationTimeout, .ownerUnreachable, .viewChanged, .deadlineExceeded, .notRunning: 503
        case .invalidConfiguration: 500
        }
    }

    /// For a 503, the seconds after which a retry may succeed (`Retry-After`): a view change
    /// or a failover settles within about a second.
    public var retryAfterSeconds: Int? { httpStatus == 503 ? 1 : nil }

    /// A one-line explanation (never a whole session id).
    public var description: String {
        switch self {
        case .refused(let error): "refused: \(error)"
        case .notInMajority: "this node is not in the majority; it cannot acknowledge writes"
        case .replicationTimeout: "not enough replicas acknowledged the write in time"
        case .ownerUnreachable: "the session's owner could not be reached"
        case .viewChanged: "the cluster view changed during the request; retry"
        case .deadlineExceeded: "the request's deadline passed before the write could be applied; it was not applied"
        case .notRunning: "the session cluster is not running"
        case .invalidConfiguration(let reason): "invalid configuration: \(reason)"
        }
    }
}
