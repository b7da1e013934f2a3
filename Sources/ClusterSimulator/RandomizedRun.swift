@_spi(Testing) import ClusterProtocol
import SessionCore

/// One randomized run of the sweep: form a cluster, run traffic through one fault episode
/// over lossy links, heal, and check that the cluster settles and lost nothing.
///
/// A run lasts about 3 to 5 seconds of virtual time:
/// 1. all nodes start; the cluster must form within 3 s;
/// 2. 1.2 s of traffic (creates, single-attribute updates, reads, invalidations,
///    rotations; 90 % with `.replicated(1)`) through random nodes, over links that drop,
///    duplicate and delay datagrams and now and then reset a stream; during it, one fault
///    episode chosen by the seed: a crash (maybe a restart with empty memory), a pause, a
///    symmetric partition of a minority, a one-way cut, or a clock jump, hitting the leader
///    about a third of the time. One episode loses at most one node's memory, within the
///    R - 1 = 1 failures I1 promises to survive;
/// 3. heal: links restored, paused nodes resumed, crashed ones restarted, message faults off;
///    the cluster must be stable (one leader, one view of every node, all partitions filled,
///    queues empty) within ``settleBoundMilliseconds`` (I3's bound), then the final checks run.
public struct RandomizedRun {
    /// The bound on convergence after the network heals (I3).
    public static let settleBoundMilliseconds: Int64 = 8_000

    /// What a run did.
    public struct Report: Sendable {
        public var seed: UInt64
        public var nodes: Int
        public var steps: Int
        public var virtualMilliseconds: Int64
        public var acknowledgedWrites: Int
        public var fault: String
        /// Times a queue to a peer overflowed and fell back to snapshots (I6 at work).
        public var queueOverflows: Int
        public var violations: [String]
        /// The one-line command that replays this run.
        public var replayCommand: String {
            "SIM_SEED=\(seed) SIM_NODES=\(nodes) swift test --filter ClusterProtocolTests.replaySeed"
        }
    }

    /// Runs the seed.
    public static func run(seed: UInt64, nodes: Int, broken: Bool = false, trace: ((String) -> Void)? = nil) -> Report {
        var configuration = SimulationConfiguration(nodes: nodes, seed: seed)
        configuration.trace = trace
        configuration.faults = .lossy
        configuration.brokenAcknowledgeBeforeReplication = broken
        // Half the seeds ship deltas at the end of each turn (the runtime's path), half only
        // on the flush timer, so both schedules are swept.
        configuration.flushAtEndOfTurn = seed % 2 == 0
        let simulation = Simulation(configuration)
        var random = SeededRandom(seed: seed ^ 0x5EED)
        let start = simulation.now
        var fault = "none"
        func report() -> Report {
            Report(
                seed: seed, nodes: nodes, steps: simulation.steps, virtualMilliseconds: simulation.now.milliseconds(since: start),
                acknowledgedWrites: simulation.checker.acknowledgedWrites, fault: fault,
                queueOverflows: simulation.nodes.reduce(0) { $0 + ($1.node?.queueOverflowCount ?? 0) },
                violations: simulation.checker.violations)
        }

        simulation.startAll()
        guard simulation.run(until: { $0.isStable }, within: 3_000, every: 20) else {
            simulation.checker.fail("the cluster did not form within 3 s")
            return report()
        }

        // Traffic with one fault episode.
        var sessions: [SessionID] = []
        var value = 0
        let trafficEnd = simulation.now.adding(milliseconds: 1_200)
        let faultAt = simulation.now.adding(milliseconds: Int64.random(in: 100...600, using: &random))
        let faultKind = Int.random(in: 0..<6, using: &random)
        var faultDone = false
        var crashed: Int?
        while simulation.now < trafficEnd, simulation.checker.violations.isEmpty {
            if !faultDone, simulation.now >= faultAt {
                faultDone = true
                fault = injectFault(faultKind, into: simulation, random: &random, crashed: &crashed)
                trace?("\(simulation.now.milliseconds - 1_000_000) FAULT \(fault)")
            }
            let live = simulation.liveIndices
            if let through = live.randomElement(using: &random) {
                let roll = Int.random(in: 0..<100, using: &random)
                let concern: WriteConcern? = Int.random(in: 0..<10, using: &random) == 0 ? .local : nil
                value += 1
                let attribute = "a\(Int.random(in: 0..<3, using: &random))"
                let changes = SessionChanges(updated: [attribute: AttributeValue(string: "v\(value)")])
                if roll < 15 || sessions.count < 4 {
                    let id = SessionID.random(using: &random)
                    sessions.append(id)
                    let metadata = SessionMetadata(createdAt: simulation.localTime(through), maxInactiveMilliseconds: 3_600_000, stamp: 1)
                    simulation.write(through: through, .create(metadata, changes), to: id, concern: concern)
                } else if roll < 70 {
                    simulation.write(through: through, .update(changes), to: sessions.randomElement(using: &random)!, concern: concern)
                } else if roll < 93 {
                    simulation.read(through: through, sessions.randomElement(using: &random)!)
                } else if roll < 97 {
                    simulation.write(through: through, .invalidate, to: sessions.randomElement(using: &random)!, concern: concern)
                } else {
                    let newID = SessionID.random(using: &random)
                    sessions.append(newID)
                    simulation.write(through: through, .rotate(to: newID), to: sessions.randomElement(using: &random)!, concern: concern)
                }
            }
            simulation.run(for: Int64.random(in: 1...6, using: &random))
        }
        guard simulation.checker.violations.isEmpty else { return report() }

        // Heal and settle.
        simulation.faults = .none
        simulation.heal()
        for index in simulation.nodes.indices {
            if simulation.nodes[index].paused { simulation.resume(node: index) }
            if simulation.nodes[index].node == nil { simulation.start(node: index) }
        }
        let healedAt = simulation.now
        trace?("\(simulation.now.milliseconds - 1_000_000) HEAL")
        let settled = simulation.run(until: { $0.isStable }, within: settleBoundMilliseconds, every: 50)
        guard simulation.checker.violations.isEmpty else { return report() }
        guard settled else {
            simulation.checker.fail("I3: not stable \(settleBoundMilliseconds) ms after healing (\(describe(simulation)))")
            return report()
        }
        // Let every request time out or finish, then check the stores.
        let writeTimeout = simulation.nodes[0].node?.configuration.writeTimeoutMilliseconds ?? 2_000
        // A clock set back by a jump makes that node's deadlines later by as much.
        let setBack = simulation.nodes.map { max(0, -$0.clockOffset) }.max() ?? 0
        let quiet = healedAt.adding(milliseconds: writeTimeout + 200 + setBack).milliseconds(since: simulation.now)
        if quiet > 0 { simulation.run(for: quiet) }
        simulation.run(until: { $0.isStable }, within: 2_000, every: 50)
        simulation.checker.checkFinal()
        if let session = simulation.checker.problemSession, let trace {
            for entry in simulation.nodes {
                trace("\(entry.id) holds \(String(describing: entry.node?.store.snapshot(session)))")
            }
        }
        return report()
    }

    static func injectFault(_ kind: Int, into simulation: Simulation, random: inout SeededRandom, crashed: inout Int?) -> String {
        let count = simulation.nodes.count
        let hitLeader = Int.random(in: 0..<3, using: &random) == 0
        let victim = hitLeader ? (simulation.leader ?? 0) : Int.random(in: 0..<count, using: &random)
        let duration = Int64.random(in: 200...1_500, using: &random)
        let at = simulation.now.adding(milliseconds: duration)
        switch kind {
        case 0:
            simulation.crash(node: victim)
            crashed = victim
            if Bool.random(using: &random) {
                simulation.schedule(at: at) { $0.start(node: victim) }
                return "crash n\(victim + 1), restart empty after \(duration) ms"
            }
            return "crash n\(victim + 1)"
        case 1:
            simulation.pause(node: victim)
            simulation.schedule(at: at) { $0.resume(node: victim) }
            return "pause n\(victim + 1) for \(duration) ms"
        case 2:
            let minority = Int.random(in: 1...max(1, (count - 1) / 2), using: &random)
            var side = [victim]
            for index in (0..<count).shuffled(using: &random) where side.count < minority && index != victim { side.append(index) }
            let rest = (0..<count).filter { !side.contains($0) }
            simulation.partition(side, from: rest)
            simulation.schedule(at: at) { $0.heal() }
            return "partition \(side.map { "n\($0 + 1)" }) | rest for \(duration) ms"
        case 3:
            let rest = (0..<count).filter { $0 != victim }
            let outbound = Bool.random(using: &random)
            if outbound { simulation.cutOneWay(from: [victim], to: rest) } else { simulation.cutOneWay(from: rest, to: [victim]) }
            simulation.schedule(at: at) { $0.heal() }
            return "one-way cut \(outbound ? "from" : "to") n\(victim + 1) for \(duration) ms"
        case 4:
            let jump = Int64.random(in: -1_500...1_500, using: &random)
            simulation.jumpClock(node: victim, by: jump)
            return "clock of n\(victim + 1) jumps \(jump) ms"
        default:
            return "message faults only"
        }
    }

    static func describe(_ simulation: Simulation) -> String {
        simulation.nodes.map { entry in
            guard let node = entry.node else { return "\(entry.id): down" }
            return "\(entry.id): \(node.currentRole) t\(node.currentTerm) e\(node.installedView?.epoch ?? 0) ready=\(node.isReady) filled=\(node.isFilled) q=\(node.queuedBytesHighWater)"
        }.joined(separator: "; ")
    }
}
