/// A point in time in milliseconds, passed into the store and the protocol core as a value.
///
/// The core never reads a clock: the runtime passes the wall clock, the simulator passes
/// virtual time. Milliseconds are precise enough for session expiry and failure detection
/// and keep arithmetic on plain integers.
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Milliseconds since an origin chosen by the caller (the Unix epoch in the runtime).
    public var milliseconds: Int64

    /// Creates a timestamp from milliseconds since the caller's origin.
    public init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// The origin itself.
    public static let zero = Timestamp(milliseconds: 0)

    /// This timestamp moved by `milliseconds` (negative moves back).
    public func adding(milliseconds delta: Int64) -> Timestamp {
        Timestamp(milliseconds: milliseconds &+ delta)
    }

    /// Milliseconds from `earlier` to this timestamp.
    public func milliseconds(since earlier: Timestamp) -> Int64 {
        milliseconds &- earlier.milliseconds
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.milliseconds < rhs.milliseconds
    }

    public var description: String { "\(milliseconds)ms" }
}

extension Duration {
    /// This duration in whole milliseconds, rounded down.
    package var wholeMilliseconds: Int64 {
        let parts = components
        return parts.seconds &* 1000 &+ parts.attoseconds / 1_000_000_000_000_000
    }
}
