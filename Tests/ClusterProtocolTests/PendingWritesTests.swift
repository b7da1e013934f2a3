@testable import ClusterProtocol
import SessionCore
import Testing

/// The owner's waiting writes step by step: credits, when a concern is met, which backups
/// count, and what a removed write or a departed backup leaves behind.
@Suite struct PendingWritesTests {
    /// Three members, R = 3: every partition has two backups.
    let table = PartitionTable(members: ["n1", "n2", "n3"], partitionCount: 16, replicationFactor: 3)

    func session(_ seed: UInt64) -> SessionID { SessionID(high: seed, low: seed &* 31, tail: 0) }

    func backups(of id: SessionID) -> [NodeID] { Array(table.backups(of: PartitionID(of: id, count: 16))) }

    func write(_ targets: [(SessionID, SessionVersion)], backups required: Int, request: UInt64 = 1) -> PendingWrite {
        var list = InlineFirstList<(id: SessionID, version: SessionVersion)>()
        for (id, version) in targets { list.append((id, version)) }
        return PendingWrite(
            origin: .local(RequestID(request)), targets: list, backupsRequired: required,
            deadline: Timestamp(milliseconds: 5000), event: nil, result: targets[0].1)
    }

    @Test func aWriteIsMetWhenEnoughBackupsHoldItsVersionOrANewerOne() throws {
        var pending = PendingWrites()
        let a = session(1)
        let (first, second) = (backups(of: a)[0], backups(of: a)[1])
        let one = pending.add(write([(a, 3)], backups: 1, request: 1))
        let both = pending.add(write([(a, 4)], backups: 2, request: 2))
        #expect(one < both && pending.count == 2 && pending.sessionCount == 1)

        pending.credit(a, version: 2, by: first)
        #expect(pending.takeMet(in: table).isEmpty, "version 2 is older than either write")
        pending.credit(a, version: 3, by: first)
        #expect(pending.takeMet(in: table).map(\.result) == [3])
        #expect(pending[one] == nil && pending[both] != nil)

        pending.credit(a, version: 5, by: first)
        #expect(pending.takeMet(in: table).isEmpty, "one backup of the two it needs")
        pending.credit(a, version: 4, by: second)
        #expect(pending.takeMet(in: table).map(\.result) == [4])
        #expect(pending.isEmpty && pending.sessionCount == 0, "credits go with the last write on the session")
    }

    @Test func onlyBackupsOfTheCurrentTableCountAndWithoutOneNothingCompletes() throws {
        var pending = PendingWrites()
        let a = session(2)
        let owner = try #require(table.owner(of: PartitionID(of: a, count: 16)))
        pending.add(write([(a, 1)], backups: 1))
        pending.credit(a, version: 1, by: owner)
        pending.credit(a, version: 1, by: "n9")
        #expect(pending.takeMet(in: table).isEmpty, "neither the owner nor a stranger is a backup")

        pending.credit(a, version: 1, by: backups(of: a)[0])
        #expect(pending.takeMet(in: nil).isEmpty, "no lease: nothing completes")
        #expect(pending.hasCredits, "the write met without a lease is checked again, not left to its deadline")
        #expect(pending.takeMet(in: table).count == 1, "the lease is back: the next check finds it")
        #expect(!pending.hasCredits)

        let b = session(7)
        pending.add(write([(b, 1)], backups: 1))
        #expect(pending.takeMet(in: table).isEmpty, "nothing credited: nothing checked")
        pending.credit(b, version: 1, by: backups(of: b)[0])
        _ = pending.takeMet(in: PartitionTable(members: ["n1"], partitionCount: 16, replicationFactor: 3))
        #expect(pending.count == 1, "a view without backups meets no concern of one backup")
        #expect(pending.takeMet(all: true, in: table).count == 1, "a new view checks every write")
    }

    @Test func aRotationWaitsForBothOfItsTargets() {
        var pending = PendingWrites()
        let (old, new) = (session(3), session(4))
        pending.add(write([(new, 1), (old, 7)], backups: 1))
        pending.credit(new, version: 1, by: backups(of: new)[0])
        #expect(pending.takeMet(in: table).isEmpty)
        pending.credit(old, version: 7, by: backups(of: old)[1])
        #expect(pending.takeMet(in: table).count == 1)
    }

    @Test func aDepartedBackupsCreditsAreForgottenAndRemovedWritesLeaveNothing() {
        var pending = PendingWrites()
        let a = session(5)
        let backup = backups(of: a)[0]
        let id = pending.add(write([(a, 2)], backups: 1))
        pending.credit(a, version: 2, by: backup)
        #expect(pending.acknowledgedVersion(of: a, by: backup) == 2)
        pending.forget(backup)
        #expect(pending.acknowledgedVersion(of: a, by: backup) == 0, "it restarted with empty memory")
        #expect(pending.takeMet(in: table).isEmpty)

        pending.credit(session(6), version: 9, by: backup)
        #expect(!pending.hasCredits, "a credit for a session no write waits on is dropped")
        pending.extend(id, until: Timestamp(milliseconds: 9000))
        #expect(pending[id]?.deadline == Timestamp(milliseconds: 9000))
        #expect(pending.remove(id) != nil && pending.remove(id) == nil)
        #expect(pending.sessionCount == 0)
        pending.add(write([(a, 3)], backups: 1, request: 2))
        pending.add(write([(a, 4)], backups: 1, request: 3))
        #expect(pending.removeAll().map(\.result) == [3, 4], "in id order")
        #expect(pending.isEmpty && pending.sessionCount == 0)
    }
}
