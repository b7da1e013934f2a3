import Testing
@testable import SessionCore

private let t0 = Timestamp(milliseconds: 1_000_000)

/// The store keeps a session's attributes packed in one buffer shared with the snapshots it
/// hands out: these hold it to behaving exactly like a dictionary per session.
@Suite struct PackedAttributeStorageTests {
    @Test func aLoadedSnapshotKeepsItsValuesWhenTheStoreWritesLater() throws {
        let store = SessionStore()
        var session = try store.create(now: t0)
        session.setAttribute("token", AttributeValue(string: "aaaa"))
        try store.save(session, now: t0)
        let before = try #require(store.load(session.id, now: t0))
        var writer = before
        writer.setAttribute("token", AttributeValue(string: "bbbb"))  // same length: rewritten in place
        try store.save(writer, now: t0)
        #expect(before["token"] == AttributeValue(string: "aaaa"))
        #expect(store.load(session.id, now: t0)?["token"] == AttributeValue(string: "bbbb"))
    }

    @Test func attributesSeeTheSnapshotsOwnChanges() throws {
        var session = Session(
            id: .random(), version: 1, createdAt: t0, lastAccessedAt: t0, maxInactiveMilliseconds: 1000,
            attributes: ["a": AttributeValue(string: "1"), "b": AttributeValue(string: "2")])
        session.removeAttribute("a")
        session.setAttribute("c", AttributeValue(string: "3"))
        session.setAttribute("b", AttributeValue(string: "22"))
        #expect(session.attributes == ["b": AttributeValue(string: "22"), "c": AttributeValue(string: "3")])
        #expect(session["a"] == nil)
        session.setAttribute("a", AttributeValue(string: "1"))
        #expect(session["a"] == AttributeValue(string: "1"))
        #expect(session.changes.removed.isEmpty)
    }

    @Test func aNameBothSetAndRemovedInOneSaveEndsRemoved() throws {
        let store = SessionStore()
        let id = try store.create(now: t0).id
        let changes = SessionChanges(updated: ["x": AttributeValue(string: "1")], removed: ["x"])
        try store.apply(changes, to: id, now: t0)
        #expect(store.load(id, now: t0)?["x"] == nil)
        let delta = try #require(store.drainDeltas(includeTouches: false).first)
        #expect(delta.attributes.contains { $0.name == "x" && $0.value == nil })
    }

    /// Many attributes of changing sizes, written, grown, shrunk, removed and set again:
    /// the store and a replica fed its deltas both hold what a plain dictionary holds.
    @Test func manyAttributesFollowAPlainDictionaryThroughEveryKindOfWrite() throws {
        let owner = SessionStore()
        let replica = SessionStore()
        let id = try owner.create(now: t0).id
        var expected = [String: AttributeValue]()
        var generator = SeededRandom(seed: 7)
        for round in 0..<40 {
            var changes = SessionChanges()
            for _ in 0..<Int(generator.next() % 90 + 1) {
                let name = "attribute-\(generator.next() % 150)" + String(repeating: "n", count: Int(generator.next() % 20))
                if generator.next() % 4 == 0 {
                    changes.removed.insert(name)
                    changes.updated.removeValue(forKey: name)
                } else {
                    let length = Int(generator.next() % 300)
                    let value = AttributeValue(
                        encoding: AttributeEncoding(rawValue: UInt8(round % 4)), bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &+ round) })
                    changes.updated[name] = value
                    changes.removed.remove(name)
                }
            }
            try owner.apply(changes, to: id, now: t0)
            for name in changes.removed { expected.removeValue(forKey: name) }
            expected.merge(changes.updated) { _, new in new }
            for delta in owner.drainDeltas(includeTouches: false) { replica.apply(delta, now: t0) }
            #expect(owner.load(id, now: t0)?.attributes == expected)
            #expect(replica.load(id, now: t0)?.attributes == expected)
        }
        let fresh = SessionStore()
        fresh.apply(try #require(owner.snapshot(id)), now: t0)
        #expect(fresh.load(id, now: t0)?.attributes == expected)
        replica.apply(try #require(owner.snapshot(id)), now: t0)
        #expect(replica.load(id, now: t0)?.attributes == expected)
    }
}
