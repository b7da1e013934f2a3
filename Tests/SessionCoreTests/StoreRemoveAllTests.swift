import SessionCore
import Testing

@Suite struct StoreRemoveAllTests {
    @Test func removeAllForgetsSessionsAndTombstonesSoARefillCanRecreateThem() throws {
        let store = SessionStore()
        let now = Timestamp(milliseconds: 1_000)
        let kept = try store.create(now: now, principal: "ada")
        let ended = try store.create(now: now)
        let snapshot = try #require(store.snapshot(ended.id))
        store.invalidate(ended.id, now: now)
        _ = store.drainDeltas(includeTouches: true)

        store.removeAll()

        #expect(store.count == 0)
        #expect(store.tombstoneCount == 0)
        #expect(store.load(kept.id, now: now) == nil)
        #expect(store.sessions(ofPrincipal: "ada").isEmpty)
        #expect(store.drainDeltas(includeTouches: true).isEmpty)
        // The ended session's tombstone is gone too: a snapshot from a replica applies again.
        #expect(store.apply(snapshot, now: now) == .applied)
        #expect(store.load(ended.id, now: now) != nil)
    }
}
