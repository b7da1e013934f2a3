import ArgumentParser
import Foundation
import Logging
import Metrics
import NodeProcesses
import SessionCluster

/// `session-bench`: measures this store, runs the Redis peer benchmark in the same
/// run, and writes `results/ours.json`, `results/RESULTS.md`, `results/bench.png` and the
/// README's performance section (Benchmarks/peer/report.py).
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session-bench",
        abstract: "Benchmark the store side by side with Redis; regenerate the README's performance section.",
        discussion: """
            Run from the repository root (make bench). Figures: read, replicated update, bytes per \
            update, failover, memory per session, state transfer; every number is printed as it is \
            measured, with the load average. Then Benchmarks/peer/redis_peer.py runs (it installs \
            redis-server with apt-get when missing) and Benchmarks/peer/report.py writes the table, \
            the chart and the README section.
            """)

    @Flag(help: "Small sizes and one failover run (about 3 minutes in all).")
    var quick = false

    @Option(help: "Where the JSON, the Markdown table and the chart go.")
    var out: String = "results"

    /// One figure (or step) of the benchmark, for `--only`.
    enum Figure: String, CaseIterable, Sendable {
        case read, update, bytes, failover, memory, transfer, tls, redis, report
    }

    /// A comma list of figures; an unknown name is refused when the arguments are parsed.
    struct Figures: ExpressibleByArgument, Sendable {
        var set: Set<Figure>
        init?(argument: String) {
            var set = Set<Figure>()
            for name in argument.split(separator: ",") {
                guard let figure = Figure(rawValue: name.trimmingCharacters(in: .whitespaces)) else { return nil }
                set.insert(figure)
            }
            guard !set.isEmpty else { return nil }
            self.set = set
        }
        static var allValueStrings: [String] { Figure.allCases.map(\.rawValue) }
    }

    @Option(help: "Comma list of: read, update, bytes, failover, memory, transfer, tls, redis, report. Default: all. The figures measured replace theirs in an existing ours.json.")
    var only: Figures?

    @Option(help: "The repository root (fixtures, peer scripts, README). Default: the current directory.")
    var repo: String = "."

    @Option(help: .hidden)
    var memoryChild: Int?

    @Option(help: "Sessions for the state transfer figure (default 100k with --quick, else 1M).")
    var transferSessions: Int?

    @Option(help: "Heartbeat (ms) of the two state transfer nodes, other timers scaled; 0: the default 100 ms.")
    var transferHeartbeat: Int64 = 0

    struct Sizes {
        var readOperations: Int
        var updateSeconds: Double
        var updateKeyspace: Int
        var byteUpdates: Int
        var failoverRuns: Int
        var memorySizes: [Int]
        var transferSessions: Int
    }

    var sizes: Sizes {
        quick
            ? Sizes(
                readOperations: 500_000, updateSeconds: 2.5, updateKeyspace: 10_000, byteUpdates: 10_000, failoverRuns: 1,
                memorySizes: [100_000], transferSessions: 100_000)
            : Sizes(
                readOperations: 2_000_000, updateSeconds: 6, updateKeyspace: 10_000, byteUpdates: 10_000, failoverRuns: 5,
                memorySizes: [100_000, 1_000_000], transferSessions: 1_000_000)
    }

    func selected(_ figure: Figure) -> Bool {
        only?.set.contains(figure) ?? true
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["BENCH_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
            return handler
        }
        // Ctrl-C or SIGTERM stops the failover figure's node processes too.
        let signalSources = stopChildrenOnSignals("session-bench")
        defer { _ = signalSources }
        let repoURL = URL(fileURLWithPath: repo).standardizedFileURL
        let fixture1k = try BenchFixture.load("session_1k.json", repo: repoURL)
        if let memoryChild {
            let result = try await BenchFigures.memory(count: memoryChild, fixture: fixture1k)
            FileHandle.standardOutput.write(try BenchDocument.encoder.encode(result) + Data("\n".utf8))
            return
        }
        MetricsSystem.bootstrap(ByteCounters.shared)
        let fixture4k = try BenchFixture.load("session_4k.json", repo: repoURL)
        let outURL = URL(fileURLWithPath: out, relativeTo: repoURL).standardizedFileURL
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        let mode = quick ? "quick" : "full"
        var sizes = self.sizes
        if let transferSessions { sizes.transferSessions = transferSessions }
        let clock = ContinuousClock()
        let started = clock.now
        let loadStart = BenchLog.loadAverage()
        BenchLog.say(
            "\(mode) run, \(ProcessInfo.processInfo.activeProcessorCount) cores, load \(BenchLog.loadAverageText()); "
                + "1 KB session: \(fixture1k.fields.count) attributes, \(fixture1k.jsonBytes) B of JSON, "
                + "\(fixture1k.keyValueBytes) B of names + values")

        var doc = BenchDocument()
        /// Runs one figure; a failure is recorded as the figure's error, and the run goes on.
        func measure<Figure: Codable>(_ name: String, _ body: () async throws -> Figure) async -> Entry<Figure> {
            do {
                return Entry(ours: .measured(try await body()))
            } catch {
                BenchLog.say("\(name): FAILED: \(error)")
                return Entry(ours: .failed("\(error)"))
            }
        }

        // 1 + 2: one 3-node cluster, R = 2, .replicated(1), in this process.
        if selected(.read) || selected(.update) {
            do {
                let cluster = try await BenchCluster.start(3, prefix: "main")
                BenchLog.say("3 in-process nodes, R = 2, .replicated(1), in one view")
                let ids1k = try await cluster.createSessions(sizes.updateKeyspace, fixture: fixture1k)
                if selected(.read) {
                    doc.read = await measure("read") {
                        let r = try await BenchFigures.read(
                            node: cluster.nodes[0], id: ids1k[0][0], tasks: 50, operations: sizes.readOperations)
                        BenchLog.figure(
                            String(
                                format: "read: p50 %.2f us, p99 %.2f us, %.0f ops/s (50 tasks, embedded load of the 1 KB session)",
                                r.p50Us, r.p99Us, r.ops))
                        return r
                    }
                }
                if selected(.update) {
                    doc.update = await measure("update") {
                        let ids4k = try await cluster.createSessions(sizes.updateKeyspace, fixture: fixture4k)
                        var figure = UpdateFigure(
                            mode: "in-process: 3 SessionCluster nodes in this process over TCP/UDP on 127.0.0.1; "
                                + "writer i runs on node i % 3's event loop (withTaskExecutorPreference(node.taskExecutor)) "
                                + "and updates a session of any node unless sticky",
                            keyspace: sizes.updateKeyspace, valueBytes: 100, sizes: [:])
                        for (name, ids) in [("1k", ids1k), ("4k", ids4k)] {
                            // One run per load shape, each printed as it ends.
                            var shapes: [UpdateShape] = [
                                UpdateShape(key: "plain", text: "50 writers over 3 nodes, any node"),
                                UpdateShape(key: "p16", text: "16 in flight per writer, 800 tasks", writers: 800),
                            ]
                            if name == "1k" {
                                shapes += [
                                    UpdateShape(key: "sticky", text: "sticky: each writer updates sessions its node owns", sticky: true),
                                    UpdateShape(
                                        key: "pool", text: "writers on the shared concurrency pool, no executor preference",
                                        onNodeLoop: false),
                                    UpdateShape(
                                        key: "local", text: ".local: acknowledged before the backup has it, as Redis acknowledges",
                                        concern: .local),
                                ]
                            }
                            var entry = UpdateSize()
                            for shape in shapes {
                                let run = try await BenchFigures.update(
                                    cluster: cluster, ids: ids, writers: shape.writers, seconds: sizes.updateSeconds,
                                    sticky: shape.sticky, onNodeLoop: shape.onNodeLoop, concern: shape.concern)
                                BenchLog.figure(
                                    String(
                                        format: "update %@ (%@): %.0f ops/s, p50 %.0f us, p99 %.0f us, %.1f us CPU/op, %.2f frames/op, %d errors",
                                        name, shape.text, run.ops, run.p50Us, run.p99Us, run.cpuUsPerOp, run.framesPerOp, run.errors))
                                Self.sayErrors(run.errorsByKind)
                                entry.runs[shape.key] = run
                            }
                            figure.sizes[name] = entry
                        }
                        return figure
                    }
                }
                await cluster.stop()
            } catch {
                BenchLog.say("read/update cluster: FAILED: \(error)")
                if selected(.read) { doc.read = Entry(ours: .failed("\(error)")) }
            }
        }

        // 3. Bytes per update at N = 3, 5, 7, under three load shapes: how much there is to
        // batch per peer link decides how far the fixed cost of a frame and its ack spreads.
        if selected(.bytes) {
            doc.replBytes = await measure("repl_bytes") {
                var series: [String: [String: Double]] = [:]
                var runs: [BytesRun] = []
                let shapes: [(key: String, writers: Int, updates: Int, text: String)] = [
                    ("by_n", 50, sizes.byteUpdates, "50 writers, one update in flight each"),
                    ("by_n_p16", 800, sizes.byteUpdates, "50 writers, 16 updates in flight each"),
                    ("by_n_single", 1, 1000, "one update at a time (each alone in its frame)"),
                ]
                for shape in shapes {
                    for n in [3, 5, 7] {
                        let r = try await BenchFigures.bytesPerUpdate(
                            nodes: n, fixture: fixture1k, updates: shape.updates, writers: shape.writers, shape: shape.key)
                        series[shape.key, default: [:]]["\(n)"] = r.bytesPerUpdate
                        runs.append(r)
                        BenchLog.figure(
                            String(
                                format: "bytes per update, N = %d, %@: %.1f B (wire, after LZ4; idle heartbeats %.0f B/s subtracted; %d updates, %d errors)",
                                n, shape.text, r.bytesPerUpdate, r.idleBytesPerS, r.updates, r.errors))
                        BenchLog.say("  sent per update: " + Self.describe(r.sentPerUpdate))
                    }
                }
                return BytesFigure(
                    bytesPerUpdate: series["by_n"]?["3"], runs: runs, replicas: 2, valueBytes: 100,
                    shapes: Dictionary(uniqueKeysWithValues: shapes.map { ($0.key, $0.text) }),
                    byN: series["by_n"] ?? [:], byNP16: series["by_n_p16"] ?? [:], byNSingle: series["by_n_single"] ?? [:])
            }
        }

        // 4. Failover with real processes.
        if selected(.failover) {
            doc.failover = await measure("failover") {
                var runs: [FailoverRun] = []
                for index in 0..<sizes.failoverRuns {
                    do {
                        let r = try BenchFailover.run(sessionCount: 48, writers: 8, logDirectory: outURL.path)
                        runs.append(r.figure)
                        BenchLog.figure(
                            "failover run \(index + 1): all victim sessions writable after "
                                + (r.outage.map { String(format: "%.3f s", $0) } ?? "n/a")
                                + " (first ack " + (r.firstAck.map { String(format: "%.3f s", $0) } ?? "n/a")
                                + ", a new write succeeds after " + (r.newWrite.map { String(format: "%.3f s", $0) } ?? "n/a")
                                + ", survivors' view dropped the victim after " + (r.viewChange.map { String(format: "%.3f s", $0) } ?? "n/a") + "), "
                                + "\(r.lost) acknowledged writes lost of \(r.acked)" + (r.error.map { "; \($0)" } ?? ""))
                    } catch {
                        BenchLog.say("failover run \(index + 1): FAILED: \(error)")
                        runs.append(FailoverRun(error: "\(error)"))
                    }
                }
                let outages = runs.compactMap(\.outageS).sorted()
                return FailoverFigure(
                    medianOutageS: outages.isEmpty ? nil : outages[outages.count / 2],
                    lostWritesTotal: runs.compactMap(\.lostWrites).reduce(0, +), runs: runs, completedRuns: outages.count,
                    setup: "3 session-node serve processes (LAN default timing), 48 sessions created on the victim, "
                        + "8 writer threads updating them through the survivors, one acked write at a time; kill -9")
            }
        }

        // What mutual TLS on the peer links costs: each row with and without, in this run.
        if selected(.tls) {
            doc.tls = await measure("tls") {
                try await BenchFigures.tls(
                    fixture: fixture1k, keyspace: sizes.updateKeyspace, seconds: sizes.updateSeconds, failoverRuns: sizes.failoverRuns,
                    directory: outURL.path)
            }
        }

        // 5. Memory per session, each size in a fresh child process.
        if selected(.memory) {
            doc.memory = await measure("memory") {
                var runs: [MemoryRun] = []
                for count in sizes.memorySizes {
                    let r = try Self.memoryInChild(count: count, repo: repoURL.path)
                    runs.append(r)
                    BenchLog.figure(
                        String(
                            format: "memory, %d sessions: %.0f B per session (RSS growth; payload %d B of JSON, %d B of names + values)",
                            count, r.bytesPerSession, fixture1k.jsonBytes, fixture1k.keyValueBytes))
                }
                return MemoryFigure(
                    bytesPerSession: runs.last?.bytesPerSession, payloadBytes: fixture1k.jsonBytes,
                    payloadKvBytes: fixture1k.keyValueBytes, runs: runs)
            }
        }

        // 6. State transfer.
        if selected(.transfer) {
            doc.stateTransfer = await measure("state_transfer") {
                // The defaults: the transfer is paced in a window of chunks, so it fits the
                // default peer queue at any size.
                let heartbeat = transferHeartbeat > 0 ? transferHeartbeat : nil
                let r = try await BenchFigures.stateTransfer(
                    count: sizes.transferSessions, fixture: fixture1k, queueLimit: nil, heartbeat: heartbeat)
                BenchLog.figure(
                    "state transfer: \(sizes.transferSessions) sessions of 1 KB received in "
                        + (r.seconds.map { String(format: "%.2f s", $0) } ?? "n/a (timed out)")
                        + " (heartbeat \(heartbeat ?? 100) ms)")
                return r
            }
        }

        let ourSeconds = started.duration(to: clock.now).seconds
        doc.meta = Meta(
            commit: Self.shell(["git", "-C", repoURL.path, "rev-parse", "--short", "HEAD"]) ?? "unknown",
            mode: mode, durationS: (ourSeconds * 10).rounded() / 10,
            loadavgStart: loadStart, loadavgEnd: BenchLog.loadAverage(),
            only: only.map { $0.set.map(\.rawValue).sorted().joined(separator: ",") } ?? "all",
            notes: "read/update/bytes/state transfer: SessionCluster nodes in the bench process over TCP/UDP on 127.0.0.1; "
                + "failover: 3 session-node serve processes; memory: a child process per size")
        let oursURL = outURL.appendingPathComponent("ours.json")
        if only != nil, let data = try? Data(contentsOf: oursURL),
            let earlier = try? BenchDocument.decoder.decode(BenchDocument.self, from: data)
        {
            // A partial run (--only) replaces only the figures it measured.
            doc = earlier.merging(doc)
        }
        try BenchDocument.encoder.encode(doc).write(to: oursURL)
        BenchLog.say(String(format: "ours done in %.0f s; wrote %@ (load %@)", ourSeconds, oursURL.path, BenchLog.loadAverageText()))

        let peerURL = outURL.appendingPathComponent("redis-\(mode).json")
        if selected(.redis) {
            BenchLog.say("running Benchmarks/peer/redis_peer.py\(quick ? " --quick" : "")")
            let status = Self.runPython(
                ["Benchmarks/peer/redis_peer.py"] + (quick ? ["--quick"] : []) + ["--out", peerURL.path], in: repoURL.path,
                discardStdout: true)
            if status != 0 { BenchLog.say("redis_peer.py exited with \(status)") }
        }
        if selected(.report) {
            guard FileManager.default.fileExists(atPath: peerURL.path) else {
                throw BenchError("no \(peerURL.path): run without --only, or with redis")
            }
            let status = Self.runPython(
                [
                    "Benchmarks/peer/report.py", "--peer", peerURL.path, "--ours", oursURL.path, "--outdir", outURL.path,
                    "--readme", repoURL.appendingPathComponent("README.md").path,
                ], in: repoURL.path, discardStdout: false)
            if status != 0 { throw BenchError("report.py exited with \(status)") }
        }
        BenchLog.say(String(format: "bench done in %.0f s (load %@)", started.duration(to: clock.now).seconds, BenchLog.loadAverageText()))
    }

    /// Prints what the failed operations of a figure said, when some failed.
    static func sayErrors(_ kinds: [String: Int]) {
        guard !kinds.isEmpty else { return }
        BenchLog.say("  errors: " + kinds.sorted { $0.value > $1.value }.map { "\($0.value) x \($0.key)" }.joined(separator: ", "))
    }

    /// "frames 0.52, deltaAck 0.31, ..." from a type -> count-per-update map, largest first.
    static func describe(_ counts: [String: Double]) -> String {
        counts.sorted { $0.value > $1.value }.map { String(format: "%@ %.3f", $0.key, $0.value) }.joined(separator: ", ")
    }

    static func memoryInChild(count: Int, repo: String) throws -> MemoryRun {
        let pipe = Pipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Executables.current)
        process.arguments = ["--memory-child", "\(count)", "--repo", repo]
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let run = try? BenchDocument.decoder.decode(MemoryRun.self, from: data) else {
            throw BenchError("memory child for \(count) sessions failed (status \(process.terminationStatus))")
        }
        return run
    }

    static func runPython(_ arguments: [String], in directory: String, discardStdout: Bool) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        if discardStdout { process.standardOutput = FileHandle.nullDevice }
        do {
            try process.run()
        } catch {
            BenchLog.say("cannot run python3: \(error)")
            return -1
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func shell(_ arguments: [String]) -> String? {
        let pipe = Pipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }
}

/// One replicated-update run of the bench: who writes where, and how.
struct UpdateShape {
    var key: String
    var text: String
    var writers = 50
    var sticky = false
    /// Writer tasks prefer their node's executor (`withTaskExecutorPreference`).
    var onNodeLoop = true
    var concern: WriteConcern? = nil
}
