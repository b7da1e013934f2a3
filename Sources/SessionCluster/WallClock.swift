#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SessionCore

/// The wall clock: sessions' times (creation, last access, expiry), which every node must
/// agree on. The core never reads a clock itself; it is handed this through
/// `ClusterNode.sessionClock`, and ``MonotonicClock`` for everything else.
enum WallClock {
    /// Milliseconds since the Unix epoch.
    static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}

/// The clock of the protocol's timing: heartbeats, failure detection, elections, leases,
/// timers. It never steps (CLOCK_MONOTONIC is slewed by NTP, not set), so an operator or
/// NTP setting the wall clock moves no lease and declares no peer silent. Its values mean
/// nothing across nodes, and the protocol never compares them across nodes.
enum MonotonicClock {
    /// Milliseconds since an arbitrary point (the machine's boot).
    static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Timestamp(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}
