import SessionCore
import Testing

@testable import SessionCluster

/// A user's sessions across the cluster: listed from any node, ended together, limited,
/// and still there after the node holding the index leaves.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct PrincipalIndexTests {
    @Test func everyNodeListsAndEndsAllOfAUsersSessions() async throws {
        try await TestCluster.with(3) { nodes in
            var ids: [SessionID] = []
            for (index, node) in nodes.enumerated() {
                ids.append(try await node.create(principal: "ada").id)
                // Signed in later, through another node.
                let later = try await node.create()
                try await nodes[(index + 1) % 3].update(later.id, changes: SessionChanges(principal: .some("ada")))
                ids.append(later.id)
            }
            let other = try await nodes[0].create(principal: "bob")
            for node in nodes {
                #expect(Set(try await node.sessions(of: "ada").map(\.id)) == Set(ids))
            }
            // The index is a session no application can load.
            #expect(try await nodes[1].load(nodes[1].principals.recordID(of: "ada")) == nil)

            #expect(try await nodes[2].invalidateAll(of: "ada") == 6)
            for node in nodes {
                for id in ids { #expect(try await node.load(id) == nil) }
                #expect(try await node.sessions(of: "ada").isEmpty)
                #expect(try await node.load(other.id)?.principal == "bob")
            }
        }
    }

    @Test func aSessionSignedOutOrRotatedIsListedAsItIsNow() async throws {
        try await TestCluster.with(2) { nodes in
            let first = try await nodes[0].create(principal: "ada")
            let second = try await nodes[1].create(principal: "ada")
            let rotated = try await nodes[1].rotateID(first.id)
            try await nodes[0].update(second.id, changes: SessionChanges(principal: .some(nil)))
            #expect(try await nodes[0].sessions(of: "ada").map(\.id) == [rotated])
        }
    }

    /// "Log out everywhere" listed a session whose id is then rotated: ending the listed id
    /// ends the id it moved to.
    @Test func endingAListedSessionFollowsItsRotation() async throws {
        try await TestCluster.with(2) { nodes in
            let session = try await nodes[0].create(principal: "ada")
            let rotated = try await nodes[1].rotateID(session.id)
            #expect(try await nodes[1].endFollowingRotations(session.id, concern: nil))
            #expect(try await nodes[0].load(rotated) == nil)
            #expect(try await nodes[0].sessions(of: "ada").isEmpty)
        }
    }

    /// Ten sign-ins at once through three nodes with a limit of two: two survive, the newest.
    @Test func thePerPrincipalLimitHoldsUnderConcurrentSignIns() async throws {
        try await TestCluster.with(3, configure: { $0.maxSessionsPerPrincipal = 2 }) { nodes in
            let created = try await withThrowingTaskGroup(of: Session.self) { group in
                for index in 0..<10 { group.addTask { try await nodes[index % 3].create(principal: "ada") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(created.count == 10)
            var live: [SessionID] = []
            for session in created where try await nodes[0].load(session.id, touch: false) != nil { live.append(session.id) }
            #expect(live.count == 2, "live sessions after 10 concurrent sign-ins with a limit of 2: \(live.count)")
            #expect(Set(try await nodes[1].sessions(of: "ada").map(\.id)) == Set(live))
            // A later sign-in ends the oldest of the two.
            let newest = try await nodes[2].create(principal: "ada")
            let now = try await nodes[0].sessions(of: "ada").map(\.id)
            #expect(now.count == 2 && now.contains(newest.id))
        }
    }

    @Test func theIndexSurvivesTheLeaveOfTheNodeThatOwnsIt() async throws {
        let nodes = try await TestCluster.start(3)
        do {
            let ids = [try await nodes[0].create(principal: "ada").id, try await nodes[1].create(principal: "ada").id]
            let record = nodes[0].principals.recordID(of: "ada")
            try await TestCluster.waitUntil("the owner of the index is known") {
                nodes.contains { $0.routing.canServeLocally(record) }
            }
            let owner = try #require(nodes.firstIndex { $0.routing.canServeLocally(record) })
            await nodes[owner].shutdown()
            let survivors = nodes.indices.filter { $0 != owner }.map { nodes[$0] }
            // The index and both sessions were replicated: a leave loses none of them.
            try await TestCluster.waitUntil("the survivors list both sessions") {
                (try? await survivors[0].sessions(of: "ada").map(\.id)).map(Set.init) == Set(ids)
            }
            #expect(Set(try await survivors[1].sessions(of: "ada").map(\.id)) == Set(ids))
            #expect(try await survivors[1].invalidateAll(of: "ada") == 2)
            #expect(try await survivors[0].sessions(of: "ada").isEmpty)
        } catch {
            await TestCluster.stop(nodes)
            throw error
        }
        await TestCluster.stop(nodes)
    }
}
