/// The settings every node of a cluster shares for its frames: the keys that authenticate
/// them and the limits that bound what a peer can make this node allocate.
///
/// ```swift
/// var configuration = try WireConfiguration(clusterKey: Array(secret.utf8))
/// configuration.maxFrameBytes = 4 * 1024 * 1024
/// let codec = FrameCodec(configuration: configuration)
/// ```
///
/// Several keys let a cluster change its key without a full restart: frames are sent under
/// the first key and accepted under any of them, each frame naming its key's id in its
/// header (see the layout in `Frame.swift`).
package struct WireConfiguration: Sendable {
    /// The shortest cluster key accepted: 16 bytes (128 bits).
    package static let minimumClusterKeyBytes = 16
    /// The most keys a configuration holds: one per id.
    package static let maximumKeyCount = WireKey.ids.count

    /// The HMAC-SHA256 keys, the sending key first; the others are only accepted. 1 to
    /// ``maximumKeyCount`` keys with distinct ids, each at least ``minimumClusterKeyBytes``
    /// long; set only through ``init(keys:)`` so that a bad key cannot slip in later.
    package private(set) var keys: [WireKey]
    /// The bytes of the sending key.
    package var clusterKey: [UInt8] { keys[0].bytes }
    /// The largest frame accepted, header and authentication code included, as it travels
    /// (compressed). Default 16 MiB. Senders keep their batches below it.
    package var maxFrameBytes: Int = 16 * 1024 * 1024
    /// The largest uncompressed body a compressed frame may claim. Default 64 MiB. A claim
    /// above it is refused before any allocation.
    package var maxDecompressedBytes: Int = 64 * 1024 * 1024
    /// Bodies of other messages than delta batches and state-transfer chunks are
    /// LZ4-compressed when they are larger than this. Default 512 bytes.
    package var compressionThresholdBytes: Int = 512

    /// A configuration with one key, id 0, and the default limits: frames byte for byte
    /// those of a build without key ids.
    ///
    /// Throws ``ClusterKeyError/tooShort(bytes:minimum:)`` when the key is shorter than
    /// ``minimumClusterKeyBytes``: a short key is a configuration mistake found at start-up,
    /// not a frame error, so it has its own error type.
    package init(clusterKey: [UInt8]) throws(ClusterKeyError) {
        try self.init(keys: [WireKey(id: 0, bytes: clusterKey)])
    }

    /// A configuration that sends under `keys[0]` and accepts frames under any of `keys`,
    /// with the default limits.
    ///
    /// Throws ``ClusterKeyError`` when there is no key or more than ``maximumKeyCount``, an
    /// id is outside ``WireKey/ids`` or used twice, or a key is too short.
    package init(keys: [WireKey]) throws(ClusterKeyError) {
        guard (1...Self.maximumKeyCount).contains(keys.count) else {
            throw .keyCount(keys.count, maximum: Self.maximumKeyCount)
        }
        var seen: Set<UInt8> = []
        for key in keys {
            guard WireKey.ids.contains(key.id) else { throw .idOutOfRange(key.id) }
            guard seen.insert(key.id).inserted else { throw .duplicateID(key.id) }
            guard key.bytes.count >= Self.minimumClusterKeyBytes else {
                throw .tooShort(bytes: key.bytes.count, minimum: Self.minimumClusterKeyBytes)
            }
        }
        self.keys = keys
    }

    /// The same limits with other keys (checked as ``init(keys:)`` does).
    package func replacingKeys(with keys: [WireKey]) throws(ClusterKeyError) -> WireConfiguration {
        var configuration = try WireConfiguration(keys: keys)
        configuration.maxFrameBytes = maxFrameBytes
        configuration.maxDecompressedBytes = maxDecompressedBytes
        configuration.compressionThresholdBytes = compressionThresholdBytes
        return configuration
    }
}

/// One cluster key and the small number that frames sent under it carry in their header.
package struct WireKey: Sendable, Hashable {
    /// The ids a key may have: three bits of the frame header's flags.
    package static let ids: ClosedRange<UInt8> = 0...7

    /// The key's id, in ``ids``.
    package var id: UInt8
    /// The HMAC-SHA256 key.
    package var bytes: [UInt8]

    /// A key; ``WireConfiguration/init(keys:)`` checks it.
    package init(id: UInt8, bytes: [UInt8]) {
        self.id = id
        self.bytes = bytes
    }
}

/// Why cluster keys were refused.
package enum ClusterKeyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The key has `bytes` bytes; at least `minimum` are required.
    case tooShort(bytes: Int, minimum: Int)
    /// `count` keys were given; 1 to `maximum` are required.
    case keyCount(Int, maximum: Int)
    /// A key id is outside 0...7.
    case idOutOfRange(UInt8)
    /// Two keys have this id.
    case duplicateID(UInt8)

    /// A one-line explanation for logs.
    package var description: String {
        switch self {
        case .tooShort(let bytes, let minimum): "cluster key of \(bytes) bytes is shorter than \(minimum)"
        case .keyCount(let count, let maximum): "\(count) cluster keys given; 1 to \(maximum) are required"
        case .idOutOfRange(let id): "cluster key id \(id) is outside \(WireKey.ids.lowerBound)...\(WireKey.ids.upperBound)"
        case .duplicateID(let id): "two cluster keys have the id \(id)"
        }
    }
}
