import Glibc
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import SessionCluster

/// The UDP endpoint on real sockets: a send the local host refuses fails alone.
@Suite(.timeLimit(.minutes(1)))
struct DatagramEndpointTests {
    /// A datagram to the broadcast address without SO_BROADCAST is refused by the sender's
    /// own kernel (EACCES), as a firewall's DROP on output refuses one (EPERM). SwiftNIO
    /// closes a datagram channel on such an error; the endpoint must instead report it for
    /// that datagram and keep sending and receiving, or the node loses its heartbeats.
    @Test func aRefusedSendFailsAloneAndTheEndpointKeepsSendingAndReceiving() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let received = Received()
        let receiver = try await DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(received) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let sender = try await DatagramEndpoint.bind(host: "127.0.0.1", port: 0, loop: loop) { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(received) }
        }.map { NIOLoopBound($0, eventLoop: loop) }.get()
        let broadcast = try SocketAddress(ipAddress: "255.255.255.255", port: 9)
        let receiverAddress = receiver.localAddress!
        let senderAddress = try await loop.submit { sender.value.channel.localAddress! }.get()

        let (refused, delivered, stillOpen) = try await loop.submit {
            let refused = sender.value.send([1, 2, 3], to: broadcast)
            let delivered = sender.value.send([4, 5, 6], to: receiverAddress)
            return (refused?.errnoCode, delivered == nil, sender.value.channel.isActive)
        }.get()
        #expect(refused == EACCES)
        #expect(delivered)
        #expect(stillOpen)

        // It still receives: a datagram sent to it arrives.
        let probe = try await DatagramBootstrap(group: loop).bind(host: "127.0.0.1", port: 0).get()
        try await probe.writeAndFlush(AddressedEnvelope(remoteAddress: senderAddress, data: ByteBuffer(bytes: [7, 8, 9])))
        for _ in 0..<200 where received.payloads.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(received.payloads.sorted { $0.first! < $1.first! } == [[4, 5, 6], [7, 8, 9]])

        try await probe.close()
        try await receiver.close()
        try await loop.submit { sender.value.channel.close(promise: nil) }.get()
    }

    /// Once its channel closed, the endpoint never writes to the descriptor number again
    /// (the system may have given it to another socket).
    @Test func aClosedEndpointRefusesToSend() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let endpoint = try await DatagramEndpoint.bind(host: "127.0.0.1", port: 0, loop: loop) { $0.eventLoop.makeSucceededVoidFuture() }
            .map { NIOLoopBound($0, eventLoop: loop) }.get()
        try await loop.submit { endpoint.value.channel.close(promise: nil) }.get()
        let target = try SocketAddress(ipAddress: "127.0.0.1", port: 9)
        let result = try await loop.submit {
            endpoint.value.invalidate()
            return endpoint.value.send([1], to: target)?.errnoCode
        }.get()
        #expect(result == EBADF)
    }
}

/// Collects the payloads of the datagrams a channel reads.
private final class Received: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let storage = Mutex<[[UInt8]]>([])

    var payloads: [[UInt8]] { storage.withLock { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Array(buffer: unwrapInboundIn(data).data)
        storage.withLock { $0.append(bytes) }
    }
}
