/// Why a frame was refused. Every byte string given to ``FrameCodec`` decodes to a message
/// or to one of these; none crashes the process.
///
/// Each case has a stable ``code`` that a node can send to its peer in a
/// `ProtocolErrorMessage` before closing the link. The codes never change meaning; new
/// cases get new codes.
package enum WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bytes end before the frame does (code 100).
    case truncated
    /// The frame does not start with the magic bytes "SC" (code 101).
    case badMagic
    /// The frame's protocol version is not one this build decodes (code 102).
    case unsupportedVersion(UInt8)
    /// The frame type is unknown at a version this build decodes: a newer peer sent a
    /// message this build does not have (code 103).
    case unknownFrameType(UInt8)
    /// The frame, header and authentication code included, is over
    /// ``WireConfiguration/maxFrameBytes`` (code 104).
    case frameTooLarge(bytes: Int, limit: Int)
    /// The HMAC-SHA256 does not match: another cluster key, or the bytes were altered (code 105).
    case authenticationFailed
    /// A compressed body claims an uncompressed size over
    /// ``WireConfiguration/maxDecompressedBytes``; refused before allocating (code 106).
    case decompressedTooLarge(claimed: Int, limit: Int)
    /// A compressed body is not valid LZ4, or does not decompress to the size it claims (code 107).
    case decompressionFailed
    /// The frame names a cluster key id this node has no key for: a peer already sends
    /// under a new key not configured here, or still under one removed here (code 109).
    case unknownKeyID(UInt8)
    /// A connection's opening handshake failed: bad magic, a hello whose MAC does not
    /// match the challenge (a replayed or forged hello), or a malformed one; the text says
    /// which (code 110).
    case handshakeFailed(String)
    /// A message on a connection names another sender than the node the connection's
    /// handshake authenticated (code 111).
    case senderMismatch(expected: String, got: String)
    /// The body does not decode; the text names the field, e.g.
    /// `"deltaBatch.delta.attribute.value.bytes: truncated"` (code 108).
    case malformed(String)

    /// The stable number of this error, for `ProtocolErrorMessage.code` and metrics labels.
    ///
    /// | code | case |
    /// | --- | --- |
    /// | 100 | ``truncated`` |
    /// | 101 | ``badMagic`` |
    /// | 102 | ``unsupportedVersion(_:)`` |
    /// | 103 | ``unknownFrameType(_:)`` |
    /// | 104 | ``frameTooLarge(bytes:limit:)`` |
    /// | 105 | ``authenticationFailed`` |
    /// | 106 | ``decompressedTooLarge(claimed:limit:)`` |
    /// | 107 | ``decompressionFailed`` |
    /// | 108 | ``malformed(_:)`` |
    /// | 109 | ``unknownKeyID(_:)`` |
    /// | 110 | ``handshakeFailed(_:)`` |
    /// | 111 | ``senderMismatch(expected:got:)`` |
    package var code: UInt16 {
        switch self {
        case .truncated: 100
        case .badMagic: 101
        case .unsupportedVersion: 102
        case .unknownFrameType: 103
        case .frameTooLarge: 104
        case .authenticationFailed: 105
        case .decompressedTooLarge: 106
        case .decompressionFailed: 107
        case .malformed: 108
        case .unknownKeyID: 109
        case .handshakeFailed: 110
        case .senderMismatch: 111
        }
    }

    /// A one-line explanation for logs.
    package var description: String {
        switch self {
        case .truncated: "frame truncated"
        case .badMagic: "bad magic: not a session-cluster frame"
        case .unsupportedVersion(let version): "unsupported protocol version \(version)"
        case .unknownFrameType(let type): "unknown frame type \(type)"
        case .frameTooLarge(let bytes, let limit): "frame of \(bytes) bytes is over the limit of \(limit)"
        case .authenticationFailed: "frame authentication failed (wrong cluster key or altered bytes)"
        case .decompressedTooLarge(let claimed, let limit):
            "compressed body claims \(claimed) bytes, over the limit of \(limit)"
        case .decompressionFailed: "compressed body does not decompress to its claimed size"
        case .malformed(let path): "malformed body at \(path)"
        case .unknownKeyID(let id): "frame under cluster key id \(id), which this node does not have"
        case .handshakeFailed(let reason): "connection handshake failed: \(reason)"
        case .senderMismatch(let expected, let got): "message from '\(got)' on a connection authenticated as '\(expected)'"
        }
    }
}
