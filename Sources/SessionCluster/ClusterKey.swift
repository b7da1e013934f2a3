/// A shared secret that authenticates the cluster's frames (HMAC-SHA256), with the small
/// id that frames sent under it carry in their header.
///
/// A node sends under the first of ``SessionClusterConfiguration/clusterKeys`` and accepts
/// frames under any of them, so a cluster changes its key without a full restart: add the
/// new key second on every node (restarting them one by one), then move it first on every
/// node, then remove the old one.
///
/// ```swift
/// configuration.clusterKeys = [
///     ClusterKey(id: 1, bytes: newKeyBytes),   // sent under
///     ClusterKey(id: 0, bytes: oldKeyBytes),   // still accepted
/// ]
/// ```
public struct ClusterKey: Sendable, Hashable {
    /// The ids a key may have: 0 to 7.
    public static let ids: ClosedRange<UInt8> = 0...7

    /// The key's id, in ``ids``, distinct from the other keys' of the node. Every node that
    /// has this key must give it the same id.
    public var id: UInt8
    /// The secret, at least 16 bytes.
    public var bytes: [UInt8]

    /// A key; ``SessionCluster/init(configuration:eventLoopGroup:logger:)`` checks it.
    ///
    /// - Parameters:
    ///   - id: The key's id, 0 to 7. A single key has id 0.
    ///   - bytes: The secret, at least 16 bytes.
    public init(id: UInt8 = 0, bytes: [UInt8]) {
        self.id = id
        self.bytes = bytes
    }
}
