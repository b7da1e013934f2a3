import ClusterProtocol
import SessionCore
import Testing

@testable import SessionCluster

struct PeerLinkTests {
    @Test func reconnectBackoffDoublesUpToTheMaximum() {
        let link = PeerLink(address: PeerAddress(host: "127.0.0.1", port: 1))
        var delays: [Duration] = []
        for failures in 0...6 {
            link.failures = failures
            delays.append(link.backoff(initial: .milliseconds(50), maximum: .milliseconds(1000)))
        }
        #expect(delays == [50, 50, 100, 200, 400, 800, 1000].map { .milliseconds($0) })
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
        #expect(RoutingTable.representative(ofPartition: 3).partition(of: 4) == 3)
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
