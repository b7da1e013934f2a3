import ClusterProtocol
import SessionCore

/// One randomized run of the sweep: form a cluster, run traffic through one fault episode
/// over lossy links, heal, and check that the cluster settles, stays settled and lost nothing.
///
/// A run lasts about 14 to 16 seconds of virtual time:
/// 1. all nodes start; the cluster must form within 3 s;
/// 2. 1.2 s of traffic (creates, single-attribute updates, reads, invalidations, rotations;
///    90 % with `.replicated(1)`; a quarter of the updates, invalidations and rotations with
///    a deadline 20 to 400 ms ahead) through random nodes, over links that drop,
///    duplicate and delay datagrams and now and then reset a stream; during it, one fault
///    episode chosen by the seed: a crash (maybe a restart with empty memory), a pause, a
///    symmetric partition of a minority, a one-way cut, a flapping link, or a clock jump,
///    hitting the leader about a third of the time. Half the cuts make the senders' own
///    sends fail (a firewall's DROP on output: EPERM), half lose packets silently. One
///    episode loses at most one node's memory, within the R - 1 = 1 failures I1 promises
///    to survive;
/// 3. heal: links restored, paused nodes resumed, crashed ones restarted, message faults off.
///    Liveness (L1): within ``steadyStateBoundMilliseconds`` the cluster must be stable (one
///    leader, one view of every node, all partitions filled, queues empty) and a write
///    through every live node acknowledged, with reads through every node agreeing; then
///    no node may start a new term, and the cluster must stay stable, for a further
///    ``quietMilliseconds``. Then the final checks of I1, I3 and I5 run.
package struct RandomizedRun {
    /// L1's bound: from the heal to a stable cluster that acknowledges a write through
    /// every live node.
    /// Over the 2,001 seeds it took at most 1.8 s (median 0.4 s), so 5 s is a bound with room.
    package static let steadyStateBoundMilliseconds: Int64 = 5_000
    /// How long a steady cluster must then go without a new term (L1).
    package static let quietMilliseconds: Int64 = 10_000

    /// What a run did.
    package struct Report: Sendable {
        package var seed: UInt64
        package var nodes: Int
        package var steps: Int
        package var virtualMilliseconds: Int64
        package var acknowledgedWrites: Int
        /// Writes refused past their deadline (I7 then checks nothing of them shows).
        package var writesRefusedPastDeadline: Int
        package var fault: String
        /// Times a queue to a peer overflowed and fell back to snapshots (I6 at work).
        package var queueOverflows: Int
        package var violations: [String]
        /// From the heal to steady state (stable, and a write through every node
        /// acknowledged); nil when it was not reached.
        package var healToSteadyMilliseconds: Int64?
        /// The transport model the run used, when not the runtime's.
        package var transport: TransportModel
        /// The one-line command that replays this run.
        package var replayCommand: String {
            let variant =
                transport == .brokenEndpointClosedForGood ? " SIM_BROKEN=endpoint"
                : transport == .brokenLinksNeverReconnect ? " SIM_BROKEN=links" : ""
            return "SIM_SEED=\(seed) SIM_NODES=\(nodes)\(variant) swift test --filter ClusterProtocolTests.replaySeed"
        }
    }

    /// Runs the seed.
    package static func run(
        seed: UInt64, nodes: Int, broken: Bool = false, transport: TransportModel = .runtime, trace: ((String) -> Void)? = nil
    ) -> Report {
        var configuration = SimulationConfiguration(nodes: nodes, seed: seed)
        configuration.trace = trace
        configuration.faults = .lossy
        configuration.brokenAcknowledgeBeforeReplication = broken
        configuration.transport = transport
        // Half the seeds ship deltas at the end of each turn (the runtime's path), half only
        // on the flush timer, so both schedules are swept.
        configuration.flushAtEndOfTurn = seed % 2 == 0
        let simulation = Simulation(configuration)
        var random = SeededRandom(seed: seed ^ 0x5EED)
        // Drawn apart from `random`, so that giving some writes a deadline leaves the rest
        // of a seed's traffic and faults as they were.
        var deadlines = SeededRandom(seed: seed ^ 0xDEAD_11E5)
        let start = simulation.now
        var fault = "none"
        var healToSteady: Int64?
        func report() -> Report {
            Report(
                seed: seed, nodes: nodes, steps: simulation.steps, virtualMilliseconds: simulation.now.milliseconds(since: start),
                acknowledgedWrites: simulation.checker.acknowledgedWrites,
                writesRefusedPastDeadline: simulation.checker.writesRefusedPastDeadline, fault: fault,
                queueOverflows: simulation.nodes.reduce(0) { $0 + ($1.node?.queueOverflowCount ?? 0) },
                violations: simulation.checker.violations, healToSteadyMilliseconds: healToSteady, transport: transport)
        }

        simulation.startAll()
        guard simulation.run(until: { $0.isStable }, within: 3_000, every: 20) else {
            simulation.checker.fail("L1: the cluster did not form within 3 s")
            return report()
        }

        // Traffic with one fault episode.
        var sessions: [SessionID] = []
        var value = 0
        let trafficEnd = simulation.now.adding(milliseconds: 1_200)
        let faultAt = simulation.now.adding(milliseconds: Int64.random(in: 100...600, using: &random))
        let faultKind = Int.random(in: 0..<7, using: &random)
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
                // A quarter of the updates, invalidations and rotations carry a deadline, as
                // behind a load balancer that gives up: under a fault, some arrive past it.
                let deadline =
                    Int.random(in: 0..<4, using: &deadlines) == 0
                    ? simulation.wallTime(through).adding(milliseconds: Int64.random(in: 20...400, using: &deadlines)) : nil
                if roll < 15 || sessions.count < 4 {
                    let id = SessionID.random(using: &random)
                    sessions.append(id)
                    let metadata = SessionMetadata(createdAt: simulation.wallTime(through), maxInactiveMilliseconds: 3_600_000, stamp: 1)
                    simulation.write(through: through, .create(metadata, changes), to: id, concern: concern)
                } else if roll < 70 {
                    simulation.write(
                        through: through, .update(changes), to: sessions.randomElement(using: &random)!, concern: concern,
                        deadline: deadline)
                } else if roll < 93 {
                    simulation.read(through: through, sessions.randomElement(using: &random)!)
                } else if roll < 97 {
                    simulation.write(
                        through: through, .invalidate, to: sessions.randomElement(using: &random)!, concern: concern, deadline: deadline)
                } else {
                    let newID = SessionID.random(using: &random)
                    sessions.append(newID)
                    simulation.write(
                        through: through, .rotate(to: newID), to: sessions.randomElement(using: &random)!, concern: concern,
                        deadline: deadline)
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
        let deadline = healedAt.adding(milliseconds: steadyStateBoundMilliseconds)
        let settled = simulation.run(until: { $0.isStable }, within: steadyStateBoundMilliseconds, every: 10)
        guard simulation.checker.violations.isEmpty else { return report() }
        guard settled else {
            simulation.checker.fail("L1: not stable \(steadyStateBoundMilliseconds) ms after healing (\(describe(simulation)))")
            return report()
        }
        if let problem = probeEveryNode(simulation, until: deadline, random: &random) {
            simulation.checker.fail("L1: \(problem) (\(describe(simulation)))")
            return report()
        }
        healToSteady = simulation.now.milliseconds(since: healedAt)
        trace?("\(simulation.now.milliseconds - 1_000_000) STEADY after \(healToSteady!) ms")
        // L1: steady means no new term and no change of leader or view for a while.
        let terms = simulation.nodes.map { $0.node?.currentTerm }
        let leader = simulation.leader
        // Nothing but heartbeats flows now: checking every 50 ms instead of every step keeps
        // the 10 s cheap, and a new leader would show as a new term at the end anyway.
        simulation.checksEveryStep = false
        for _ in 0..<(quietMilliseconds / 50) where simulation.checker.violations.isEmpty {
            simulation.run(for: 50)
            simulation.checker.checkAfterStep()
        }
        simulation.checksEveryStep = true
        guard simulation.checker.violations.isEmpty else { return report() }
        let termsAfter = simulation.nodes.map { $0.node?.currentTerm }
        if termsAfter != terms || simulation.leader != leader || !simulation.isStable {
            simulation.checker.fail(
                "L1: steady state did not hold for \(quietMilliseconds) ms: terms \(terms.map { $0.map(String.init) ?? "-" }) -> \(termsAfter.map { $0.map(String.init) ?? "-" }), leader n\((leader ?? -1) + 1) -> n\((simulation.leader ?? -1) + 1) (\(describe(simulation)))")
            return report()
        }
        // The quiet period outlasts every request's timeout (2 s, later by at most the 1.5 s
        // a clock may have been set back): every request has completed; check the stores.
        simulation.checker.checkFinal()
        if let session = simulation.checker.problemSession, let trace {
            for entry in simulation.nodes {
                trace("\(entry.id) holds \(String(describing: entry.node?.store.snapshot(session)))")
            }
        }
        return report()
    }

    /// L1's probe: a new session created through every live node must be acknowledged
    /// (retried, as an application would, while the answer is a transient refusal), and
    /// read through every live node with the same version. Returns what failed, or nil.
    static func probeEveryNode(_ simulation: Simulation, until deadline: Timestamp, random: inout SeededRandom) -> String? {
        var created: [SessionID] = []
        for through in simulation.liveIndices {
            var lastResult = "no answer"
            var acknowledged = false
            while !acknowledged && simulation.now < deadline {
                let id = SessionID.random(using: &random)
                let metadata = SessionMetadata(createdAt: simulation.wallTime(through), maxInactiveMilliseconds: 3_600_000, stamp: 1)
                let changes = SessionChanges(updated: ["probe": AttributeValue(string: "n\(through + 1)")])
                guard let request = simulation.write(through: through, .create(metadata, changes), to: id) else { break }
                simulation.run(until: { $0.checker.writeResults[request] != nil }, within: deadline.milliseconds(since: simulation.now), every: 1)
                switch simulation.checker.writeResults[request] {
                case .success?:
                    acknowledged = true
                    created.append(id)
                case .failure(let failure)?:
                    lastResult = "\(failure)"
                    simulation.run(for: 20)
                case nil:
                    lastResult = "no answer"
                }
            }
            guard acknowledged else {
                return "no write through n\(through + 1) acknowledged within \(steadyStateBoundMilliseconds) ms of the heal (last: \(lastResult))"
            }
        }
        for id in created {
            var versions: [String] = []
            for through in simulation.liveIndices {
                var last = "no answer"
                var found = false
                while !found && simulation.now < deadline {
                    guard let request = simulation.read(through: through, id) else { break }
                    simulation.run(until: { $0.checker.readResults[request] != nil }, within: max(1, deadline.milliseconds(since: simulation.now)), every: 1)
                    switch simulation.checker.readResults[request] {
                    case .found(let delta)?:
                        versions.append("n\(through + 1): \(delta.version)")
                        found = true
                    case let other?:
                        last = "\(other)"
                        simulation.run(for: 20)
                    case nil:
                        last = "no answer"
                    }
                }
                guard found else { return "no read through n\(through + 1) of a probe session answered within the bound (last: \(last))" }
            }
            if Set(versions.map { $0.split(separator: " ").last! }).count > 1 { return "reads disagree: \(versions)" }
        }
        return nil
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
            let sendErrors = Bool.random(using: &random)
            simulation.partition(side, from: rest, sendErrors: sendErrors)
            simulation.schedule(at: at) { $0.heal() }
            return "partition \(side.map { "n\($0 + 1)" }) | rest for \(duration) ms\(sendErrors ? ", sends refused" : "")"
        case 3:
            let rest = (0..<count).filter { $0 != victim }
            let outbound = Bool.random(using: &random)
            let sendErrors = Bool.random(using: &random)
            if outbound {
                simulation.cutOneWay(from: [victim], to: rest, sendErrors: sendErrors)
            } else {
                simulation.cutOneWay(from: rest, to: [victim], sendErrors: sendErrors)
            }
            simulation.schedule(at: at) { $0.heal() }
            return "one-way cut \(outbound ? "from" : "to") n\(victim + 1) for \(duration) ms\(sendErrors ? ", sends refused" : "")"
        case 6:
            // A flapping link: the victim is cut off and back every `period`, until the heal.
            let rest = (0..<count).filter { $0 != victim }
            let period = Int64.random(in: 50...300, using: &random)
            let sendErrors = Bool.random(using: &random)
            let heals = simulation.heals
            var flip = simulation.now
            var cut = true
            while flip < simulation.now.adding(milliseconds: 3_000) {
                let cutNow = cut
                simulation.schedule(at: flip) { simulation in
                    guard simulation.heals == heals else { return }
                    if cutNow {
                        simulation.partition([victim], from: rest, sendErrors: sendErrors)
                    } else {
                        simulation.restore([victim], from: rest)
                    }
                }
                flip = flip.adding(milliseconds: period)
                cut.toggle()
            }
            return "flapping link of n\(victim + 1), every \(period) ms until the heal\(sendErrors ? ", sends refused" : "")"
        case 4:
            let jump = Int64.random(in: -1_500...1_500, using: &random)
            simulation.stepWallClock(node: victim, by: jump)
            return "wall clock of n\(victim + 1) steps \(jump) ms"
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
