import Testing
@testable import SessionCore

private func value(_ text: String) -> AttributeValue { AttributeValue(string: text) }
private let t0 = Timestamp(milliseconds: 1_000_000)

@Suite struct SessionStoreTests {
    @Test func savedAttributesAreLoadedBack() throws {
        let store = SessionStore()
        var session = try store.create(now: t0)
        session.setAttribute("user", value("ada"))
        let version = try store.save(session, now: t0)
        let loaded = try #require(store.load(session.id, now: t0))
        #expect(loaded["user"] == value("ada"))
        #expect(loaded.version == version)
        #expect(version == 2)
    }

    @Test func savingWithoutChangesKeepsTheVersionAndProducesNoDelta() throws {
        let store = SessionStore()
        let session = try store.create(now: t0)
        _ = store.drainDeltas(includeTouches: true)
        let before = store.load(session.id, now: t0, touch: false)!.version
        try store.save(store.load(session.id, now: t0, touch: false)!, now: t0)
        #expect(store.load(session.id, now: t0, touch: false)!.version == before)
        #expect(store.drainDeltas(includeTouches: false).isEmpty)
    }

    @Test func writingValuesTheSessionAlreadyHasIsReportedAsNoChange() throws {
        let store = SessionStore()
        let session = try store.create(now: t0)
        let first = try store.applyReportingChange(SessionChanges(updated: ["cart": value("2 pears")]), to: session.id, now: t0)
        #expect(first.changed)
        _ = store.drainDeltas(includeTouches: false)
        let again = try store.applyReportingChange(SessionChanges(updated: ["cart": value("2 pears")]), to: session.id, now: t0)
        #expect(!again.changed)
        #expect(again.version == first.version)
        #expect(store.drainDeltas(includeTouches: false).isEmpty)
        #expect(throws: SessionStoreError.sessionNotFound(SessionID(high: 1, low: 2, tail: 3))) {
            try store.applyReportingChange(SessionChanges(updated: ["cart": value("x")]), to: SessionID(high: 1, low: 2, tail: 3), now: t0)
        }
    }

    @Test func tenWritesOfOneAttributeBetweenFlushesAreOneDeltaEntry() throws {
        let store = SessionStore()
        let id = try store.create(now: t0).id
        _ = store.drainDeltas(includeTouches: true)
        for index in 0..<10 {
            var session = store.load(id, now: t0)!
            session.setAttribute("counter", value("\(index)"))
            try store.save(session, now: t0)
        }
        let deltas = store.drainDeltas(includeTouches: false)
        #expect(deltas.count == 1)
        #expect(deltas[0].attributes == [AttributeChange(name: "counter", stamp: 11, value: value("9"))])
        #expect(deltas[0].kind == .update)
        #expect(deltas[0].previousVersion == 1)
        #expect(deltas[0].version == 11)
    }

    @Test func concurrentSavesOfDifferentAttributesBothSurvive() throws {
        let store = SessionStore()
        let id = try store.create(now: t0).id
        var first = store.load(id, now: t0)!
        var second = store.load(id, now: t0)!
        first.setAttribute("cart", value("book"))
        second.setAttribute("theme", value("dark"))
        try store.save(first, now: t0)
        try store.save(second, now: t0)
        let loaded = store.load(id, now: t0)!
        #expect(loaded["cart"] == value("book"))
        #expect(loaded["theme"] == value("dark"))
    }

    @Test func aTouchAloneTravelsOnlyWhenTouchesAreDrained() throws {
        let store = SessionStore()
        let id = try store.create(now: t0).id
        _ = store.drainDeltas(includeTouches: true)
        _ = store.load(id, now: t0.adding(milliseconds: 5000))
        #expect(store.drainDeltas(includeTouches: false).isEmpty)
        let touches = store.drainDeltas(includeTouches: true)
        #expect(touches.map(\.kind) == [.touch])
        #expect(touches[0].lastAccessedAt == t0.adding(milliseconds: 5000))
        #expect(touches[0].attributes.isEmpty)
    }

    @Test func readsWithinTheTouchGranularityDoNotMarkATouch() throws {
        let store = SessionStore()
        let id = try store.create(now: t0).id
        _ = store.drainDeltas(includeTouches: true)
        for step in 0..<100 { _ = store.load(id, now: t0.adding(milliseconds: Int64(step))) }
        #expect(store.drainDeltas(includeTouches: true).isEmpty)
    }

    @Test func limitsAreEnforcedWithTypedErrorsAndChangeNothing() throws {
        let limits = SessionLimits(maxAttributeBytes: 10, maxSessionBytes: 30, maxAttributesPerSession: 3, maxSessions: 2)
        let store = SessionStore(configuration: .init(limits: limits))
        var session = try store.create(now: t0)
        session.setAttribute("big", AttributeValue(bytes: Array(repeating: 1, count: 11)))
        #expect(throws: SessionStoreError.attributeTooLarge(name: "big", bytes: 11, limit: 10)) {
            try store.save(session, now: t0)
        }
        var filling = store.load(session.id, now: t0)!
        filling.setAttribute("a", AttributeValue(bytes: Array(repeating: 1, count: 10)))
        filling.setAttribute("b", AttributeValue(bytes: Array(repeating: 1, count: 10)))
        filling.setAttribute("c", AttributeValue(bytes: Array(repeating: 1, count: 10)))
        #expect(throws: SessionStoreError.sessionTooLarge(bytes: 33, limit: 30)) { try store.save(filling, now: t0) }
        var many = store.load(session.id, now: t0)!
        for name in ["w", "x", "y", "z"] { many.setAttribute(name, value("1")) }
        #expect(throws: SessionStoreError.tooManyAttributes(count: 4, limit: 3)) { try store.save(many, now: t0) }
        #expect(store.load(session.id, now: t0)!.attributes.isEmpty)
        // A create whose first attributes break a limit leaves no session behind.
        #expect(throws: SessionStoreError.attributeTooLarge(name: "big", bytes: 11, limit: 10)) {
            try store.create(now: t0, attributes: ["big": AttributeValue(bytes: Array(repeating: 1, count: 11))])
        }
        #expect(store.count == 1)
        _ = try store.create(now: t0)
        #expect(throws: SessionStoreError.tooManySessions(limit: 2)) { try store.create(now: t0) }
    }

    @Test func aFullStoreRefusesGrowthWithATypedErrorButLetsEndsRemovalsAndReplicasThrough() throws {
        // Room for three sessions of 1 KB (plus their overhead), not four.
        let perSession = 1_024 + 4 + SessionLimits.sessionOverheadBytes
        let limits = SessionLimits(maxStoreBytes: 3 * perSession + 100)
        let store = SessionStore(configuration: .init(limits: limits))
        let kilobyte = AttributeValue(bytes: Array(repeating: 7, count: 1_024))
        var ids = [SessionID]()
        for _ in 0..<3 { ids.append(try store.create(now: t0, attributes: ["cart": kilobyte]).id) }
        #expect(store.byteCount == 3 * perSession)
        #expect(throws: SessionStoreError.storeFull(bytes: 3 * perSession, limit: limits.maxStoreBytes)) {
            try store.create(now: t0, attributes: ["cart": kilobyte])
        }
        #expect(store.count == 3)
        // Growing a session is refused too, and changes nothing; shrinking one passes.
        var grown = store.load(ids[0], now: t0)!
        grown.setAttribute("more", kilobyte)
        #expect(throws: SessionStoreError.storeFull(bytes: 3 * perSession, limit: limits.maxStoreBytes)) { try store.save(grown, now: t0) }
        #expect(store.load(ids[0], now: t0)!["more"] == nil)
        var shrunk = store.load(ids[0], now: t0)!
        shrunk.removeAttribute("cart")
        try store.save(shrunk, now: t0)
        #expect(store.byteCount == 2 * perSession + SessionLimits.sessionOverheadBytes)
        // An end frees its room for a new session.
        #expect(store.invalidate(ids[1], now: t0))
        _ = try store.create(now: t0, attributes: ["cart": kilobyte])
        // A replica follows its owner whatever its own budget says.
        let replica = SessionStore(configuration: .init(limits: SessionLimits(maxStoreBytes: 1)))
        for delta in store.drainDeltas(includeTouches: false) { replica.apply(delta, now: t0) }
        #expect(replica.count == 3)
        #expect(replica.byteCount == store.byteCount)
        // Ending everything returns the count to zero.
        for id in ids { store.invalidate(id, now: t0) }
        store.removeAll()
        #expect(store.byteCount == 0)
    }

    @Test func invalidatedSessionIsGoneAndCannotBeSaved() throws {
        let store = SessionStore()
        let session = try store.create(now: t0)
        #expect(store.invalidate(session.id, now: t0))
        #expect(store.load(session.id, now: t0) == nil)
        #expect(throws: SessionStoreError.sessionEnded(session.id, .invalidated)) { try store.save(session, now: t0) }
        #expect(!store.invalidate(session.id, now: t0))
        #expect(store.count == 0)
        let deltas = store.drainDeltas(includeTouches: false)
        #expect(deltas.last?.kind == .invalidate)
    }

    @Test func rotateKeepsAttributesAndEndsTheOldID() throws {
        let store = SessionStore()
        var session = try store.create(now: t0, principal: "ada")
        session.setAttribute("cart", value("book"))
        try store.save(session, now: t0)
        let rotated = try store.rotate(session.id, now: t0)
        #expect(rotated.id != session.id)
        #expect(rotated["cart"] == value("book"))
        #expect(store.load(session.id, now: t0) == nil)
        #expect(store.sessions(ofPrincipal: "ada") == [rotated.id])
        #expect(throws: SessionStoreError.sessionEnded(session.id, .rotated(to: rotated.id))) {
            try store.rotate(session.id, now: t0)
        }
    }

    @Test func expiredSessionsAreNotLoadedAndTheOwnerSweepsThem() throws {
        let store = SessionStore()
        let owned = try store.create(now: t0, maxInactiveMilliseconds: 1000).id
        let notOwned = try store.create(now: t0, maxInactiveMilliseconds: 1000).id
        let later = t0.adding(milliseconds: 1000)
        #expect(store.load(owned, now: later) == nil)
        let events = store.sweepExpired(now: later, isOwner: { $0 == owned })
        #expect(events == [.expired(owned)])
        #expect(store.count == 1, "a backup keeps the session until its owner's expiry reaches it")
        #expect(store.snapshot(notOwned) != nil)
        #expect(store.sweepExpired(now: later, isOwner: { _ in true }) == [.expired(notOwned)])
        #expect(store.sweepExpired(now: later, isOwner: { _ in true }).isEmpty, "events fire once")
    }

    @Test func sweepingTheSlicesInTurnEndsEachExpiredSessionOnce() throws {
        let store = SessionStore()
        let expiring = try Set((0..<300).map { _ in try store.create(now: t0, maxInactiveMilliseconds: 1000).id })
        let staying = try store.create(now: t0, maxInactiveMilliseconds: 60_000).id
        let later = t0.adding(milliseconds: 1000)
        var ended = [SessionID]()
        for slice in 0..<7 {
            let events = store.sweepExpired(now: later, slice: slice, of: 7, isOwner: { _ in true })
            #expect(events.count < expiring.count, "slice \(slice) swept only its part of the store")
            for case .expired(let id) in events { ended.append(id) }
        }
        #expect(ended.count == expiring.count)
        #expect(Set(ended) == expiring)
        #expect(store.count == 1)
        #expect(store.snapshot(staying) != nil)
    }

    @Test func absoluteTimeoutEndsAnActiveSession() throws {
        let store = SessionStore()
        let id = try store.create(now: t0, absoluteTimeoutMilliseconds: 5000).id
        for second in 1..<5 { #expect(store.load(id, now: t0.adding(milliseconds: Int64(second) * 1000)) != nil) }
        #expect(store.load(id, now: t0.adding(milliseconds: 5000)) == nil)
    }

    @Test func principalIndexFindsEveryLiveSessionOfAUser() throws {
        let store = SessionStore()
        let first = try store.create(now: t0, principal: "ada").id
        var second = try store.create(now: t0)
        second.setPrincipal("ada")
        try store.save(second, now: t0)
        #expect(store.sessions(ofPrincipal: "ada") == [first, second.id])
        store.invalidate(first, now: t0)
        #expect(store.sessions(ofPrincipal: "ada") == [second.id])
        var signOut = store.load(second.id, now: t0)!
        signOut.setPrincipal(nil)
        try store.save(signOut, now: t0)
        #expect(store.sessions(ofPrincipal: "ada").isEmpty)
    }

    @Test func concurrentWritersOnManySessionsLoseNothing() async throws {
        let store = SessionStore(configuration: .init(shardCount: 8))
        let ids = try (0..<32).map { _ in try store.create(now: t0).id }
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<16 {
                group.addTask {
                    for round in 0..<200 {
                        let id = ids[(writer + round) % ids.count]
                        var session = store.load(id, now: t0)!
                        session.setAttribute("w\(writer)", value("\(round)"))
                        _ = try? store.save(session, now: t0)
                    }
                }
            }
        }
        var written = 0
        for id in ids { written += store.load(id, now: t0)!.attributes.count }
        // Each writer visits every session (200 rounds over 32 sessions), so every session
        // ends with one attribute per writer.
        #expect(written == 32 * 16)
    }
}

@Suite struct DeltaApplicationTests {
    /// An owner store and a replica store fed from it.
    func pair() throws -> (owner: SessionStore, replica: SessionStore, id: SessionID) {
        let owner = SessionStore()
        let replica = SessionStore()
        let id = try owner.create(now: t0, principal: "ada").id
        for delta in owner.drainDeltas(includeTouches: true) { #expect(replica.apply(delta, now: t0) == .applied) }
        return (owner, replica, id)
    }

    func write(_ store: SessionStore, _ id: SessionID, _ name: String, _ text: String?) throws {
        var session = store.load(id, now: t0)!
        if let text { session.setAttribute(name, value(text)) } else { session.removeAttribute(name) }
        try store.save(session, now: t0)
    }

    @Test func aReplicaFollowsTheOwner() throws {
        let (owner, replica, id) = try pair()
        try write(owner, id, "cart", "book")
        for delta in owner.drainDeltas(includeTouches: false) { #expect(replica.apply(delta, now: t0) == .applied) }
        #expect(replica.load(id, now: t0)!.attributes == owner.load(id, now: t0)!.attributes)
        #expect(replica.sessions(ofPrincipal: "ada") == [id])
    }

    @Test func aDuplicatedDeltaChangesNothing() throws {
        let (owner, replica, id) = try pair()
        try write(owner, id, "cart", "book")
        let deltas = owner.drainDeltas(includeTouches: false)
        for delta in deltas { replica.apply(delta, now: t0) }
        for delta in deltas { #expect(replica.apply(delta, now: t0) == .unchanged) }
        #expect(replica.load(id, now: t0)!.version == owner.load(id, now: t0)!.version)
    }

    @Test func aStaleDeltaChangesNothing() throws {
        let (owner, replica, id) = try pair()
        try write(owner, id, "cart", "book")
        let old = owner.drainDeltas(includeTouches: false)
        try write(owner, id, "cart", "lamp")
        let new = owner.drainDeltas(includeTouches: false)
        for delta in new { replica.apply(delta, now: t0) }
        for delta in old { #expect(replica.apply(delta, now: t0) == .unchanged) }
        #expect(replica.load(id, now: t0)!["cart"] == value("lamp"))
    }

    @Test func deltasOfDifferentAttributesApplyInAnyOrder() throws {
        let (owner, replica, id) = try pair()
        try write(owner, id, "cart", "book")
        let first = owner.drainDeltas(includeTouches: false)
        try write(owner, id, "theme", "dark")
        let second = owner.drainDeltas(includeTouches: false)
        for delta in second { replica.apply(delta, now: t0) }
        for delta in first { replica.apply(delta, now: t0) }
        let loaded = replica.load(id, now: t0)!
        #expect(loaded["cart"] == value("book"))
        #expect(loaded["theme"] == value("dark"))
    }

    @Test func aStaleSetDoesNotBringBackARemovedAttribute() throws {
        let (owner, replica, id) = try pair()
        try write(owner, id, "cart", "book")
        let set = owner.drainDeltas(includeTouches: false)
        try write(owner, id, "cart", nil)
        let removal = owner.drainDeltas(includeTouches: false)
        for delta in removal { replica.apply(delta, now: t0) }
        for delta in set { replica.apply(delta, now: t0) }
        #expect(replica.load(id, now: t0)!["cart"] == nil)
    }

    @Test func aMissedDeltaIsReportedAsAGapAndASnapshotRepairsIt() throws {
        let (owner, replica, id) = try pair()
        try write(owner, id, "a", "1")
        _ = owner.drainDeltas(includeTouches: false)  // lost in transit
        try write(owner, id, "b", "2")
        for delta in owner.drainDeltas(includeTouches: false) { #expect(replica.apply(delta, now: t0) == .gap) }
        #expect(replica.load(id, now: t0)!["a"] == nil)
        #expect(replica.apply(owner.snapshot(id)!, now: t0) == .applied)
        #expect(replica.load(id, now: t0)!.attributes == owner.load(id, now: t0)!.attributes)
    }

    @Test func aSnapshotRemovesWhatTheOwnerNoLongerHas() throws {
        let (owner, replica, id) = try pair()
        try write(owner, id, "a", "1")
        for delta in owner.drainDeltas(includeTouches: false) { replica.apply(delta, now: t0) }
        try write(owner, id, "a", nil)
        _ = owner.drainDeltas(includeTouches: false)  // the removal is lost
        var snapshot = owner.snapshot(id)!
        snapshot.attributes.removeAll { $0.value == nil }  // and forgotten by the owner
        replica.apply(snapshot, now: t0)
        #expect(replica.load(id, now: t0)!["a"] == nil)
    }

    @Test func anUnknownSessionWithoutMetadataAsksForASnapshot() throws {
        let (owner, _, id) = try pair()
        let blank = SessionStore()
        try write(owner, id, "a", "1")
        for delta in owner.drainDeltas(includeTouches: false) { #expect(blank.apply(delta, now: t0) == .unknownSession) }
        #expect(blank.count == 0)
    }

    @Test func aLateDeltaNeverResurrectsAnInvalidatedSession() throws {
        let (owner, replica, id) = try pair()
        try write(owner, id, "cart", "book")
        let late = owner.drainDeltas(includeTouches: false)
        owner.invalidate(id, now: t0)
        for delta in owner.drainDeltas(includeTouches: false) { #expect(replica.apply(delta, now: t0) == .applied) }
        for delta in late { #expect(replica.apply(delta, now: t0) == .sessionEnded) }
        #expect(replica.apply(owner.snapshot(id)!, now: t0) == .sessionEnded)
        #expect(replica.load(id, now: t0) == nil)
        #expect(replica.sessions(ofPrincipal: "ada").isEmpty)
    }

    @Test func anInvalidationArrivingFirstStillBlocksTheCreate() throws {
        let owner = SessionStore()
        let replica = SessionStore()
        let id = try owner.create(now: t0).id
        let create = owner.drainDeltas(includeTouches: false)
        owner.invalidate(id, now: t0)
        for delta in owner.drainDeltas(includeTouches: false) { replica.apply(delta, now: t0) }
        for delta in create { #expect(replica.apply(delta, now: t0) == .sessionEnded) }
        #expect(replica.count == 0)
    }

    @Test func tombstonesAreBoundedInLifetimeAndCount() throws {
        let store = SessionStore(configuration: .init(shardCount: 1, tombstoneLifetime: .seconds(1), maxTombstones: 10))
        for _ in 0..<25 { store.invalidate(try store.create(now: t0).id, now: t0) }
        #expect(store.tombstoneCount == 25)
        _ = store.sweepExpired(now: t0, isOwner: { _ in true })
        #expect(store.tombstoneCount == 10)
        _ = store.sweepExpired(now: t0.adding(milliseconds: 1001), isOwner: { _ in true })
        #expect(store.tombstoneCount == 0)
    }

    @Test func evictionForgetsSessionsOfPartitionsNoLongerHeld() throws {
        let (_, replica, id) = try pair()
        #expect(replica.evict(where: { $0 == id }) == 1)
        #expect(replica.count == 0)
        #expect(replica.sessions(ofPrincipal: "ada").isEmpty)
    }

    @Test func stateTransferOfSnapshotsRebuildsAnEmptyReplica() throws {
        let owner = SessionStore()
        for index in 0..<100 {
            var session = try owner.create(now: t0)
            session.setAttribute("n", value("\(index)"))
            try owner.save(session, now: t0)
        }
        let replica = SessionStore()
        for snapshot in owner.snapshots(where: { _ in true }) { replica.apply(snapshot, now: t0) }
        #expect(replica.count == 100)
        for id in owner.sessionIDs(where: { _ in true }) {
            #expect(replica.load(id, now: t0, touch: false)!.attributes == owner.load(id, now: t0, touch: false)!.attributes)
            #expect(replica.snapshot(id) == owner.snapshot(id))
        }
    }
}
