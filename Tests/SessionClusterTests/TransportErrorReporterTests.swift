import Glibc
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import SessionCluster

struct TransportErrorReporterTests {
    /// A link cut by a firewall fails every send: the log must not get a line per send.
    @Test func aBurstOfOneKindOfErrorIsLoggedOnceAndEveryOtherKindOnItsOwn() {
        let lines = CapturedLines()
        let logger = Logger(label: "test") { _ in CapturingHandler(lines: lines) }
        let reporter = TransportErrorReporter(metrics: ClusterMetrics(node: "n1"), logger: logger)
        let udpSend = TransportErrorSite(transport: .udp, operation: .send)
        for _ in 0..<500 { reporter.report(IOError(errnoCode: EPERM, reason: "sendto"), at: udpSend, peer: "n2") }
        reporter.report(IOError(errnoCode: EHOSTUNREACH, reason: "sendto"), at: udpSend, peer: "n2")
        reporter.report(ChannelError.connectTimeout(.seconds(1)), at: TransportErrorSite(transport: .tcp, operation: .connect), peer: "n3")
        // A write on a channel that already closed follows an error already reported.
        reporter.report(ChannelError.ioOnClosedChannel, at: udpSend, peer: "n2")

        let logged = lines.all
        #expect(logged.count == 3)
        #expect(logged.filter { $0.contains("kind=EPERM") }.count == 1)
        #expect(logged.contains { $0.contains("kind=EHOSTUNREACH") })
        #expect(logged.contains { $0.contains("kind=ETIMEDOUT") && $0.contains("operation=connect") })
    }

    @Test func errorsAreNamedByTheirErrno() {
        #expect(TransportErrorReporter.kind(of: IOError(errnoCode: ECONNREFUSED, reason: "read")) == "ECONNREFUSED")
        #expect(TransportErrorReporter.kind(of: ChannelError.writeHostUnreachable) == "EHOSTUNREACH")
        #expect(TransportErrorReporter.kind(of: ChannelError.writeMessageTooLarge) == "EMSGSIZE")
        #expect(TransportErrorReporter.kind(of: ChannelError.alreadyClosed) == nil)
        #expect(TransportErrorReporter.kind(of: IOError(errnoCode: 4095, reason: "?")) == "errno_4095")
    }
}

private final class CapturedLines: Sendable {
    private let storage = Mutex<[String]>([])
    var all: [String] { storage.withLock { $0 } }
    func append(_ line: String) { storage.withLock { $0.append(line) } }
}

private struct CapturingHandler: LogHandler {
    let lines: CapturedLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) {
        let fields = (metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        lines.append("\(message) \(fields)")
    }
}
