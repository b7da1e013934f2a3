import Glibc
import NIOCore
import NIOPosix

/// The node's UDP endpoint (heartbeats and probes): SwiftNIO reads from it, and sends go
/// straight to `sendto` on its descriptor.
///
/// Why not write through the channel: SwiftNIO closes a datagram channel on almost any
/// send error (EPERM from a host firewall, ENETUNREACH while a route is missing), so one
/// peer cut off by a firewall rule would take the node's heartbeats to every other peer
/// with it, and nothing would open it again. Sending here, a failed send fails that one
/// datagram, is counted, and the endpoint stays open. Should the channel close anyway (a
/// read error SwiftNIO deems fatal), the runtime binds a new endpoint.
///
/// Confined to the node's event loop, as the runtime is.
final class DatagramEndpoint {
    let channel: any Channel
    /// The descriptor SwiftNIO owns; nil once the channel closed, so that a descriptor
    /// number the system gives to something else is never written to.
    private var descriptor: CInt?

    private init(channel: any Channel, descriptor: CInt) {
        self.channel = channel
        self.descriptor = descriptor
    }

    /// Binds a UDP socket to `host:port` (SO_REUSEADDR) and hands it to SwiftNIO for reading,
    /// with the pipeline `initializer` sets up.
    static func bind(
        host: String, port: Int, loop: any EventLoop, initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<DatagramEndpoint> {
        let descriptor: CInt
        do {
            let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
            let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
            descriptor = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
            var one: CInt = 1
            let bound = address.withSockAddr { pointer, length in
                setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size)) == 0
                    && Glibc.bind(descriptor, pointer, socklen_t(length)) == 0
            }
            guard bound else {
                let code = errno
                close(descriptor)
                throw IOError(errnoCode: code, reason: "bind")
            }
        } catch {
            return loop.makeFailedFuture(error)
        }
        return DatagramBootstrap(group: loop)
            .channelInitializer(initializer)
            .withBoundSocket(descriptor)
            .map { channel in DatagramEndpoint(channel: channel, descriptor: descriptor) }
    }

    /// Sends one datagram now, without blocking. Returns the error of a send that failed
    /// (EAGAIN when the socket buffer is full: the datagram is dropped, as the network may).
    func send(_ bytes: [UInt8], to address: SocketAddress) -> IOError? {
        guard let descriptor, channel.isActive else { return IOError(errnoCode: EBADF, reason: "sendto on a closed endpoint") }
        let failure: CInt? = bytes.withUnsafeBytes { buffer in
            address.withSockAddr { pointer, length in
                let flags = Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)
                return sendto(descriptor, buffer.baseAddress, buffer.count, flags, pointer, socklen_t(length)) < 0 ? errno : nil
            }
        }
        return failure.map { IOError(errnoCode: $0, reason: "sendto") }
    }

    /// Forgets the descriptor: the channel closed it.
    func invalidate() {
        descriptor = nil
    }
}
