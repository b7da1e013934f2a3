import ClusterSimulator
import Foundation
import Synchronization
import Testing

/// The randomized sweep: 2,001 seeds, a third each on 3, 5 and 7 nodes, every run of the
/// suite. Each seed forms a cluster, runs traffic through one fault episode over lossy
/// links, heals, and must reach steady state within
/// ``RandomizedRun/steadyStateBoundMilliseconds`` and keep it (L1), with I1 to I7 holding
/// (see ``RandomizedRun``). A failure names the seed and the command that replays it.
@Suite struct SweepTests {
    static let seeds: ClosedRange<UInt64> = 1...2_001
    static let chunks = 12
    static let nodeCounts = [3, 5, 7]
    static let totals = Mutex(
        (runs: 0, steps: 0, virtualMilliseconds: Int64(0), acknowledged: 0, refused: 0, chunks: 0, healToSteady: [Int64]()))

    /// The transport model runs use: the runtime's, or a broken one named by
    /// `SIM_BROKEN=endpoint|links` (to see which seeds catch it).
    static var transport: TransportModel {
        switch ProcessInfo.processInfo.environment["SIM_BROKEN"] {
        case "endpoint": .brokenEndpointClosedForGood
        case "links": .brokenLinksNeverReconnect
        default: .runtime
        }
    }

    /// Seed `s` runs on `nodeCounts[s % 3]` nodes.
    static func nodes(for seed: UInt64) -> Int { nodeCounts[Int(seed % UInt64(nodeCounts.count))] }

    @Test(arguments: 0..<chunks)
    func randomizedSeedsKeepEveryInvariant(chunk: Int) {
        let started = ContinuousClock.now
        var runs = 0, steps = 0, acknowledged = 0, refused = 0
        var virtual: Int64 = 0
        var healToSteady: [Int64] = []
        for seed in Self.seeds where Int(seed % UInt64(Self.chunks)) == chunk {
            let report = RandomizedRun.run(seed: seed, nodes: Self.nodes(for: seed), transport: Self.transport)
            runs += 1
            steps += report.steps
            virtual += report.virtualMilliseconds
            acknowledged += report.acknowledgedWrites
            refused += report.writesRefusedPastDeadline
            if let time = report.healToSteadyMilliseconds { healToSteady.append(time) }
            #expect(
                report.violations.isEmpty,
                "seed \(seed), \(report.nodes) nodes, fault: \(report.fault): \(report.violations.first ?? "")\n  replay: \(report.replayCommand)")
        }
        let elapsed = ContinuousClock.now - started
        let total = Self.totals.withLock { totals in
            totals.runs += runs
            totals.steps += steps
            totals.virtualMilliseconds += virtual
            totals.acknowledged += acknowledged
            totals.refused += refused
            totals.healToSteady += healToSteady
            totals.chunks += 1
            return totals
        }
        print("sweep chunk \(chunk): \(runs) seeds, \(steps) steps, \(virtual / 1000) s virtual, \(acknowledged) acknowledged writes, in \(elapsed)")
        if total.chunks == Self.chunks {
            print("sweep total: \(total.runs) seeds x nodes {3, 5, 7} (a third each), \(total.steps) steps, \(total.virtualMilliseconds / 1000) s virtual time, \(total.acknowledged) acknowledged writes checked, \(total.refused) writes refused past their deadline shown nowhere")
            let times = total.healToSteady.sorted()
            if !times.isEmpty {
                let at = { (fraction: Double) in times[min(times.count - 1, Int(Double(times.count) * fraction))] }
                print("sweep heal -> steady state (L1, bound \(RandomizedRun.steadyStateBoundMilliseconds) ms): median \(at(0.5)) ms, p99 \(at(0.99)) ms, max \(times.last!) ms over \(times.count) runs")
            }
        }
    }

    /// Two transports that do not recover from a local send error: the runtime before the
    /// fix of issue 12 (a refused heartbeat closed the UDP endpoint for good) and links that
    /// never reconnect. The same runs must catch each, as a liveness failure (L1).
    @Test(arguments: [TransportModel.brokenEndpointClosedForGood, .brokenLinksNeverReconnect])
    func sweepCatchesATransportThatDoesNotRecover(transport: TransportModel) {
        let caught = Self.firstViolations(upTo: 200) { RandomizedRun.run(seed: $0, nodes: Self.nodes(for: $0), transport: transport) }
        print("broken transport \(transport) caught by: \(caught.joined(separator: "\n  "))")
        #expect(!caught.isEmpty, "the sweep must catch a transport that does not recover")
        #expect(caught.allSatisfy { $0.contains("L1") }, "as a cluster that does not reach or keep steady state")
    }

    /// The deliberately broken variant acknowledges writes before any backup applied them.
    /// The same runs must catch it: an owner that crashes takes acknowledged writes with it.
    @Test func sweepCatchesAcknowledgingBeforeTheBackupApplied() {
        let caught = Self.firstViolations(upTo: 120) { RandomizedRun.run(seed: $0, nodes: Self.nodes(for: $0), broken: true) }
        print("broken variant caught by: \(caught.joined(separator: "\n  "))")
        #expect(!caught.isEmpty, "the sweep must catch writes acknowledged before replication")
        #expect(caught.contains { $0.contains("I1") || $0.contains("I4") }, "as a lost or unseen acknowledged write")
    }

    /// The first violation of each of the first three seeds in 1...`last` that `run` fails.
    static func firstViolations(upTo last: UInt64, _ run: (UInt64) -> RandomizedRun.Report) -> [String] {
        var caught: [String] = []
        for seed in UInt64(1)...last where caught.count < 3 {
            let report = run(seed)
            if let violation = report.violations.first { caught.append("seed \(seed)/\(report.nodes) [\(report.fault)]: \(violation)") }
        }
        return caught
    }
}

/// Replays one seed of the sweep: `SIM_SEED=123 SIM_NODES=5 swift test --filter ClusterProtocolTests.replaySeed`.
/// With `SIM_TRACE=1` it prints every delivery.
@Test(.enabled(if: ProcessInfo.processInfo.environment["SIM_SEED"] != nil))
func replaySeed() {
    let environment = ProcessInfo.processInfo.environment
    let seed = UInt64(environment["SIM_SEED"] ?? "") ?? 1
    let nodes = Int(environment["SIM_NODES"] ?? "") ?? SweepTests.nodes(for: seed)
    let trace: ((String) -> Void)? = environment["SIM_TRACE"] == "1" ? { print($0) } : nil
    let report = RandomizedRun.run(
        seed: seed, nodes: nodes, broken: environment["SIM_BROKEN"] == "1", transport: SweepTests.transport, trace: trace)
    print("seed \(seed), \(nodes) nodes, fault: \(report.fault), \(report.steps) steps, \(report.virtualMilliseconds) ms virtual")
    for violation in report.violations { print("  \(violation)") }
    #expect(report.violations.isEmpty)
}
