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

    /// Creates limits; every argument has a documented default.
    public init(
        maxAttributeBytes: Int = 64 * 1024, maxSessionBytes: Int = 512 * 1024,
        maxAttributesPerSession: Int = 1024, maxSessions: Int = 2_000_000
    ) {
        self.maxAttributeBytes = maxAttributeBytes
        self.maxSessionBytes = maxSessionBytes
        self.maxAttributesPerSession = maxAttributesPerSession
        self.maxSessions = maxSessions
    }
}
