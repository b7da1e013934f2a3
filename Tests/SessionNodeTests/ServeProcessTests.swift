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
        let deadline = Date().addingTimeInterval(30)
        while LoopbackHTTPClient.once(port: httpPort, "GET", "/health", timeoutSeconds: 1)?.status != 200 {
            guard process.isRunning else { throw HarnessError("session-node serve exited; log: \(log)") }
            guard Date() < deadline else { throw HarnessError("/health not 200 within 30 s; log: \(log)") }
            usleep(50_000)
        }
    }

    func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: logFile)
    }
}
