import Glibc
import Logging
import NIOCore
import NIOPosix
import Synchronization
import WireFormat

/// Where on the peer transport an error happened, for metrics and logs.
struct TransportErrorSite: Hashable, Sendable {
    enum Transport: String, Sendable { case udp, tcp }
    enum Operation: String, Sendable {
        /// Writing a datagram or onto a connection.
        case send
        /// Reading, including errors the kernel reports on the next read (ICMP refusals).
        case receive
        /// Opening a connection to a peer.
        case connect
        /// Binding the UDP endpoint again after it closed.
        case bind
    }
    var transport: Transport
    var operation: Operation
}

/// Counts every socket error of the peer transport by site and kind, every refused frame
/// and every peer connection this node closed, and logs each kind at most once per
/// ``logInterval`` (with how many were not logged in between): a link cut by a firewall
/// fails every send, a stranger can send garbage as fast as it likes, and one log line
/// per event would drown the log.
///
/// Exported as `session_cluster_transport_errors_total{transport, operation, kind}`, where
/// `kind` is the errno name (`EPERM`, `EHOSTUNREACH`, `ECONNREFUSED`, ...).
final class TransportErrorReporter: Sendable {
    static let logInterval: Duration = .seconds(10)

    private let metrics: ClusterMetrics
    private let logger: Logger
    private let lastLogged = Mutex<[String: (at: ContinuousClock.Instant, suppressed: Int)]>([:])

    init(metrics: ClusterMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
    }

    /// Counts and (rate-limited) logs `error`. Errors that only say the channel is already
    /// closed are consequences of one already reported, and are not counted again.
    func report(_ error: any Error, at site: TransportErrorSite, peer: String?) {
        guard let kind = Self.kind(of: error) else { return }
        metrics.transportError(site, kind: kind)
        guard let suppressed = mayLog("\(site.transport.rawValue) \(site.operation.rawValue) \(kind)") else { return }
        logger.warning(
            "peer transport error",
            metadata: [
                "transport": "\(site.transport.rawValue)", "operation": "\(site.operation.rawValue)", "kind": "\(kind)",
                "peer": "\(peer ?? "?")", "error": "\(error)",
                "notLoggedSinceLast": "\(suppressed)",
            ])
    }

    /// Counts and (rate-limited, by code) logs a refused frame, never its contents: a
    /// stranger sending garbage as fast as it can must not flood the log.
    func rejected(_ error: WireError, from address: SocketAddress?) {
        metrics.rejected(code: error.code)
        guard let suppressed = mayLog("rejected \(error.code)") else { return }
        logger.warning(
            "rejected frame",
            metadata: [
                "code": "\(error.code)", "error": "\(error)", "remote": "\(address.map { "\($0)" } ?? "?")",
                "notLoggedSinceLast": "\(suppressed)",
            ])
    }

    /// Counts and (rate-limited, by reason) logs an accepted peer connection this node closed.
    func refused(_ reason: InboundLinkRefusal, remote address: SocketAddress?) {
        metrics.peerConnectionClosed(reason)
        guard let suppressed = mayLog("refused \(reason.rawValue)") else { return }
        logger.warning(
            "closed a peer connection",
            metadata: [
                "reason": "\(reason.rawValue)", "remote": "\(address.map { "\($0)" } ?? "?")",
                "notLoggedSinceLast": "\(suppressed)",
            ])
    }

    /// Whether a line of kind `key` may be logged now: nil when one was logged within
    /// ``logInterval`` (this one is counted instead), else how many were not logged since.
    private func mayLog(_ key: String) -> Int? {
        let now = ContinuousClock.now
        return lastLogged.withLock { entries in
            if let entry = entries[key], now - entry.at < Self.logInterval {
                entries[key]!.suppressed += 1
                return nil
            }
            let suppressed = entries[key]?.suppressed ?? 0
            entries[key] = (now, 0)
            return suppressed
        }
    }

    /// The errno name of `error`, or a short name for NIO's own errors; nil for the errors
    /// that only follow another (writes on a channel that already closed).
    static func kind(of error: any Error) -> String? {
        switch error {
        case let error as IOError:
            return errnoName(error.errnoCode)
        case let error as NIOConnectionError:
            if let first = error.connectionErrors.first { return kind(of: first.error) }
            return error.dnsAError != nil || error.dnsAAAAError != nil ? "resolve" : "connect"
        case let error as ChannelError:
            switch error {
            case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed: return nil
            case .connectTimeout: return "ETIMEDOUT"
            case .writeHostUnreachable: return "EHOSTUNREACH"
            case .writeMessageTooLarge: return "EMSGSIZE"
            case .eof: return "EOF"
            default: return "channel"
            }
        default:
            return "other"
        }
    }

    static func errnoName(_ code: CInt) -> String {
        switch code {
        case EPERM: "EPERM"
        case EACCES: "EACCES"
        case ECONNREFUSED: "ECONNREFUSED"
        case ECONNRESET: "ECONNRESET"
        case ECONNABORTED: "ECONNABORTED"
        case EHOSTUNREACH: "EHOSTUNREACH"
        case ENETUNREACH: "ENETUNREACH"
        case ENETDOWN: "ENETDOWN"
        case EHOSTDOWN: "EHOSTDOWN"
        case EMSGSIZE: "EMSGSIZE"
        case ETIMEDOUT: "ETIMEDOUT"
        case EPIPE: "EPIPE"
        case ENOBUFS: "ENOBUFS"
        case EAGAIN: "EAGAIN"
        case EBADF: "EBADF"
        case ENOMEM: "ENOMEM"
        case EADDRINUSE: "EADDRINUSE"
        case EADDRNOTAVAIL: "EADDRNOTAVAIL"
        case EINVAL: "EINVAL"
        default: "errno_\(code)"
        }
    }
}
