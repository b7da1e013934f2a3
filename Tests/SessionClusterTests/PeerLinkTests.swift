import ClusterProtocol
import NIOCore
import NIOPosix
import SessionCore
import Testing

@testable import SessionCluster

struct PeerLinkTests {
    @Test func reconnectBackoffDoublesUpToTheMaximumAndStartsOverOnceConnected() {
        var recovery = SocketRecovery(initialDelayMilliseconds: 50, maximumDelayMilliseconds: 1000)
        let now = Timestamp(milliseconds: 10_000)
        var delays: [Int64] = []
        for _ in 0..<7 { delays.append(recovery.failed(now: now)!.milliseconds(since: now)) }
        #expect(delays == [50, 100, 200, 400, 800, 1000, 1000])
        recovery.opened()
        #expect(recovery.failed(now: now)?.milliseconds(since: now) == 50)
    }

    /// The per-peer bound counts what the socket has not taken yet. Against a peer that
    /// accepts but never reads, far more than any kernel buffers is written: the link must
    /// report it unwritten (so the bound can drop the queue), and nothing once closed.
    @Test func unwrittenBytesCountWhatAStalledPeerHasNotTaken() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let server = try await ServerBootstrap(group: loop)
            .childChannelOption(.autoRead, value: false)
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: loop).connect(to: server.localAddress!).get()
        let port = server.localAddress!.port!
        let written = 32 * 1024 * 1024
        // The link lives on its loop, as in the runtime.
        let (unwritten, idle, afterClose) = try await loop.flatSubmit { () -> EventLoopFuture<(Int, Bool, Int)> in
            let link = PeerLink(
                address: PeerAddress(host: "127.0.0.1", port: port),
                recovery: SocketRecovery(initialDelayMilliseconds: 50, maximumDelayMilliseconds: 1000))
            link.channel = client
            let chunk = ByteBuffer(repeating: 0x5A, count: 64 * 1024)
            for _ in 0..<(written / chunk.readableBytes) { client.write(chunk, promise: nil) }
            client.flush()
            link.refreshUnwrittenBytes()
            let stalled = (link.unwrittenBytes, link.isIdle)
            return client.close().assumeIsolated().map { _ in
                // A closed connection holds nothing the bound should count.
                link.refreshUnwrittenBytes()
                return (stalled.0, stalled.1, link.unwrittenBytes)
            }.nonisolated()
        }.get()
        // Loopback send plus receive buffers hold a few MiB at most; the rest waits in NIO.
        #expect(unwritten > written / 2, "\(unwritten) of \(written) B reported unwritten")
        print("stalled peer: \(unwritten) of \(written) B unwritten")
        #expect(unwritten <= written)
        #expect(!idle)
        #expect(afterClose == 0)
        try await server.close()
    }

    @Test func routingServesLocallyOnlyWithinTheWindowAndOnServablePartitions() {
        let routing = RoutingTable(partitionCount: 4)
        let id = SessionID(high: 6, low: 0, tail: 0)  // partition 2
        #expect(!routing.canServeLocally(id, now: Timestamp(milliseconds: 10)))
        routing.publish(
            RoutingTable.Snapshot(
                servable: [false, false, true, false], owned: [true, false, false, false],
                validUntil: Timestamp(milliseconds: 100)))
        #expect(routing.canServeLocally(id, now: Timestamp(milliseconds: 100)))
        #expect(!routing.canServeLocally(id, now: Timestamp(milliseconds: 101)))
        #expect(!routing.canServeLocally(SessionID(high: 5, low: 0, tail: 0), now: Timestamp(milliseconds: 50)))
    }

    @Test func newSessionIDsPreferOwnedPartitions() {
        let routing = RoutingTable(partitionCount: 8)
        routing.publish(
            RoutingTable.Snapshot(
                servable: Array(repeating: true, count: 8), owned: [false, false, false, true, false, false, false, false],
                validUntil: Timestamp(milliseconds: 100)))
        let partitions = (0..<50).map { _ in routing.newSessionID().partition(of: 8) }
        // 64 draws among 8 partitions miss partition 3 with probability (7/8)^64 ≈ 0.02%.
        #expect(partitions.filter { $0 == 3 }.count >= 45)
    }
}
