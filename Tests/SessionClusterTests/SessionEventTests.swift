import SessionCore
import Synchronization
import Testing

@testable import SessionCluster

/// Session events as an application receives them: from the owner, once.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct SessionEventTests {
    /// Collects what every node's event stream delivers.
    final class Collected: Sendable {
        let events = Mutex<[SessionEvent]>([])
        func count(_ event: SessionEvent) -> Int { events.withLock { $0.filter { $0 == event }.count } }
    }

    @Test func createdInvalidatedRotatedAndExpiredAreEachDeliveredOnceByTheOwner() async throws {
        try await TestCluster.with(2, configure: { $0.store.defaultMaxInactive = .seconds(60) }) { nodes in
            let collected = Collected()
            let listeners = nodes.map { node in
                let stream = node.events()
                return Task {
                    for await event in stream { collected.events.withLock { $0.append(event) } }
                }
            }
            let created = try await nodes[0].create()
            let ended = try await nodes[1].create()
            try await nodes[0].invalidate(ended.id)
            let rotated = try await nodes[1].rotateID(created.id)
            let expiring = try await nodes[0].create(maxInactive: .milliseconds(300))
            // Signing in writes the user's index record too: the application does not hear of it.
            let signedIn = try await nodes[1].create(principal: "ada")
            let expected: [SessionEvent] = [
                .created(created.id), .created(ended.id), .invalidated(ended.id),
                .idRotated(from: created.id, to: rotated), .created(expiring.id), .expired(expiring.id),
                .created(signedIn.id),
            ]
            try await TestCluster.waitUntil("every event arrived") { expected.allSatisfy { collected.count($0) >= 1 } }
            // Give a duplicate time to show.
            try await Task.sleep(for: .milliseconds(500))
            for event in expected { #expect(collected.count(event) == 1, "\(event)") }
            #expect(collected.events.withLock { $0.count } == expected.count, "\(collected.events.withLock { $0 })")
            for listener in listeners { listener.cancel() }
        }
    }

    @Test func theStreamEndsWhenTheNodeShutsDown() async throws {
        let nodes = try await TestCluster.start(1)
        let stream = nodes[0].events()
        let ended = Task { for await _ in stream {}; return true }
        await nodes[0].shutdown()
        #expect(await ended.value)
        // A subscription after the shutdown ends at once rather than wait forever.
        for await _ in nodes[0].events() {}
    }

    /// The last node standing (its backup left) has no backup to replicate an expiry to:
    /// it announces it anyway, after the write timeout, instead of holding it forever.
    @Test func anExpiryWithNoBackupLeftIsStillAnnounced() async throws {
        let nodes = try await TestCluster.start(2)
        do {
            await nodes[1].shutdown()
            try await TestCluster.waitUntil("n1 alone in its view") { (try? await nodes[0].status())?.members.count == 1 }
            let collected = Collected()
            let stream = nodes[0].events()
            let listener = Task { for await event in stream { collected.events.withLock { $0.append(event) } } }
            let session = try await nodes[0].create(maxInactive: .milliseconds(200), concern: .local)
            try await TestCluster.waitUntil("the expiry announced", seconds: 10) { collected.count(.expired(session.id)) == 1 }
            listener.cancel()
        } catch {
            await TestCluster.stop(nodes)
            throw error
        }
        await TestCluster.stop(nodes)
    }
}
