#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why the store refused an operation. Every refusal leaves the stored session as it was.
public enum SessionStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// One attribute's encoded value is over ``SessionLimits/maxAttributeBytes``.
    case attributeTooLarge(name: String, bytes: Int, limit: Int)
    /// The session's attributes together are over ``SessionLimits/maxSessionBytes``.
    case sessionTooLarge(bytes: Int, limit: Int)
    /// The session would have more than ``SessionLimits/maxAttributesPerSession`` attributes.
    case tooManyAttributes(count: Int, limit: Int)
    /// The store already holds ``SessionLimits/maxSessions`` sessions.
    case tooManySessions(limit: Int)
    /// No session has this id.
    case sessionNotFound(SessionID)
    /// The session has ended (invalidated, expired or rotated) and cannot be used again.
    case sessionEnded(SessionID, InvalidationReason)
    /// A session with this id exists already.
    case duplicateID(SessionID)
    /// The store's sessions already take ``SessionLimits/maxStoreBytes``: a write that would
    /// add more is refused until expiry or ends free some (a 503, not a crash).
    case storeFull(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .attributeTooLarge(let name, let bytes, let limit):
            "attribute '\(name)' is \(bytes) bytes, over the limit of \(limit)"
        case .sessionTooLarge(let bytes, let limit):
            "session would be \(bytes) bytes, over the limit of \(limit)"
        case .tooManyAttributes(let count, let limit):
            "session would have \(count) attributes, over the limit of \(limit)"
        case .tooManySessions(let limit):
            "the store holds its limit of \(limit) sessions"
        case .sessionNotFound(let id):
            "no session \(id.redacted)"
        case .sessionEnded(let id, let reason):
            "session \(id.redacted) has ended (\(reason))"
        case .duplicateID(let id):
            "session \(id.redacted) exists already"
        case .storeFull(let bytes, let limit):
            "the store's sessions take \(bytes) bytes, at its budget of \(limit)"
        }
    }
}

/// Size and count limits, enforced on every write with a ``SessionStoreError``.
public struct SessionLimits: Hashable, Sendable {
    /// The largest encoded attribute value. Default 64 KiB.
    public var maxAttributeBytes: Int
    /// The largest session (attribute names plus values). Default 512 KiB.
    public var maxSessionBytes: Int
    /// The most attributes in one session. Default 1,024.
    public var maxAttributesPerSession: Int
    /// The most live sessions in one store. Default 2,000,000.
    public var maxSessions: Int
    /// The memory budget of the store's sessions: attribute names and values plus
    /// ``sessionOverheadBytes`` per live session, for every session this node holds (owned
    /// and backed up). A create or a write that would grow past it is refused with
    /// ``SessionStoreError/storeFull(bytes:limit:)`` (HTTP 503 with `Retry-After`), so a
    /// flood of sessions gets refusals instead of the process being killed; removals and
    /// ends always pass, and replicas never refuse their owner's deltas. Default: half of
    /// the machine's physical memory.
    public var maxStoreBytes: Int

    /// What one live session is counted for besides its attributes: its id, metadata,
    /// table slot and buffer headers (measured at about 300 bytes with 1 KB of attributes).
    public static let sessionOverheadBytes = 256

    /// Half of the machine's physical memory (1 GiB when it cannot be read).
    public static var defaultMaxStoreBytes: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return 1 << 30 }
        return pages.multipliedReportingOverflow(by: pageSize).overflow ? Int.max / 2 : pages * pageSize / 2
    }

    /// Creates limits; every argument has a documented default.
    public init(
        maxAttributeBytes: Int = 64 * 1024, maxSessionBytes: Int = 512 * 1024,
        maxAttributesPerSession: Int = 1024, maxSessions: Int = 2_000_000, maxStoreBytes: Int = Self.defaultMaxStoreBytes
    ) {
        self.maxAttributeBytes = maxAttributeBytes
        self.maxSessionBytes = maxSessionBytes
        self.maxAttributesPerSession = maxAttributesPerSession
        self.maxSessions = maxSessions
        self.maxStoreBytes = maxStoreBytes
    }
}
