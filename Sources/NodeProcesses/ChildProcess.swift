// Child processes started by the demo, the benchmark and their helpers, each stopped by
// its PID: on exit, on error and on Ctrl-C (see ``ChildProcess/stopAll(grace:)``).
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a harness step failed, in one line for the operator.
package struct HarnessError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// One child process, its output appended to a log file, registered so that
/// ``stopAll(grace:)`` stops it whatever path the parent leaves by.
package final class ChildProcess: @unchecked Sendable {
    package let name: String
    package let logFile: String?
    private let process = Process()
    private let stopSignal: Int32

    private static let lock = NSLock()
    nonisolated(unsafe) private static var running: [ChildProcess] = []

    /// Starts `executable arguments`; stdout and stderr go to `logFile` (appended), or are
    /// inherited when it is nil. `stopSignal` asks it to stop (nginx wants SIGQUIT).
    package init(name: String, executable: String, arguments: [String], logFile: String?, stopSignal: Int32 = SIGTERM) throws {
        self.name = name
        self.logFile = logFile
        self.stopSignal = stopSignal
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        var handle: FileHandle?
        if let logFile {
            if !FileManager.default.fileExists(atPath: logFile) {
                _ = FileManager.default.createFile(atPath: logFile, contents: nil)
            }
            let file = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
            file.seekToEndOfFile()
            process.standardOutput = file
            process.standardError = file
            handle = file
        }
        try process.run()
        try? handle?.close()
        Self.lock.withLock { Self.running.append(self) }
    }

    package var pid: Int32 { process.processIdentifier }
    package var isRunning: Bool { process.isRunning }
    /// The exit status (or terminating signal) once it has exited; 0 while it runs.
    package var exitStatus: Int32 { process.isRunning ? 0 : process.terminationStatus }

    /// Sends `signal` (SIGSTOP and SIGCONT pause and resume it).
    package func kill(_ signal: Int32) {
        if process.isRunning { _ = Foundation.kill(pid, signal) }
    }

    /// SIGKILL, and waits until it is reaped.
    package func sigkill() {
        guard process.isRunning else { return }
        _ = Foundation.kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    /// Its stop signal (after SIGCONT, in case it is paused), then SIGKILL after `grace`;
    /// waits, bounded, for the exit.
    package func stop(grace: TimeInterval = 2) {
        guard process.isRunning else { return }
        _ = Foundation.kill(pid, SIGCONT)
        _ = Foundation.kill(pid, stopSignal)
        Self.waitForExit(self, grace: grace)
    }

    /// Stops every child still running, the newest first: each is asked at once, then
    /// killed after `grace`.
    package static func stopAll(grace: TimeInterval = 5) {
        let all = lock.withLock { () -> [ChildProcess] in
            defer { running.removeAll() }
            return running
        }
        for child in all.reversed() where child.isRunning {
            _ = Foundation.kill(child.pid, SIGCONT)
            _ = Foundation.kill(child.pid, child.stopSignal)
        }
        for child in all.reversed() { waitForExit(child, grace: grace) }
    }

    private static func waitForExit(_ child: ChildProcess, grace: TimeInterval) {
        let deadline = Date().addingTimeInterval(grace)
        while child.process.isRunning && Date() < deadline { usleep(20_000) }
        if child.process.isRunning {
            _ = Foundation.kill(child.pid, SIGKILL)
            child.process.waitUntilExit()
        }
    }
}

/// Where this executable and its siblings in the build directory are.
package enum Executables {
    /// This process's own executable: /proc/self/exe, else argv[0] resolved against the
    /// working directory and PATH.
    package static var current: String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        let name = CommandLine.arguments[0]
        if name.contains("/") { return URL(fileURLWithPath: name).standardizedFileURL.path }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return name
    }

    /// `name` next to this executable (`session-bench` starts `session-node` from its build directory).
    package static func sibling(_ name: String) throws -> String {
        let path = URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("\(path) not found: build it first (swift build --product \(name))")
        }
        return path
    }
}

/// Ctrl-C and SIGTERM stop every child by PID, run `cleanup`, then exit. SIGPIPE is
/// ignored (a peer may die mid-request). Keep the returned sources alive.
package func stopChildrenOnSignals(_ label: String, cleanup: @escaping @Sendable () -> Void = {}) -> [any DispatchSourceSignal] {
    signal(SIGPIPE, SIG_IGN)
    return [SIGINT, SIGTERM].map { sig in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            FileHandle.standardOutput.write(Data("\n\(label): signal \(sig): stopping every child process\n".utf8))
            cleanup()
            ChildProcess.stopAll()
            exit(128 + sig)
        }
        source.resume()
        return source
    }
}
