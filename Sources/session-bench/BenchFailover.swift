#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NodeCommandLine
import NodeProcesses
import Synchronization

/// Failover with real processes: 3 `session-node serve` nodes, sessions created on the
/// victim (a node's new ids fall in partitions it owns), writers that update them through
/// the two other nodes one acknowledged write at a time, `kill -9` of the victim.
enum BenchFailover {
    /// The body of `POST /session`.
    struct CreatedSession: Decodable {
        var id: String
    }

    struct WriterLog: Sendable {
        var ackedSeqs: [String: [Int]] = [:]
        var acked = 0
        var firstAckAfterKill: Date?
        var failures = 0
    }

    /// What the writer threads and the driver share.
    final class SharedState: Sendable {
        let killTime = Mutex<Date?>(nil)
        let stopFlag = Atomic<Bool>(false)
        let logs: Mutex<[WriterLog]>
        init(writers: Int) { logs = Mutex(Array(repeating: WriterLog(), count: writers)) }
    }

    struct RunResult {
        var outage: Double?
        var firstAck: Double?
        var lost: Int
        var acked: Int
        var sessions: Int
        var ownedByVictim: Int
        var victimWasLeader: Bool
        var viewChange: Double?
        var newWrite: Double?
        var error: String?

        var figure: FailoverRun {
            FailoverRun(
                outageS: outage, firstAckS: firstAck, lostWrites: lost, ackedWrites: acked, sessions: sessions,
                ownedByVictimCheck: ownedByVictim, victimWasLeader: victimWasLeader, viewChangeS: viewChange,
                newWriteS: newWrite, error: error)
        }
    }

    /// One run: fresh cluster, `sessionCount` sessions on the victim, `writers` writer threads.
    /// With `certificates` (for nodes `failover-f1`...`f3`), the peer links run mutual TLS.
    static func run(
        sessionCount: Int, writers: Int, logDirectory: String, certificates: DevelopmentCertificates.Files? = nil
    ) throws -> RunResult {
        var taken = Set<Int>()
        let cluster = try NodeProcessCluster(
            count: 3, executable: try Executables.sibling("session-node"), logDirectory: logDirectory, idPrefix: "failover-f",
            arguments: ["--log-level", "warning", "--insecure-development-key"],
            argumentsOfNode: { id in
                guard let certificates, let files = certificates.nodes[id] else { return [] }
                return ["--tls-cert", files.certificate, "--tls-key", files.key, "--tls-ca", certificates.authority]
            }, taken: &taken)
        defer { cluster.stop() }
        let nodes = cluster.nodes
        try cluster.waitUntilSettled(seconds: 30)
        // The victim: the last node, unless it leads (a leader's death also costs an election;
        // the issue asks for the owner of a set of sessions).
        let leader = cluster.status(of: nodes[0])?.leader
        let victim = nodes.last(where: { $0.id != leader }) ?? nodes[2]
        let survivors = nodes.filter { $0.id != victim.id }

        // Sessions created on the victim: it picks ids in partitions it owns.
        let creator = LoopbackHTTPClient(port: victim.httpPort)
        var ids: [String] = []
        for _ in 0..<sessionCount {
            let response = try creator.request("POST", "/session")
            guard response.status == 201, response.headers["x-node"] == victim.id || response.headers["x-node"] == nil,
                let id = (try? response.decode(CreatedSession.self))?.id
            else { throw BenchError("failover: POST /session answered \(response.status)") }
            ids.append(id)
        }
        let spareResponse = try creator.request("POST", "/session")
        guard let spare = (try? spareResponse.decode(CreatedSession.self))?.id else { throw BenchError("failover: no spare session") }
        creator.disconnect()
        // Check ownership as far as the API shows it: the victim's owned partition count.
        let ownedPartitions = cluster.status(of: victim)?.partitionsOwned ?? 0

        let shared = SharedState(writers: writers)
        let sessionIDs = ids
        let threads = (0..<writers).map { w in
            Thread {
                let mine = stride(from: w, to: sessionIDs.count, by: writers).map { sessionIDs[$0] }
                let client = LoopbackHTTPClient(port: survivors[w % survivors.count].httpPort, timeoutSeconds: 5)
                var seq = 0
                var i = 0
                while !shared.stopFlag.load(ordering: .relaxed) {
                    let id = mine[i % mine.count]
                    i += 1
                    seq += 1
                    let sentAt = Date()
                    let ok = ((try? client.request("PUT", "/session/attributes/seq", cookie: id, body: Array(String(seq).utf8)))?.status
                        == 204)
                    let killed = shared.killTime.withLock { $0 }
                    shared.logs.withLock { logs in
                        if ok {
                            logs[w].ackedSeqs[id, default: []].append(seq)
                            logs[w].acked += 1
                            if let killed, sentAt > killed, logs[w].firstAckAfterKill == nil { logs[w].firstAckAfterKill = Date() }
                        } else {
                            logs[w].failures += 1
                        }
                    }
                    if !ok { usleep(2_000) }
                }
                client.disconnect()
            }
        }
        for thread in threads { thread.start() }
        Thread.sleep(forTimeInterval: 1.0)
        let killedAt = Date()
        shared.killTime.withLock { $0 = killedAt }
        victim.process.kill(SIGKILL)
        // When the survivors' view drops the victim (the leader's decision), for the diagnosis.
        let epochBefore = cluster.status(of: survivors[0])?.viewEpoch
        let viewChange = Mutex<Double?>(nil)
        let monitor = Thread {
            let bound = killedAt.addingTimeInterval(20)
            while Date() < bound {
                if let status = cluster.status(of: survivors[0]),
                    !status.members.contains(where: { $0.id == victim.id }) || status.viewEpoch != epochBefore
                {
                    viewChange.withLock { $0 = Date().timeIntervalSince(killedAt) }
                    return
                }
                usleep(10_000)
            }
        }
        monitor.start()
        // Probes: fresh writes of a spare victim session every ~50 ms, each given up after
        // 200 ms, to tell when a newly issued write succeeds (the writers above may sit on a
        // request that was forwarded to the dead owner).
        let newWrite = Mutex<Double?>(nil)
        let probes = (0..<4).map { p in
            Thread {
                usleep(useconds_t(p * 50_000))
                let client = LoopbackHTTPClient(port: survivors[p % survivors.count].httpPort, timeoutSeconds: 0, timeoutMicroseconds: 200_000)
                let bound = killedAt.addingTimeInterval(20)
                var n = 0
                while Date() < bound && newWrite.withLock({ $0 == nil }) {
                    n += 1
                    let response = try? client.request("PUT", "/session/attributes/probe", cookie: spare, body: Array("\(p)-\(n)".utf8))
                    if response?.status == 204 {
                        let at = Date().timeIntervalSince(killedAt)
                        newWrite.withLock { $0 = min($0 ?? at, at) }
                    } else if response == nil {
                        continue  // timed out: the next probe starts at once
                    } else {
                        usleep(20_000)
                    }
                }
                client.disconnect()
            }
        }
        for probe in probes { probe.start() }
        // Wait (bounded) until every writer has an ack after the kill, then write 0.5 s more.
        let bound = killedAt.addingTimeInterval(20)
        while Date() < bound && shared.logs.withLock({ $0.contains { $0.firstAckAfterKill == nil } }) { usleep(5_000) }
        Thread.sleep(forTimeInterval: 0.5)
        shared.stopFlag.store(true, ordering: .relaxed)
        let joinBound = Date().addingTimeInterval(10)
        while Date() < joinBound && threads.contains(where: { $0.isExecuting }) { usleep(10_000) }

        while (monitor.isExecuting || probes.contains(where: \.isExecuting)) && Date() < joinBound { usleep(10_000) }
        let final = shared.logs.withLock { $0 }
        let afterKill = final.compactMap(\.firstAckAfterKill).map { $0.timeIntervalSince(killedAt) }
        let allWritable = afterKill.count == writers ? afterKill.max() : nil
        // Final read of every session from a survivor: the value must be at least the last acked seq.
        let reader = LoopbackHTTPClient(port: survivors[0].httpPort)
        var lost = 0
        var readErrors = 0
        for log in final {
            for (id, acked) in log.ackedSeqs {
                guard let response = try? reader.request("GET", "/session/attributes/seq", cookie: id), response.status == 200,
                    let value = Int(String(decoding: response.body, as: UTF8.self))
                else {
                    readErrors += 1
                    lost += acked.count  // every acked write of this session is gone
                    continue
                }
                // Writes to one session are sequential, so the stored value is the latest
                // applied; every acked seq above it is a lost acknowledged write.
                lost += acked.filter { $0 > value }.count
            }
        }
        return RunResult(
            outage: allWritable, firstAck: afterKill.min(), lost: lost, acked: final.reduce(0) { $0 + $1.acked },
            sessions: ids.count, ownedByVictim: ownedPartitions, victimWasLeader: victim.id == leader,
            viewChange: viewChange.withLock { $0 }, newWrite: newWrite.withLock { $0 },
            error: readErrors > 0 ? "\(readErrors) sessions unreadable after failover" : (allWritable == nil ? "not writable within 20 s" : nil))
    }
}
