/// The settings every node of a cluster shares for its frames: the key that authenticates
/// them and the limits that bound what a peer can make this node allocate.
///
/// ```swift
/// var configuration = try WireConfiguration(clusterKey: Array(secret.utf8))
/// configuration.maxFrameBytes = 4 * 1024 * 1024
/// let codec = FrameCodec(configuration: configuration)
/// ```
package struct WireConfiguration: Sendable {
    /// The shortest cluster key accepted: 16 bytes (128 bits).
    package static let minimumClusterKeyBytes = 16

    /// The HMAC-SHA256 key every member shares. At least ``minimumClusterKeyBytes`` long;
    /// set only through ``init(clusterKey:)`` so that a short key cannot slip in later.
    package private(set) var clusterKey: [UInt8]
    /// The largest frame accepted, header and authentication code included, as it travels
    /// (compressed). Default 16 MiB. Senders keep their batches below it.
    package var maxFrameBytes: Int = 16 * 1024 * 1024
    /// The largest uncompressed body a compressed frame may claim. Default 64 MiB. A claim
    /// above it is refused before any allocation.
    package var maxDecompressedBytes: Int = 64 * 1024 * 1024
    /// Bodies of other messages than delta batches and state-transfer chunks are
    /// LZ4-compressed when they are larger than this. Default 512 bytes.
    package var compressionThresholdBytes: Int = 512

    /// Creates a configuration with the default limits.
    ///
    /// Throws ``ClusterKeyError/tooShort(bytes:minimum:)`` when the key is shorter than
    /// ``minimumClusterKeyBytes``: a short key is a configuration mistake found at start-up,
    /// not a frame error, so it has its own error type.
    package init(clusterKey: [UInt8]) throws(ClusterKeyError) {
        guard clusterKey.count >= Self.minimumClusterKeyBytes else {
            throw .tooShort(bytes: clusterKey.count, minimum: Self.minimumClusterKeyBytes)
        }
        self.clusterKey = clusterKey
    }
}

/// Why a cluster key was refused.
package enum ClusterKeyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The key has `bytes` bytes; at least `minimum` are required.
    case tooShort(bytes: Int, minimum: Int)

    /// A one-line explanation for logs.
    package var description: String {
        switch self {
        case .tooShort(let bytes, let minimum): "cluster key of \(bytes) bytes is shorter than \(minimum)"
        }
    }
}
