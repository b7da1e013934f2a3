import ClusterProtocol
import ClusterSimulator
import SessionCore
import Testing

/// A write's deadline is checked where writes are applied, on the session's owner: a copy
/// held up on its way (a paused node, a slow link) past the deadline changes nothing.
@Suite struct WriteDeadlineTests {
    @Test func aForwardedWriteThatReachesTheOwnerPastItsDeadlineIsRefusedUnapplied() {
        let simulation = Simulation.formed(nodes: 3, seed: 7)
        let session = simulation.createSessions(1)[0]
        let owner = simulation.owner(of: session)!
        let through = simulation.otherNode(than: owner)
        // The owner stops for 200 ms (less than downAfter: it stays the owner); the write
        // forwarded meanwhile waits in its stream and arrives after its 100 ms deadline.
        simulation.pause(node: owner)
        let late = simulation.write(
            through: through, updated("cart", "stale"), to: session, deadline: simulation.wallTime(owner).adding(milliseconds: 100))!
        simulation.run(for: 200)
        simulation.resume(node: owner)
        #expect(simulation.result(of: late) == .failure(.deadlineExceeded))
        #expect(simulation.readAndWait(through: through, session)?.attribute("cart") == "item-0")
        simulation.expectNoViolations()
    }

    @Test func aWriteWithinItsDeadlineIsAppliedWhereverItIsSent() {
        let simulation = Simulation.formed(nodes: 3, seed: 7)
        let session = simulation.createSessions(1)[0]
        let owner = simulation.owner(of: session)!
        for (index, node) in [owner, simulation.otherNode(than: owner)].enumerated() {
            let deadline = simulation.wallTime(owner).adding(milliseconds: 1_000)
            let request = simulation.write(through: node, updated("cart", "v\(index)"), to: session, deadline: deadline)!
            #expect(simulation.result(of: request)?.isSuccess == true)
            #expect(simulation.readAndWait(through: node, session)?.attribute("cart") == "v\(index)")
        }
        simulation.expectNoViolations()
    }

    @Test func aRotationWhoseCreateIsHeldUpPastItsDeadlineEndsNothing() {
        let simulation = Simulation.formed(nodes: 3, seed: 7)
        let session = simulation.createSessions(1)[0]
        let owner = simulation.owner(of: session)!
        // A new id in a partition another node owns: the create travels to it.
        let newID = simulation.newID(notOwnedBy: owner)
        let newOwner = simulation.owner(of: newID)!
        simulation.pause(node: newOwner)
        let rotation = simulation.write(
            through: owner, .rotate(to: newID), to: session, deadline: simulation.wallTime(owner).adding(milliseconds: 100))!
        simulation.run(for: 200)
        simulation.resume(node: newOwner)
        #expect(simulation.result(of: rotation) == .failure(.deadlineExceeded))
        // The new owner refused the late create: there is no new session.
        #expect(simulation.readAndWait(through: newOwner, newID) == .notFound)
        // The caller may have gone on with the old id: it is still live, with its data.
        #expect(simulation.readAndWait(through: owner, session)?.attribute("cart") == "item-0")
        #expect(simulation.writeAndWait(through: owner, updated("cart", "after"), to: session)?.isSuccess == true)
        simulation.expectNoViolations()
    }

    @Test func aRotationWhoseCreateComesBackPastItsDeadlineEndsNothing() {
        let simulation = Simulation.formed(nodes: 3, seed: 7)
        let session = simulation.createSessions(1)[0]
        let owner = simulation.owner(of: session)!
        let newID = simulation.newID(notOwnedBy: owner)
        // The create goes out and lands in time; the old id's owner stops before the answer
        // is back, and reads it past the deadline.
        let rotation = simulation.write(
            through: owner, .rotate(to: newID), to: session, deadline: simulation.wallTime(owner).adding(milliseconds: 100))!
        simulation.pause(node: owner)
        simulation.run(for: 200)
        simulation.resume(node: owner)
        #expect(simulation.result(of: rotation) == .failure(.deadlineExceeded))
        #expect(simulation.readAndWait(through: owner, session)?.attribute("cart") == "item-0")
        #expect(simulation.writeAndWait(through: owner, updated("cart", "after"), to: session)?.isSuccess == true)
        simulation.expectNoViolations()
    }

    @Test func aWriteOnTheOwnerPastItsDeadlineIsRefusedUnapplied() {
        let simulation = Simulation.formed(nodes: 3, seed: 7)
        let session = simulation.createSessions(1)[0]
        let owner = simulation.owner(of: session)!
        let request = simulation.write(
            through: owner, updated("cart", "late"), to: session, deadline: simulation.wallTime(owner).adding(milliseconds: -1))!
        #expect(simulation.result(of: request) == .failure(.deadlineExceeded))
        #expect(simulation.readAndWait(through: owner, session)?.attribute("cart") == "item-0")
        simulation.expectNoViolations()
    }
}

extension Simulation {
    /// A fresh id in a partition `node` does not own.
    func newID(notOwnedBy node: Int) -> SessionID {
        var id = SessionID.random(using: &random)
        while owner(of: id) == node { id = SessionID.random(using: &random) }
        return id
    }

    /// Runs until the write `request` completes (3 s at most) and returns its result.
    func result(of request: RequestID) -> Result<SessionVersion, ClusterFailure>? {
        run(until: { $0.checker.writeResults[request] != nil }, within: 3_000, every: 1)
        return checker.writeResults[request]
    }
}

/// The sweep's checker flags a refused write's value wherever it shows up.
@Suite struct RefusedWriteCheckTests {
    @Test func theCheckerFlagsAValueOfARefusedWriteThatShowsUp() {
        let simulation = Simulation.formed(nodes: 3, seed: 7)
        let session = simulation.createSessions(1)[0]
        let owner = simulation.owner(of: session)!
        let refused = simulation.write(
            through: owner, updated("cart", "late"), to: session, deadline: simulation.wallTime(owner).adding(milliseconds: -1))!
        #expect(simulation.result(of: refused) == .failure(.deadlineExceeded))
        #expect(simulation.checker.violations.isEmpty)
        // The same value written again (the sweep's values are unique; this one is not on purpose).
        #expect(simulation.writeAndWait(through: owner, updated("cart", "late"), to: session)?.isSuccess == true)
        _ = simulation.readAndWait(through: owner, session)
        #expect(simulation.checker.violations.first?.contains("refused past its deadline") == true)
    }
}
