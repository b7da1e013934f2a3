import Foundation
import Hummingbird
import ClusterTestSupport
import SessionCluster
import struct SessionCore.SessionDelta
import Testing

@testable import SessionClusterHummingbird

/// Only changes travel: what `set` hands the cluster, seen in the stored session's
/// version and per-attribute stamps.
@Suite(.timeLimit(.minutes(1)))
struct PersistDiffTests {
    struct Cart: Codable, Sendable {
        var user: String
        var items: [String]
        var coupon: String?
    }

    func stored(_ cluster: SessionCluster, key: String) throws -> SessionDelta {
        try #require(cluster.store.snapshot(SessionClusterPersistDriver.sessionID(for: key, generation: 0)))
    }

    func stamps(_ delta: SessionDelta) -> [String: SessionVersion] {
        Dictionary(delta.attributes.filter { $0.value != nil }.map { ($0.name, $0.stamp) }, uniquingKeysWith: max)
    }

    @Test func settingAnUnchangedValueWritesNothing() async throws {
        try await SingleNode.with { cluster in
            let persist = SessionClusterPersistDriver(cluster: cluster)
            let cart = Cart(user: "ada", items: ["pear"], coupon: nil)
            try await persist.set(key: "cart", value: cart, expires: .seconds(60))
            let before = try stored(cluster, key: "cart")
            try await persist.set(key: "cart", value: cart)
            let after = try stored(cluster, key: "cart")
            #expect(after.version == before.version)
            #expect(stamps(after) == stamps(before))
        }
    }

    @Test func changingOneFieldWritesOnlyThatField() async throws {
        try await SingleNode.with { cluster in
            let persist = SessionClusterPersistDriver(cluster: cluster)
            var cart = Cart(user: "ada", items: ["pear"], coupon: "SPRING")
            try await persist.set(key: "cart", value: cart)
            let before = stamps(try stored(cluster, key: "cart"))
            cart.items.append("plum")
            try await persist.set(key: "cart", value: cart)
            let after = try stored(cluster, key: "cart")
            let changed = stamps(after).filter { before[$0.key] != $0.value }.map(\.key)
            #expect(changed == ["items"])
            #expect(try await persist.get(key: "cart", as: Cart.self)?.items == ["pear", "plum"])
        }
    }

    @Test func fieldThatBecomesNilIsRemoved() async throws {
        try await SingleNode.with { cluster in
            let persist = SessionClusterPersistDriver(cluster: cluster)
            var cart = Cart(user: "ada", items: [], coupon: "SPRING")
            try await persist.set(key: "cart", value: cart)
            cart.coupon = nil
            try await persist.set(key: "cart", value: cart)
            #expect(Set(stamps(try stored(cluster, key: "cart")).keys) == ["user", "items"])
            #expect(try await persist.get(key: "cart", as: Cart.self)?.coupon == nil)
        }
    }
}
