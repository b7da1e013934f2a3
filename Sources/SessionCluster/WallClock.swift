#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SessionCore

/// The wall clock: sessions' times (creation, last access, expiry), which every node must
/// agree on. The core never reads a clock itself; it is handed this through
/// `ClusterNode.sessionClock`, and ``MonotonicClock`` for everything else.
package enum WallClock {
    /// Milliseconds since the Unix epoch.
    package static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}

/// The clock of the protocol's timing: heartbeats, failure detection, elections, leases,
/// timers. It never steps (it is slewed by NTP, never set), so an operator or NTP setting
/// the wall clock moves no lease and declares no peer silent. On Linux it is
/// CLOCK_BOOTTIME, which keeps counting while the machine or VM is suspended: a member
/// that wakes up sees its lease as lapsed, as the leader (whose clock ran on) does, rather
/// than acknowledging writes on a lease the leader has already given up on. Its values mean
/// nothing across nodes, and the protocol never compares them across nodes.
enum MonotonicClock {
    /// Milliseconds since an arbitrary point (the machine's boot).
    static func now() -> Timestamp {
        var spec = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_BOOTTIME, &spec)
        #else
        clock_gettime(CLOCK_MONOTONIC, &spec)
        #endif
        return Timestamp(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}
