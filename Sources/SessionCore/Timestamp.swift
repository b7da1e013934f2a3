import Foundation

/// A point in time in whole milliseconds, passed into the store and the protocol core as a
/// value.
///
/// A session's times (``Session/createdAt``, ``Session/lastAccessedAt``,
/// ``Session/expiresAt``) are on the wall clock: convert with ``date`` and ``init(_:)``,
/// and move them by a `Duration`. The core never reads a clock: the runtime passes the
/// wall clock for session expiry and a monotonic clock for leases and failure detection;
/// the simulator passes virtual time.
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Milliseconds since an origin chosen by the caller (the Unix epoch for session times).
    package var milliseconds: Int64

    /// Creates a timestamp from milliseconds since the caller's origin.
    package init(milliseconds: Int64) {
        self.milliseconds = milliseconds
    }

    /// The wall-clock instant `date`, rounded down to the millisecond.
    public init(_ date: Date) {
        // To the nearest microsecond first: a Date counts seconds from 2001 in a Double, so
        // the instant `date` of a timestamp may sit a hair below its millisecond.
        let microseconds = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        let (quotient, remainder) = microseconds.quotientAndRemainder(dividingBy: 1000)
        self.init(milliseconds: remainder < 0 ? quotient - 1 : quotient)
    }

    /// This wall-clock timestamp as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: Double(milliseconds) / 1000) }

    /// The origin itself.
    public static let zero = Timestamp(milliseconds: 0)

    /// This timestamp moved by `milliseconds` (negative moves back).
    package func adding(milliseconds delta: Int64) -> Timestamp {
        Timestamp(milliseconds: milliseconds &+ delta)
    }

    /// Milliseconds from `earlier` to this timestamp.
    package func milliseconds(since earlier: Timestamp) -> Int64 {
        milliseconds &- earlier.milliseconds
    }

    /// `timestamp` moved by `duration`, in whole milliseconds (truncated toward zero).
    public static func + (timestamp: Timestamp, duration: Duration) -> Timestamp {
        timestamp.adding(milliseconds: duration.wholeMilliseconds)
    }

    /// The time from `earlier` to `later`.
    public static func - (later: Timestamp, earlier: Timestamp) -> Duration {
        .milliseconds(later.milliseconds(since: earlier))
    }

    /// Earlier first.
    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.milliseconds < rhs.milliseconds
    }

    /// Milliseconds since the origin, e.g. `1765238400000ms`.
    public var description: String { "\(milliseconds)ms" }
}

extension Duration {
    /// This duration in whole milliseconds, truncated toward zero.
    package var wholeMilliseconds: Int64 {
        let parts = components
        return parts.seconds &* 1000 &+ parts.attoseconds / 1_000_000_000_000_000
    }
}
