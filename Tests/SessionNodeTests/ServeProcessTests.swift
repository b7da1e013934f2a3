import Foundation
import NodeProcesses
import Testing

/// `session-node serve` started as a process, as an operator starts it.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct ServeProcessTests {
    @Test func serveWithoutAKeyFileExitsSayingHowToCreateOne() throws {
        let run = try ServeRun(arguments: [])
        defer { run.stop() }
        try run.waitForExit()
        #expect(run.exitedWithFailure)
        let log = run.log
        #expect(log.contains("head -c 32 /dev/urandom | base64 > cluster.key; chmod 600 cluster.key"), "\(log)")
        #expect(!FreePort.isListening(run.httpPort))
    }

    @Test func serveWithAKeyFileOthersCanReadExitsNamingTheFix() throws {
        try withKeyFile("the-cluster-key-0123456789", mode: 0o644) { path in
            let run = try ServeRun(arguments: ["--cluster-key-file", path])
            defer { run.stop() }
            try run.waitForExit()
            #expect(run.exitedWithFailure)
            #expect(run.log.contains("\(path) has mode 644"), "\(run.log)")
            #expect(run.log.contains("chmod 600 \(path)"), "\(run.log)")
        }
    }

    @Test func serveWithAPrivateKeyFileAnswersHealth() throws {
        try withKeyFile("1:the-new-cluster-key-abcdefghij\n0:the-old-cluster-key-0123456789\n") { path in
            let run = try ServeRun(arguments: ["--cluster-key-file", path])
            defer { run.stop() }
            try run.waitUntilHealthy()
            #expect(LoopbackHTTPClient.once(port: run.httpPort, "GET", "/health")?.status == 200)
        }
    }

    @Test func withAdminTheOperatorsRoutesMoveToTheAdminListener() throws {
        let adminPort = try FreePort.pick()
        let run = try ServeRun(arguments: ["--insecure-development-key", "--admin", "127.0.0.1:\(adminPort)"])
        defer { run.stop() }
        try run.waitUntilHealthy()
        try run.waitUntil("the admin listener answers") { LoopbackHTTPClient.once(port: adminPort, "GET", "/cluster") != nil }
        for path in ["/cluster", "/metrics"] {
            #expect(LoopbackHTTPClient.once(port: run.httpPort, "GET", path)?.status == 404, "\(path) on --http")
            #expect(LoopbackHTTPClient.once(port: adminPort, "GET", path)?.status == 200, "\(path) on --admin")
        }
        #expect(LoopbackHTTPClient.once(port: adminPort, "GET", "/cluster")?.text.contains("\"node\":\"t1\"") == true)
        #expect(LoopbackHTTPClient.once(port: run.httpPort, "POST", "/session")?.status == 201)
        #expect(!run.log.contains("no --admin"))
    }

    @Test func withoutAdminTheOperatorsRoutesStayOnTheHTTPListenerWithAWarning() throws {
        let run = try ServeRun(arguments: ["--insecure-development-key"])
        defer { run.stop() }
        try run.waitUntilHealthy()
        #expect(LoopbackHTTPClient.once(port: run.httpPort, "GET", "/cluster")?.status == 200)
        #expect(LoopbackHTTPClient.once(port: run.httpPort, "GET", "/metrics")?.status == 200)
        #expect(run.log.contains("no --admin: GET /cluster and GET /metrics are served on the public --http listener"))
    }

    @Test func anIdleConnectionIsClosedAfterTheHTTPIdleTimeout() throws {
        let run = try ServeRun(arguments: ["--insecure-development-key", "--http-idle-timeout", "1"])
        defer { run.stop() }
        try run.waitUntilHealthy()
        let silent = try IdleConnection(port: run.httpPort, waitSeconds: 10)
        let closedAfter = try #require(silent.secondsUntilClosed(), "the server kept a silent connection open for 10 s")
        #expect(closedAfter > 0.5 && closedAfter < 5, "closed after \(closedAfter) s")
    }

    @Test func aConnectionIdleForLessThanTheTimeoutStaysOpen() throws {
        let run = try ServeRun(arguments: ["--insecure-development-key"])
        defer { run.stop() }
        try run.waitUntilHealthy()
        let silent = try IdleConnection(port: run.httpPort, waitSeconds: 2)
        #expect(silent.secondsUntilClosed() == nil, "closed well before the default 60 s")
    }
}

/// A TCP connection to 127.0.0.1 that sends nothing.
final class IdleConnection {
    private let fd: Int32

    /// Connects; reads then wait at most `waitSeconds`.
    init(port: Int, waitSeconds: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket failed") }
        var timeout = timeval(tv_sec: waitSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw HarnessError("connect to \(port) failed: errno \(errno)")
        }
    }

    deinit { close(fd) }

    /// Seconds until the server closed the connection (a read returns end of file or a
    /// reset), nil when it was still open when the wait ended.
    func secondsUntilClosed() -> Double? {
        let start = Date()
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
        return Date().timeIntervalSince(start)
    }
}

/// One `session-node serve` node alone (`--replicas 1`) on free ports, its output in a log file.
final class ServeRun {
    let httpPort: Int
    let peerPort: Int
    let process: ChildProcess
    let logFile: String

    init(arguments: [String]) throws {
        var taken: Set<Int> = []
        httpPort = try FreePort.pick(avoiding: &taken)
        peerPort = try FreePort.pick(avoiding: &taken)
        logFile = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID().uuidString).log").path
        process = try ChildProcess(
            name: "serve", executable: try Executables.sibling("session-node"),
            arguments: ["serve", "--id", "t1", "--http", "127.0.0.1:\(httpPort)", "--bind", "127.0.0.1:\(peerPort)",
                        "--replicas", "1", "--log-level", "warning"] + arguments,
            logFile: logFile)
    }

    var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }
    var exitedWithFailure: Bool { !process.isRunning && process.exitStatus != 0 }

    /// Until the process exits, at most 30 s.
    func waitForExit() throws {
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning {
            guard Date() < deadline else { throw HarnessError("session-node serve still running after 30 s; log: \(log)") }
            usleep(20_000)
        }
    }

    /// Until `/health` answers 200, at most 30 s.
    func waitUntilHealthy() throws {
        try waitUntil("/health is 200") { LoopbackHTTPClient.once(port: httpPort, "GET", "/health", timeoutSeconds: 1)?.status == 200 }
    }

    /// Until `condition` holds while the node runs, at most 30 s.
    func waitUntil(_ what: String, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(30)
        while !condition() {
            guard process.isRunning else { throw HarnessError("session-node serve exited; log: \(log)") }
            guard Date() < deadline else { throw HarnessError("not within 30 s: \(what); log: \(log)") }
            usleep(50_000)
        }
    }

    func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: logFile)
    }
}
