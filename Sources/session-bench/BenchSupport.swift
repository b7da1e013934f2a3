#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Metrics
import SessionCluster
import Synchronization

// Helpers of `session-bench`: the fixture sessions, percentiles, RSS and load
// average, the byte counters (a swift-metrics factory), free ports and child processes.

enum BenchLog {
    /// One line on stderr, with the load average, flushed at once.
    static func say(_ line: String) {
        FileHandle.standardError.write(Data("[bench] \(line)\n".utf8))
    }

    static func figure(_ line: String) {
        say("\(line)   (load \(loadAverageText()))")
    }

    static func loadAverage() -> [Double] {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return [] }
        return text.split(separator: " ").prefix(3).compactMap { Double($0) }
    }

    static func loadAverageText() -> String {
        loadAverage().map { String(format: "%.2f", $0) }.joined(separator: " ")
    }
}

/// The sample sessions of `Benchmarks/peer/samples`, the ones the Redis side stores as hashes.
struct BenchFixture: Sendable {
    /// Attribute name to UTF-8 value, as in the JSON file.
    let fields: [(String, String)]
    /// Size of the session as compact JSON (what redis_peer.py calls the payload).
    let jsonBytes: Int

    /// Sum of names and values: what the store holds as attributes.
    var keyValueBytes: Int { fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count } }

    static func load(_ name: String, repo: URL) throws -> BenchFixture {
        let url = repo.appendingPathComponent("Benchmarks/peer/samples/\(name)")
        let data = try Data(contentsOf: url)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw BenchError("\(url.path) is not a JSON object")
        }
        let fields = object.keys.sorted().map { key -> (String, String) in
            let value = object[key]
            return (key, value as? String ?? "\(value ?? "")")
        }
        let compact = try JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])
        return BenchFixture(fields: fields, jsonBytes: compact.count)
    }

    /// The attributes of one session. Every value is a fresh buffer (no storage shared with
    /// other sessions, as after decoding from the wire); `unique` is written into the start
    /// of `user_id` so sessions differ.
    func attributes(unique: Int) -> [String: AttributeValue] {
        var result: [String: AttributeValue] = [:]
        result.reserveCapacity(fields.count)
        for (name, value) in fields {
            var bytes = [UInt8](value.utf8)
            if name == "user_id" {
                let tag = Array(String(unique).utf8)
                for (i, b) in tag.enumerated() where i < bytes.count { bytes[bytes.count - tag.count + i] = b }
            }
            result[name] = AttributeValue(encoding: .utf8, bytes: bytes)
        }
        return result
    }
}

/// The 100-byte `flash` value every update writes, with `n` written into it so that
/// consecutive updates differ.
enum FlashValue {
    static let text = #"{"level":"info","text":"Added to your cart: Merino wool crew socks, charcoal, size M (qty 2)","n":1}"#

    static func bytes(_ n: Int) -> [UInt8] {
        var bytes = Array(text.utf8)
        let digits = Array(String(n % 100_000_000).utf8)
        // Overwrite the tail of the text ("...(qty 2)") with the counter, keeping 100 bytes.
        let end = bytes.count - 10
        for (i, d) in digits.enumerated() { bytes[end - digits.count + i] = d }
        return bytes
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Percentiles {
    /// Nearest-rank percentile of sorted nanosecond samples, in microseconds.
    static func microseconds(_ sorted: [UInt32], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))
        return Double(sorted[rank]) / 1000
    }
}

extension Duration {
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}

enum ProcessMemory {
    /// Resident set size from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

enum ProcessCPU {
    /// CPU time (user + system, every thread) this process has used. On a shared machine
    /// the CPU an operation costs varies far less than the operations per second.
    static func seconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

/// Counts `session_cluster_bytes_sent_total{stage="wire"}` of every node in this process:
/// the runtime exports its byte counters only through swift-metrics, so the bench installs
/// this factory and reads the sums.
final class ByteCounters: MetricsFactory, Sendable {
    static let shared = ByteCounters()
    private let perNode = Mutex<[String: WireCounter]>([:])

    final class WireCounter: CounterHandler, Sendable {
        let total = Atomic<Int64>(0)
        func increment(by amount: Int64) { total.add(amount, ordering: .relaxed) }
        func reset() { total.store(0, ordering: .relaxed) }
    }

    /// Wire bytes sent so far by the nodes whose id starts with `prefix`.
    func wireBytesSent(prefix: String) -> Int64 {
        perNode.withLock { counters in
            counters.filter { $0.key.hasPrefix(prefix) }.values.reduce(0) { $0 + $1.total.load(ordering: .relaxed) }
        }
    }

    /// Frames (key `frames`) and messages by type sent so far by the nodes whose id starts
    /// with `prefix`, from `session_cluster_frames_sent_total` and `..._messages_sent_total`.
    func messagesSent(prefix: String) -> [String: Int64] {
        perNode.withLock { counters in
            var sums: [String: Int64] = [:]
            for (key, counter) in counters where key.hasPrefix("#") {
                let fields = key.dropFirst().split(separator: "|", omittingEmptySubsequences: false)
                guard fields.count == 2, fields[0].hasPrefix(prefix) else { continue }
                sums[String(fields[1]), default: 0] += counter.total.load(ordering: .relaxed)
            }
            return sums
        }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        if label == "session_cluster_frames_sent_total" || label == "session_cluster_messages_sent_total",
            let node = dimensions.first(where: { $0.0 == "node" })?.1
        {
            // Keyed "#node|type"; the "#" keeps them apart from the byte counters.
            let type = dimensions.first(where: { $0.0 == "type" })?.1 ?? "frames"
            return counter(key: "#\(node)|\(type)")
        }
        guard label == "session_cluster_bytes_sent_total", dimensions.contains(where: { $0 == ("stage", "wire") }),
            let node = dimensions.first(where: { $0.0 == "node" })?.1
        else { return NOOPMetricsHandler.instance }
        // Each (node, peer) pair gets its own counter; key by both and sum by node prefix.
        let peer = dimensions.first(where: { $0.0 == "peer" })?.1 ?? ""
        return counter(key: "\(node)|\(peer)")
    }

    private func counter(key: String) -> WireCounter {
        perNode.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = WireCounter()
            counters[key] = counter
            return counter
        }
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        NOOPMetricsHandler.instance
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        NOOPMetricsHandler.instance
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
