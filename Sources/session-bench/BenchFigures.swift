import Foundation
import struct ClusterProtocol.NodeConfiguration
import SessionCluster
import struct SessionCore.SeededRandom

/// The in-process figures of `session-bench`: read, replicated update, bytes per
/// update and state transfer. Every cluster here is N `SessionCluster` nodes in this
/// process on 127.0.0.1, talking over real TCP/UDP sockets.
enum BenchFigures {
    // MARK: 1. Read

    /// `load` of one 1 KB session on a node that holds it, from `tasks` concurrent tasks,
    /// each op timed with ContinuousClock. Tasks yield between ops (outside the timed span),
    /// so the 50 tasks interleave on the cooperative pool as 50 clients would.
    static func read(node: SessionCluster, id: SessionID, tasks: Int, operations: Int) async throws -> ReadFigure {
        let perTask = operations / tasks
        // Warm up (and check the session is there).
        guard try await node.load(id) != nil else { throw BenchError("read: the session is missing") }
        for _ in 0..<10_000 { _ = try await node.load(id) }
        let clock = ContinuousClock()
        let start = clock.now
        let samples = try await withThrowingTaskGroup(of: [UInt32].self) { group in
            for _ in 0..<tasks {
                group.addTask {
                    var samples = [UInt32]()
                    samples.reserveCapacity(perTask)
                    for _ in 0..<perTask {
                        let t0 = clock.now
                        let session = try await node.load(id)
                        let elapsed = t0.duration(to: clock.now)
                        guard session != nil else { throw BenchError("read: load returned nil") }
                        samples.append(UInt32(clamping: elapsed.nanoseconds))
                        await Task.yield()
                    }
                    return samples
                }
            }
            var all = [UInt32]()
            all.reserveCapacity(perTask * tasks)
            for try await part in group { all += part }
            return all
        }
        let wall = start.duration(to: clock.now).seconds
        let sorted = samples.sorted()
        let average = Double(samples.reduce(0) { $0 + Int($1) }) / Double(samples.count) / 1000
        return ReadFigure(
            clients: tasks, requests: samples.count, p50Us: Percentiles.microseconds(sorted, 50),
            p99Us: Percentiles.microseconds(sorted, 99), p999Us: Percentiles.microseconds(sorted, 99.9),
            avgUs: average, ops: Double(samples.count) / wall, touch: true)
    }

    // MARK: 2. Replicated update throughput

    /// `writers` concurrent tasks update the `flash` attribute (100 B) of random sessions
    /// for `seconds`; writer w sends through node w % N (no stickiness: the node forwards to
    /// the owner when it is not the owner). With `sticky`, each writer only updates sessions
    /// its node created (and owns). Returns ops/s, errors and ack latency percentiles.
    static func update(
        cluster: BenchCluster, ids byNode: [[SessionID]], writers: Int, seconds: Double, sticky: Bool,
        onNodeLoop: Bool = true, concern: WriteConcern? = nil
    ) async throws -> UpdateRun {
        let nodes = cluster.nodes
        let all = byNode.flatMap { $0 }
        let clock = ContinuousClock()
        let start = clock.now
        let cpuStart = ProcessCPU.seconds()
        let framesBefore = ByteCounters.shared.messagesSent(prefix: cluster.prefix)["frames"] ?? 0
        let deadline = start + .milliseconds(Int64(seconds * 1000))
        let results = await withTaskGroup(of: (Int, ErrorTally, [UInt32]).self) { group in
            for writer in 0..<writers {
                let nodeIndex = writer % nodes.count
                group.addTask(executorPreference: onNodeLoop ? nodes[nodeIndex].taskExecutor : nil) {
                    let node = nodes[nodeIndex]
                    let pool = sticky ? byNode[nodeIndex] : all
                    // Seeded: SystemRandomNumberGenerator is a getrandom(2) call per draw.
                    var generator = SeededRandom(seed: UInt64(writer))
                    var done = 0
                    var errors = ErrorTally()
                    var samples = [UInt32]()
                    var n = writer * 1_000_000
                    while clock.now < deadline {
                        n += 1
                        let id = pool[Int.random(in: 0..<pool.count, using: &generator)]
                        let changes = SessionChanges(updated: ["flash": AttributeValue(encoding: .utf8, bytes: FlashValue.bytes(n))])
                        let t0 = clock.now
                        do {
                            try await node.update(id, changes: changes, concern: concern)
                            done += 1
                            samples.append(UInt32(clamping: t0.duration(to: clock.now).nanoseconds))
                        } catch {
                            errors.count(error)
                        }
                    }
                    return (done, errors, samples)
                }
            }
            var done = 0
            var errors = ErrorTally()
            var samples = [UInt32]()
            for await (d, e, s) in group {
                done += d
                errors.add(e)
                samples += s
            }
            return (done, errors, samples)
        }
        let wall = start.duration(to: clock.now).seconds
        let cpu = ProcessCPU.seconds() - cpuStart
        let frames = (ByteCounters.shared.messagesSent(prefix: cluster.prefix)["frames"] ?? 0) - framesBefore
        let sorted = results.2.sorted()
        return UpdateRun(
            ops: Double(results.0) / wall, updates: results.0, errors: results.1.total, errorsByKind: results.1.byKind,
            writers: writers, cpuUsPerOp: cpu * 1e6 / Double(max(results.0, 1)),
            framesPerOp: Double(frames) / Double(max(results.0, 1)), seconds: wall,
            p50Us: Percentiles.microseconds(sorted, 50), p99Us: Percentiles.microseconds(sorted, 99))
    }

    // MARK: 3. Bytes on the wire per update

    /// N nodes, R = 2: `updates` sessions of `fixture`, each updated once (one 100 B attribute)
    /// on the node that created and owns it, by `writers` concurrent writers (800 stands for
    /// 50 clients with 16 updates in flight each; 1 sends every update alone). Bytes are the wire
    /// bytes (after LZ4, with frame headers and HMAC) every node sent while the updates ran,
    /// minus the idle traffic (heartbeats) measured over an idle span right after.
    static func bytesPerUpdate(
        nodes count: Int, fixture: BenchFixture, updates: Int, writers: Int = 50, shape: String
    ) async throws -> BytesRun {
        let cluster = try await BenchCluster.start(count, prefix: "bytes\(count)-")
        defer { Task { await cluster.stop() } }
        let byNode = try await cluster.createSessions(updates, fixture: fixture)
        try await Task.sleep(for: .milliseconds(300))  // let creation traffic (acks) drain
        let nodes = cluster.nodes
        let clock = ContinuousClock()
        let before = cluster.wireBytesSent
        let messagesBefore = ByteCounters.shared.messagesSent(prefix: cluster.prefix)
        let start = clock.now
        let errors = await withTaskGroup(of: Int.self) { group in
            if writers == 1 {
                // One update at a time, each on the node that owns the session: no batching.
                group.addTask {
                    var errors = 0
                    for (nodeIndex, ids) in byNode.enumerated() {
                        for (i, id) in ids.enumerated() {
                            let changes = SessionChanges(updated: ["flash": AttributeValue(encoding: .utf8, bytes: FlashValue.bytes(i))])
                            do { try await nodes[nodeIndex].update(id, changes: changes) } catch { errors += 1 }
                        }
                    }
                    return errors
                }
                return await group.reduce(0, +)
            }
            for writer in 0..<writers {
                group.addTask {
                    let nodeIndex = writer % count
                    let sameNode = stride(from: nodeIndex, to: writers, by: count).map { $0 }
                    let slot = sameNode.firstIndex(of: writer)!
                    let ids = byNode[nodeIndex]
                    var errors = 0
                    for i in stride(from: slot, to: ids.count, by: sameNode.count) {
                        let changes = SessionChanges(updated: ["flash": AttributeValue(encoding: .utf8, bytes: FlashValue.bytes(i))])
                        do { try await nodes[nodeIndex].update(ids[i], changes: changes) } catch { errors += 1 }
                    }
                    return errors
                }
            }
            return await group.reduce(0, +)
        }
        let updateSpan = start.duration(to: clock.now)
        // The last acks and flushes of the update phase.
        try await Task.sleep(for: .milliseconds(200))
        let afterUpdates = cluster.wireBytesSent
        // Frames and messages by type per update, heartbeats of the busy span included.
        var perUpdate: [String: Double] = [:]
        for (type, total) in ByteCounters.shared.messagesSent(prefix: cluster.prefix) {
            let count = total - (messagesBefore[type] ?? 0)
            if count > 0 { perUpdate[type] = Double(count) / Double(updates) }
        }
        let busySpan = start.duration(to: clock.now)
        let idleStart = clock.now
        try await Task.sleep(for: max(busySpan, .seconds(2)))
        let idleBytes = cluster.wireBytesSent - afterUpdates
        let idleSpan = idleStart.duration(to: clock.now)
        let idleRate = Double(idleBytes) / idleSpan.seconds
        let gross = Double(afterUpdates - before)
        let net = gross - idleRate * busySpan.seconds
        await cluster.stop()
        return BytesRun(
            shape: shape, nodes: count, updates: updates, writers: writers, errors: errors, grossBytes: gross,
            idleBytesPerS: idleRate, busyS: busySpan.seconds, updateS: updateSpan.seconds,
            bytesPerUpdate: net / Double(updates), sentPerUpdate: perUpdate)
    }

    // MARK: 6. State transfer

    /// A node alone holds `count` sessions of `fixture`; a second node joins (R = 2, so it
    /// must receive every session). Time from the joiner's start until its store holds them
    /// all and no partition is still filling.
    /// `queueLimit` overrides `maxQueuedBytesPerPeer` (default 32 MiB) on both nodes.
    static func stateTransfer(count: Int, fixture: BenchFixture, queueLimit: Int?, heartbeat: Int64?) async throws -> TransferFigure {
        let source = try await BenchCluster.start(
            1, prefix: "xfer-a", concern: .local, maxQueuedBytesPerPeer: queueLimit, slowTiming: heartbeat)
        let clock = ContinuousClock()
        let loadStart = clock.now
        _ = try await source.createSessions(count, fixture: fixture, concurrency: 64, concern: .local)
        let loadSeconds = loadStart.duration(to: clock.now).seconds
        BenchLog.say("state transfer: \(count) sessions loaded into the source node in \(String(format: "%.1f", loadSeconds)) s")
        let bytesBefore = ByteCounters.shared.wireBytesSent(prefix: "xfer-a")
        guard let seed = source.nodes[0].boundAddress else { throw BenchError("source not bound") }
        var configuration = BenchCluster.configuration(id: "xfer-b1", seeds: [seed], replicationFactor: 2, concern: .local)
        if let queueLimit { configuration.maxQueuedBytesPerPeer = queueLimit }
        if let heartbeat { configuration.node.slowDown(heartbeatMilliseconds: heartbeat) }
        let joiner = try SessionCluster(configuration: configuration, logger: BenchCluster.quietLogger)
        let start = clock.now
        try await joiner.start()
        var lastCount = 0
        var seconds = Double.nan
        var lastReport = clock.now
        do {
            try await BenchCluster.waitUntil("the joiner holds \(count) sessions", seconds: 120, every: .milliseconds(10)) {
                guard let status = try? await joiner.status() else { return false }
                lastCount = status.sessionCount
                if lastReport.duration(to: clock.now) > .seconds(5) {
                    lastReport = clock.now
                    BenchLog.say(
                        "state transfer: joiner has \(status.sessionCount) sessions, \(status.members.count) members, "
                            + "\(status.partitionsOwned) owned, \(status.partitionsBacked) backed, \(status.partitionsFilling) filling, "
                            + "role \(status.role), lease \(status.leaseValid)")
                }
                return status.members.count == 2 && status.partitionsFilling == 0 && status.sessionCount >= count
            }
            seconds = start.duration(to: clock.now).seconds
        } catch {
            BenchLog.say("state transfer: \(error); the joiner holds \(lastCount)")
        }
        let bytes = ByteCounters.shared.wireBytesSent(prefix: "xfer-a") - bytesBefore
        await joiner.shutdown()
        await source.stop()
        return TransferFigure(
            sessions: count, seconds: seconds.isNaN ? nil : seconds, received: lastCount, sourceLoadS: loadSeconds,
            wireBytes: bytes, maxQueuedBytesPerPeer: queueLimit ?? configuration.maxQueuedBytesPerPeer,
            heartbeatMs: heartbeat ?? 100,
            method: "in-process: a second SessionCluster joins one that holds every session (R = 2)")
    }

    // MARK: 5. Memory (run in a child process, so earlier figures' heap does not blur RSS)

    /// A single node (R = 1, `.local`) stores `count` sessions of `fixture` through the API;
    /// RSS growth / count.
    static func memory(count: Int, fixture: BenchFixture) async throws -> MemoryRun {
        let cluster = try await BenchCluster.start(1, replicationFactor: 1, prefix: "mem", concern: .local)
        // Warm the allocator and the paths once, then measure from there.
        _ = try await cluster.createSessions(1000, fixture: fixture, concurrency: 8)
        try await Task.sleep(for: .milliseconds(200))
        let before = ProcessMemory.residentBytes()
        let clock = ContinuousClock()
        let start = clock.now
        _ = try await cluster.createSessions(count, fixture: fixture, concurrency: 8)
        let loadSeconds = start.duration(to: clock.now).seconds
        try await Task.sleep(for: .milliseconds(300))  // flushes drain the dirty sets
        let after = ProcessMemory.residentBytes()
        let stored = cluster.nodes[0].store.count
        await cluster.stop()
        return MemoryRun(
            sessions: count, stored: stored, rssGrowth: after - before,
            bytesPerSession: Double(after - before) / Double(count), loadS: loadSeconds)
    }
}

/// Failed operations of a figure, counted by what the error says, so a run with errors
/// shows why in its JSON rather than only how many.
struct ErrorTally: Sendable {
    private(set) var byKind: [String: Int] = [:]

    var total: Int { byKind.values.reduce(0, +) }

    mutating func count(_ error: any Error) {
        byKind[String(describing: error), default: 0] += 1
    }

    mutating func add(_ other: ErrorTally) {
        byKind.merge(other.byKind, uniquingKeysWith: +)
    }
}
