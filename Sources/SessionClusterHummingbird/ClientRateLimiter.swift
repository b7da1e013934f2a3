import Synchronization

/// A token bucket per client: each client may do `ratePerSecond` things a second on average
/// and `burst` at once. The table of clients is bounded: past ``maxClients`` the client
/// seen least recently is forgotten (its next request starts from a full bucket), so a
/// flood of new client keys costs a fixed amount of memory and O(1) work per request.
public final class ClientRateLimiter: Sendable {
    /// What ``admit(_:)`` decided.
    public enum Decision: Equatable, Sendable {
        /// The client had a token; it was taken.
        case allowed
        /// The client's bucket is empty; a token is back after this many seconds (at least 1).
        case limited(retryAfterSeconds: Int)
    }

    /// Tokens added to each bucket per second.
    public let ratePerSecond: Double
    /// The size of each bucket: how many requests a client that was quiet may make at once.
    public let burst: Double
    /// The most clients remembered at once.
    public let maxClients: Int
    /// The longest client key kept; longer keys are cut (a forwarded header is the client's text).
    public static let maxKeyBytes = 64

    private let now: @Sendable () -> Duration
    private let table: Mutex<LRUBuckets>

    /// Creates a limiter.
    ///
    /// - Parameters:
    ///   - ratePerSecond: Tokens per second per client; positive.
    ///   - burst: The bucket size; default `ratePerSecond` (at least 1).
    ///   - maxClients: The most clients remembered; default 10,000.
    ///   - now: A monotonic clock (time since any fixed origin); tests pass their own.
    public init(
        ratePerSecond: Double, burst: Double? = nil, maxClients: Int = 10_000,
        now: @escaping @Sendable () -> Duration = ClientRateLimiter.monotonicNow
    ) {
        precondition(ratePerSecond > 0 && ratePerSecond.isFinite, "ratePerSecond must be positive")
        precondition(maxClients >= 1, "maxClients must be at least 1")
        self.ratePerSecond = ratePerSecond
        self.burst = max(1, burst ?? ratePerSecond)
        self.maxClients = maxClients
        self.now = now
        self.table = Mutex(LRUBuckets(capacity: maxClients))
    }

    /// Time on the monotonic clock since the first call in this process.
    public static let monotonicNow: @Sendable () -> Duration = {
        let origin = ContinuousClock.now
        return { ContinuousClock.now - origin }
    }()

    /// Takes a token from `client`'s bucket, or says how long until there is one.
    public func admit(_ client: String) -> Decision {
        let key = client.utf8.count <= Self.maxKeyBytes ? client : String(decoding: client.utf8.prefix(Self.maxKeyBytes), as: UTF8.self)
        let at = Self.seconds(now())
        let (rate, burst) = (ratePerSecond, self.burst)
        return table.withLock { table in
            var tokens = burst
            if let bucket = table.value(for: key) {
                tokens = min(burst, bucket.tokens + max(0, at - bucket.updated) * rate)
            }
            if tokens >= 1 {
                table.set(key, tokens: tokens - 1, at: at)
                return .allowed
            }
            table.set(key, tokens: tokens, at: at)
            return .limited(retryAfterSeconds: max(1, Int(((1 - tokens) / rate).rounded(.up))))
        }
    }

    /// Clients remembered now (at most ``maxClients``).
    public var trackedClients: Int { table.withLock { $0.count } }

    private static func seconds(_ duration: Duration) -> Double {
        let (s, attoseconds) = duration.components
        return Double(s) + Double(attoseconds) / 1e18
    }
}

/// Buckets by key with least-recently-used eviction: a dictionary of slot indices and a
/// doubly linked list through the slots, most recent at the head.
struct LRUBuckets {
    private struct Slot {
        var key: String
        var tokens: Double
        var updated: Double
        var previous: Int
        var next: Int
    }

    private let capacity: Int
    private var index: [String: Int] = [:]
    private var slots: [Slot] = []
    private var head = -1
    private var tail = -1

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { index.count }

    func value(for key: String) -> (tokens: Double, updated: Double)? {
        guard let i = index[key] else { return nil }
        return (slots[i].tokens, slots[i].updated)
    }

    /// Stores `key`'s bucket as the most recently used, evicting the least recently used
    /// key when a new one would pass the capacity.
    mutating func set(_ key: String, tokens: Double, at updated: Double) {
        if let i = index[key] {
            slots[i].tokens = tokens
            slots[i].updated = updated
            unlink(i)
            pushFront(i)
            return
        }
        let i: Int
        if slots.count < capacity {
            i = slots.count
            slots.append(Slot(key: key, tokens: tokens, updated: updated, previous: -1, next: -1))
        } else {
            i = tail
            unlink(i)
            index[slots[i].key] = nil
            slots[i] = Slot(key: key, tokens: tokens, updated: updated, previous: -1, next: -1)
        }
        index[key] = i
        pushFront(i)
    }

    private mutating func unlink(_ i: Int) {
        let (previous, next) = (slots[i].previous, slots[i].next)
        if previous >= 0 { slots[previous].next = next } else { head = next }
        if next >= 0 { slots[next].previous = previous } else { tail = previous }
        slots[i].previous = -1
        slots[i].next = -1
    }

    private mutating func pushFront(_ i: Int) {
        slots[i].next = head
        slots[i].previous = -1
        if head >= 0 { slots[head].previous = i }
        head = i
        if tail < 0 { tail = i }
    }
}
