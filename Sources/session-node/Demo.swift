// `session-node demo`: a replicated session cluster behind real nginx, one node SIGKILLed,
// every session still readable and writable. Builds nothing: it runs its own executable.
import ArgumentParser
import Foundation
import NodeProcesses

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a session cluster behind nginx, SIGKILL one node, show that no session is lost.",
        discussion: """
            Starts --nodes `session-node serve` processes on 127.0.0.1 and nginx (round-robin, \
            not sticky) in front of them, creates --sessions sessions through nginx, SIGKILLs \
            one node and checks every session is still readable and writable. Every child \
            process is stopped by its PID on exit, on error and on Ctrl-C. Without nginx (and \
            when it cannot be installed) a built-in round-robin proxy stands in.
            """)

    @Option(help: "Number of session-node processes (at least 2).")
    var nodes: Int = 3

    @Option(help: "Number of sessions to create and update.")
    var sessions: Int = 200

    @Option(help: "Replicas per partition (owner + backups), at most --nodes.")
    var replicas: Int = 2

    @Flag(help: "Leave the cluster up after the report, until Ctrl-C.")
    var keepRunning = false

    @Option(help: "Load balancer: nginx (install it if missing), builtin (round-robin TCP proxy), auto.")
    var proxy: ProxyChoice = .auto

    enum ProxyChoice: String, ExpressibleByArgument, Sendable {
        case auto, nginx, builtin
    }

    func validate() throws {
        guard nodes >= 2 else { throw ValidationError("--nodes must be at least 2 (one is killed)") }
        guard sessions >= 1 else { throw ValidationError("--sessions must be at least 1") }
        guard (1...nodes).contains(replicas) else { throw ValidationError("--replicas must be in 1...--nodes") }
    }

    func run() async throws {
        let run = try DemoRun(nodes: nodes, sessions: sessions, replicas: replicas)
        let sources = stopChildrenOnSignals("demo") { run.cleanup() }
        defer { _ = sources }
        do {
            try run.go(keepRunning: keepRunning, proxy: proxy)
            run.cleanup()
        } catch {
            say("demo: FAILED: \(error)")
            run.printLogTails()
            run.cleanup(keepLogs: true)
            throw ExitCode.failure
        }
    }
}

/// One demo run: its temp dir, nodes, proxy; every step bounded in time.
final class DemoRun: @unchecked Sendable {
    let nodeCount: Int
    let sessionCount: Int
    let replicas: Int
    let executable: String
    let tmp: URL
    var cluster: NodeProcessCluster?
    var nodes: [NodeProcessCluster.Node] { cluster?.nodes ?? [] }
    /// Ports in use by this run, so the proxy's port never collides with a node's.
    var taken = Set<Int>()
    var proxyPort = 0
    var proxyName = ""
    var builtinProxy: RoundRobinProxy?
    private let lock = NSLock()
    private var cleaned = false

    init(nodes: Int, sessions: Int, replicas: Int) throws {
        nodeCount = nodes
        sessionCount = sessions
        self.replicas = replicas
        executable = Executables.current
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("session-demo-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    // MARK: steps

    func go(keepRunning: Bool, proxy: Demo.ProxyChoice) throws {
        say("demo: \(executable), work dir \(tmp.path) (removed on exit)")
        try startNodes()
        if proxy == .builtin {
            try startBuiltinProxy(nodes.map(\.httpPort))
        } else {
            try startProxy(required: proxy == .nginx)
        }

        // Sessions through the proxy, each with a first value.
        var ids: [String] = []
        for i in 0..<sessionCount {
            let id = try retrying("create session \(i)") { () -> String? in
                guard let r = LoopbackHTTPClient.once(port: self.proxyPort, "POST", "/session"), r.status == 201 else { return nil }
                return r.sessionCookie
            }
            try put(id, "1")
            ids.append(id)
        }
        say("demo: created \(ids.count) sessions through \(proxyName) (round-robin over \(nodes.map(\.id).joined(separator: ", ")))")

        // Bytes on the wire per update, from /metrics, over one update of every session.
        let before = bytesSent()
        let sweepStart = Date()
        for id in ids { try put(id, "2") }
        let sweep = Date().timeIntervalSince(sweepStart)
        let after = bytesSent()
        let perUpdate = after.total.map { a in before.total.map { (a - $0) / Double(ids.count) } } ?? nil

        // SIGKILL one node: the leader, if /cluster names one.
        let victim = cluster?.leader() ?? nodes[0]
        say("demo: SIGKILL \(victim.id) (pid \(victim.process.pid))")
        let killed = Date()
        victim.process.sigkill()

        // Until every session took a write again (bounded): that is the failover time.
        var pending = Set(ids)
        var lastAnswer: [String: String] = [:]
        var firstOK: TimeInterval?
        var failed = 0
        let deadline = killed.addingTimeInterval(60)
        while !pending.isEmpty && Date() < deadline {
            for id in pending {
                let r = LoopbackHTTPClient.once(port: proxyPort, "PUT", "/session/attributes/counter", body: "3", session: id)
                if r?.status == 204 {
                    pending.remove(id)
                    firstOK = firstOK ?? Date().timeIntervalSince(killed)
                } else {
                    failed += 1
                    lastAnswer[id] = r.map { "\($0.status) from \($0.node): " + oneLine($0.text) } ?? "no answer"
                }
            }
            if !pending.isEmpty { usleep(50_000) }
        }
        let failover = Date().timeIntervalSince(killed)
        guard pending.isEmpty else {
            let detail = pending.prefix(5).map { "\($0.prefix(8))…: last PUT \(lastAnswer[$0] ?? "?")" }
            throw HarnessError("\(pending.count) of \(ids.count) sessions still not writable 60 s after the SIGKILL "
                + "of \(victim.id):\n  " + detail.joined(separator: "\n  "))
        }

        // Every session readable through the proxy and directly on every surviving node.
        let survivors = nodes.filter { $0.id != victim.id }
        var unreadable: [String] = []
        for id in ids {
            for port in [proxyPort] + survivors.map(\.httpPort) {
                let r = LoopbackHTTPClient.once(port: port, "GET", "/session/attributes/counter", session: id)
                if r?.status != 200 || r?.text != "3" {
                    unreadable.append("\(id.prefix(8)) on port \(port): \(r.map { "\($0.status) " + oneLine($0.text) } ?? "no answer")")
                }
            }
        }
        guard unreadable.isEmpty else {
            throw HarnessError("\(unreadable.count) reads wrong after the SIGKILL:\n  " + unreadable.prefix(10).joined(separator: "\n  "))
        }

        say("""

            ==== session-node demo report ====
            nodes            \(nodeCount) (replicas \(replicas)), behind \(proxyName), round-robin, not sticky
            sessions         \(ids.count) created, updated, then all read back after the kill
            killed           \(victim.id) with SIGKILL
            failover         all \(ids.count) sessions writable again \(fmt(failover)) s after the SIGKILL \
            (first write ok after \(fmt(firstOK ?? failover)) s; \(failed) writes refused meanwhile; \
            one sweep of \(ids.count) writes takes \(fmt(sweep)) s without faults)
            readable         every session on \(proxyName) and directly on \(survivors.map(\.id).joined(separator: ", ")): value "3"
            bytes per update \(perUpdate.map { String(format: "%.0f", $0) } ?? "n/a") bytes sent between nodes \
            (\(after.metric.map { "\($0){stage=\"wire\"}" } ?? "no bytes-sent metric in /metrics"))
            """)

        if keepRunning {
            say("demo: cluster left running; try:\n  curl -si -X POST http://127.0.0.1:\(proxyPort)/session\n"
                + "  curl -s http://127.0.0.1:\(survivors[0].httpPort)/cluster\nCtrl-C stops every process.")
            while true { sleep(3600) }
        }
    }

    /// nginx's `proxy_read_timeout`, and the nodes' `--request-deadline`: a request nginx gave
    /// up on and sent to the next node cannot also land later on the first.
    static let upstreamTimeoutSeconds = 2

    private func startNodes() throws {
        let key = tmp.appendingPathComponent("cluster.key")
        var keyBytes = [UInt8](repeating: 0, count: 32)
        for i in keyBytes.indices { keyBytes[i] = UInt8.random(in: 0...255) }
        try Data(keyBytes.map { String(format: "%02x", $0) }.joined().utf8).write(to: key)
        chmod(key.path, 0o600)
        cluster = try NodeProcessCluster(
            count: nodeCount, executable: executable, logDirectory: tmp.path,
            arguments: [
                "--replicas", "\(replicas)", "--cluster-key-file", key.path,
                "--request-deadline", "\(Self.upstreamTimeoutSeconds)",
            ], taken: &taken)
        for n in nodes { say("demo: started \(n.id) pid \(n.process.pid) http 127.0.0.1:\(n.httpPort)") }
        try cluster?.waitUntilHealthy(seconds: 60)
        say("demo: all \(nodeCount) nodes answer /health 200")
    }

    private func startProxy(required: Bool) throws {
        let upstreams = nodes.map(\.httpPort)
        switch findOrInstallNginx() {
        case .success(let nginx):
            guard let template = findNginxTemplate() else {
                say("demo: Fixtures/nginx/nginx.conf.template not found near \(executable) or in the current "
                    + "directory: using the built-in round-robin proxy instead of nginx")
                return try startBuiltinProxy(upstreams)
            }
            proxyPort = try FreePort.pick(avoiding: &taken)
            let prefix = tmp.appendingPathComponent("nginx")
            try FileManager.default.createDirectory(at: prefix, withIntermediateDirectories: true)
            chmod(tmp.path, 0o755)
            chmod(prefix.path, 0o755)
            let servers = upstreams.map { "        server 127.0.0.1:\($0) max_fails=0;" }.joined(separator: "\n")
            let values = ["PREFIX": prefix.path, "LISTEN_PORT": "\(proxyPort)", "UPSTREAM_SERVERS": servers,
                          "CONNECT_TIMEOUT": "300ms", "READ_TIMEOUT": "\(Self.upstreamTimeoutSeconds)s",
                          "NEXT_UPSTREAM_TRIES": "\(upstreams.count)"]
            var conf = try String(contentsOfFile: template, encoding: .utf8)
            for (k, v) in values { conf = conf.replacingOccurrences(of: "@\(k)@", with: v) }
            let confPath = prefix.appendingPathComponent("nginx.conf")
            try conf.write(to: confPath, atomically: true, encoding: .utf8)
            let process = try ChildProcess(
                name: "nginx", executable: nginx, arguments: ["-p", prefix.path, "-c", confPath.path, "-g", "daemon off;"],
                logFile: prefix.appendingPathComponent("nginx.out.log").path, stopSignal: SIGQUIT)
            let deadline = Date().addingTimeInterval(10)
            while !FreePort.isListening(proxyPort) {
                if !process.isRunning { throw HarnessError("nginx exited: see \(prefix.path)/error.log") }
                if Date() > deadline { throw HarnessError("nginx not listening within 10 s") }
                usleep(100_000)
            }
            proxyName = "nginx 127.0.0.1:\(proxyPort)"
            say("demo: nginx pid \(process.pid) on 127.0.0.1:\(proxyPort), config \(confPath.path)")
        case .failure(let why):
            if required { throw HarnessError("nginx is not installed and could not be installed: \(why)") }
            say("demo: nginx is not installed and could not be installed (\(why)); "
                + "using the built-in round-robin proxy instead")
            try startBuiltinProxy(upstreams)
        }
    }

    private func startBuiltinProxy(_ upstreams: [Int]) throws {
        let proxy = RoundRobinProxy(upstreams: upstreams)
        proxyPort = try proxy.start()
        builtinProxy = proxy
        proxyName = "built-in proxy 127.0.0.1:\(proxyPort)"
    }

    // MARK: helpers

    private func put(_ id: String, _ value: String) throws {
        _ = try retrying("update session \(id.prefix(8))") { () -> Bool? in
            LoopbackHTTPClient.once(port: proxyPort, "PUT", "/session/attributes/counter", body: value, session: id)?.status == 204 ? true : nil
        }
    }

    /// Calls attempt until it returns a value: at most 100 tries, 50 ms apart.
    private func retrying<T>(_ what: String, _ attempt: () -> T?) throws -> T {
        for _ in 0..<100 {
            if let value = attempt() { return value }
            usleep(50_000)
        }
        throw HarnessError("\(what): no success after 100 tries")
    }

    /// Sum over live nodes of session_cluster_bytes_sent_total{stage="wire"} in /metrics:
    /// bytes between nodes after compression.
    private func bytesSent() -> (total: Double?, metric: String?) {
        var total: Double?
        var names = Set<String>()
        for n in nodes where n.process.isRunning {
            guard let r = LoopbackHTTPClient.once(port: n.httpPort, "GET", "/metrics"), r.status == 200 else { continue }
            for line in r.text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                guard parts.count >= 2, let value = Double(parts[1]) else { continue }
                let name = String(parts[0].prefix { $0 != "{" })
                if name == "session_cluster_bytes_sent_total" && parts[0].contains("stage=\"wire\"") {
                    total = (total ?? 0) + value
                    names.insert(name)
                }
            }
        }
        return (total, names.isEmpty ? nil : names.sorted().joined(separator: ", "))
    }

    func printLogTails() {
        for n in nodes {
            let text = (try? String(contentsOfFile: n.logFile, encoding: .utf8)) ?? ""
            say("--- \(n.id) log (\(n.logFile)):\n" + text.split(separator: "\n").suffix(15).joined(separator: "\n"))
        }
    }

    /// Stops nginx and every node by PID; removes the work dir unless keepLogs. Idempotent.
    func cleanup(keepLogs: Bool = false) {
        lock.lock()
        let first = !cleaned
        cleaned = true
        lock.unlock()
        guard first else { return }
        builtinProxy?.stop()
        ChildProcess.stopAll()
        if keepLogs {
            say("demo: logs kept in \(tmp.path)")
        } else {
            try? FileManager.default.removeItem(at: tmp)
        }
    }
}

private func fmt(_ t: TimeInterval) -> String { String(format: "%.2f", t) }

/// A body on one line, at most 100 characters (nginx's error pages are HTML).
private func oneLine(_ body: String) -> String {
    String(body.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(100))
}

/// Fixtures/nginx/nginx.conf.template in the current directory or above the executable.
func findNginxTemplate() -> String? {
    var dirs = [FileManager.default.currentDirectoryPath]
    var dir = URL(fileURLWithPath: Executables.current).deletingLastPathComponent()
    for _ in 0..<6 {
        dirs.append(dir.path)
        dir = dir.deletingLastPathComponent()
    }
    return dirs.map { "\($0)/Fixtures/nginx/nginx.conf.template" }.first { FileManager.default.fileExists(atPath: $0) }
}

/// nginx from PATH or /usr/sbin; if missing, one bounded attempt with apt-get (as root).
func findOrInstallNginx() -> Result<String, HarnessError> {
    func find() -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/sbin"]
        return dirs.map { "\($0)/nginx" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
    if let path = find() { return .success(path) }
    guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-get") else {
        return .failure(HarnessError("not root or no apt-get; run scripts/install-deps.sh"))
    }
    say("demo: nginx not found: installing Debian's nginx with apt-get")
    for args in [["update", "-qq"], ["install", "-y", "-qq", "nginx"]] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/apt-get")
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["DEBIAN_FRONTEND": "noninteractive"]) { $1 }
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { return .failure(HarnessError("apt-get: \(error)")) }
        let deadline = Date().addingTimeInterval(300)
        while p.isRunning && Date() < deadline { usleep(200_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit(); return .failure(HarnessError("apt-get timed out")) }
        if p.terminationStatus != 0 && args[0] == "install" {
            return .failure(HarnessError("apt-get install nginx exited with \(p.terminationStatus)"))
        }
    }
    return find().map { .success($0) } ?? .failure(HarnessError("apt-get ran but nginx is still missing"))
}
