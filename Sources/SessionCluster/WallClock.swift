#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SessionCore

/// The real clock the runtime passes into the store and the protocol core. The core never
/// reads a clock itself; every `now` it sees comes from here.
enum WallClock {
    /// Milliseconds since the Unix epoch.
    static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(milliseconds: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}
