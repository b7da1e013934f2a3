import ClusterProtocol
import Crypto

/// Turns ``ClusterMessage`` values into authenticated frames and back. A value type with no
/// I/O: the runtime feeds it bytes from its links, a fuzzer feeds it anything.
///
/// ```swift
/// let codec = FrameCodec(configuration: try WireConfiguration(clusterKey: key))
/// let frame = codec.encode(.heartbeat(heartbeat))
/// let message = try codec.decode(frame.bytes)
/// ```
///
/// On a byte stream, ``frameLength(peeking:)`` tells where each frame ends.
///
/// ## Frame layout, protocol version 1
///
/// Every message travels as one frame; all integers in the header are big-endian.
///
/// | offset | size | field                                                             |
/// | ------ | ---- | ----------------------------------------------------------------- |
/// | 0      | 2    | magic, "SC" (0x53 0x43)                                           |
/// | 2      | 1    | protocol version (1)                                              |
/// | 3      | 1    | frame type, one per `ClusterMessage` case (see `FrameType`)       |
/// | 4      | 1    | flags; bit 0: the body is LZ4-compressed; other bits must be 0     |
/// | 5      | 4    | body length L, as carried (compressed length when bit 0 is set)   |
/// | 9      | 4    | only when compressed: the uncompressed body length U              |
/// | 9/13   | L    | body                                                              |
/// | 9/13+L | 32   | HMAC-SHA256, keyed with the cluster key, over every byte before it |
///
/// The fixed header is 9 bytes, or 13 with the compressed flag; a frame is header + L + 32
/// bytes. The body is the message's fields in declaration order: integers as LEB128
/// varints in their shortest form (signed ones zigzag-encoded), booleans and enum tags as
/// one byte, optionals as a 0/1 byte then the value, strings and byte arrays as a varint
/// length then UTF-8 or raw bytes, arrays as a varint count then the elements, session ids
/// as their 18 raw bytes, dictionaries and sets sorted by name. A compressed body is one
/// LZ4 block (liblz4's block API), not an LZ4 frame.
///
/// Decoding order, so each failure is the cheapest to find and says the most:
/// magic (`badMagic`), version (`unsupportedVersion`), flags, lengths against the limits
/// (`frameTooLarge`, `decompressedTooLarge`, before any allocation), completeness
/// (`truncated`), the HMAC (`authenticationFailed`), then the frame type
/// (`unknownFrameType`: a peer of a newer release at a version we know), decompression
/// (`decompressionFailed`) and the body (`malformed`, with the field path).
///
/// Versions: a decoder accepts every version in `FrameCodec.supportedVersions` and encodes
/// `FrameCodec.protocolVersion`. A release that adds version n+1 keeps decoding n and keeps
/// sending n until every member announces n+1, so n and n+1 run in one cluster; a new
/// message at a known version is a new frame type, which older nodes refuse with a typed
/// error rather than misread.
public struct FrameCodec: Sendable {
    /// The protocol version this build writes.
    public static let protocolVersion: UInt8 = 1
    /// The protocol versions this build reads.
    public static let supportedVersions: ClosedRange<UInt8> = 1...1
    /// The most bytes ``frameLength(peeking:)`` needs to see before it can answer: the
    /// fixed header of a compressed frame.
    public static let maximumHeaderBytes = FrameHeader.compressedLength

    /// The settings this codec was made with.
    public let configuration: WireConfiguration
    private let key: AuthenticationKey

    /// Creates a codec; every member of a cluster uses the same configuration.
    public init(configuration: WireConfiguration) {
        self.configuration = configuration
        self.key = AuthenticationKey(SymmetricKey(data: configuration.clusterKey))
    }

    /// Encodes `message` as one authenticated frame, LZ4-compressing the body when the
    /// message is a batch (or the body is over ``WireConfiguration/compressionThresholdBytes``)
    /// and compression makes it smaller.
    ///
    /// Encoding never fails. It does not enforce ``WireConfiguration/maxFrameBytes``: the
    /// sender keeps its batches below the limit (`bytes.count` tells), since a receiver
    /// refuses a larger frame.
    public func encode(_ message: ClusterMessage) -> EncodedFrame {
        let type = message.frameType
        var writer = BinaryWriter(
            reservingCapacity: FrameHeader.plainLength + message.estimatedBodyBytes + FrameHeader.macLength)
        writer.writeZeros(FrameHeader.plainLength)
        message.writeBody(to: &writer)
        return seal(type: type.rawValue, framedBody: writer.finish(), mayCompress: type.alwaysCompressed)
    }

    /// Frames a body: `framedBody` holds ``FrameHeader/plainLength`` bytes of room for the
    /// header, then the body. Compresses when allowed and worth it, then appends the HMAC.
    func seal(type: UInt8, framedBody: [UInt8], mayCompress: Bool) -> EncodedFrame {
        let bodyLength = framedBody.count - FrameHeader.plainLength
        precondition(bodyLength <= Int(UInt32.max), "a frame body must be under 4 GiB")
        if mayCompress || bodyLength > configuration.compressionThresholdBytes,
           let frame = compressedFrame(type: type, framedBody: framedBody, bodyLength: bodyLength) {
            return EncodedFrame(bytes: frame, uncompressedBodyBytes: bodyLength, compressed: true)
        }
        var frame = framedBody
        frame.reserveCapacity(frame.count + FrameHeader.macLength)
        let header = FrameHeader(
            version: Self.protocolVersion, type: type, compressed: false, bodyLength: bodyLength,
            uncompressedLength: bodyLength)
        frame.withUnsafeMutableBytes { header.write(into: $0) }
        appendAuthenticationCode(to: &frame)
        return EncodedFrame(bytes: frame, uncompressedBodyBytes: bodyLength, compressed: false)
    }

    /// The compressed frame, or nil when LZ4 does not make the body smaller (counting the
    /// four bytes of the uncompressed length it adds).
    private func compressedFrame(type: UInt8, framedBody: [UInt8], bodyLength: Int) -> [UInt8]? {
        guard bodyLength > 0 else { return nil }
        let capacity = FrameHeader.compressedLength + LZ4.compressBound(bodyLength) + FrameHeader.macLength
        var compressedLength: Int?
        var frame = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            let output = UnsafeMutableRawBufferPointer(
                rebasing: UnsafeMutableRawBufferPointer(buffer)[FrameHeader.compressedLength..<(capacity - FrameHeader.macLength)])
            compressedLength = framedBody.withUnsafeBytes { input in
                LZ4.compress(UnsafeRawBufferPointer(rebasing: input[FrameHeader.plainLength...]), into: output)
            }
            guard let compressedLength, compressedLength + 4 < bodyLength else {
                initialized = 0
                return
            }
            let header = FrameHeader(
                version: Self.protocolVersion, type: type, compressed: true, bodyLength: compressedLength,
                uncompressedLength: bodyLength)
            header.write(into: UnsafeMutableRawBufferPointer(buffer))
            initialized = FrameHeader.compressedLength + compressedLength
        }
        guard let compressedLength, compressedLength + 4 < bodyLength else { return nil }
        appendAuthenticationCode(to: &frame)
        return frame
    }

    /// Appends the HMAC-SHA256 of every byte of `frame`.
    func appendAuthenticationCode(to frame: inout [UInt8]) {
        let code = frame.withUnsafeBytes { key.authenticationCode(for: $0) }
        code.withUnsafeBytes { frame.append(contentsOf: $0) }
    }

    /// For stream framing: given the bytes received so far, the total length of the first
    /// frame once its fixed header is there (9 bytes, 13 for a compressed frame), or nil
    /// while fewer bytes have arrived.
    ///
    /// Throws as soon as the bytes present show the frame is bad (``WireError/badMagic``,
    /// ``WireError/unsupportedVersion(_:)``, unknown flags as ``WireError/malformed(_:)``,
    /// ``WireError/frameTooLarge(bytes:limit:)``,
    /// ``WireError/decompressedTooLarge(claimed:limit:)``), so the link can be closed
    /// before the rest is buffered. Nothing here is authenticated yet: ``decode(_:)-(UnsafeRawBufferPointer)``
    /// checks the HMAC.
    public func frameLength(peeking bytes: UnsafeRawBufferPointer) throws(WireError) -> Int? {
        try FrameHeader.parse(bytes, configuration: configuration)?.totalLength
    }

    /// Decodes exactly one whole frame: a message, or a typed error (see the layout at the
    /// top of `Frame.swift` for the order of checks). Extra bytes after the frame are
    /// ``WireError/malformed(_:)``.
    public func decode(_ frame: UnsafeRawBufferPointer) throws(WireError) -> ClusterMessage {
        guard let header = try FrameHeader.parse(frame, configuration: configuration) else { throw .truncated }
        guard frame.count >= header.totalLength else { throw .truncated }
        guard frame.count == header.totalLength else {
            throw .malformed("frame: \(frame.count - header.totalLength) bytes after the frame")
        }
        let macStart = header.totalLength - FrameHeader.macLength
        let authenticated = UnsafeRawBufferPointer(rebasing: frame[..<macStart])
        let code = UnsafeRawBufferPointer(rebasing: frame[macStart...])
        // Constant-time comparison (swift-crypto's `==` of a MAC with bytes).
        guard key.authenticationCode(for: authenticated) == code else {
            throw .authenticationFailed
        }
        guard let type = FrameType(rawValue: header.type) else { throw .unknownFrameType(header.type) }
        let body = UnsafeRawBufferPointer(rebasing: frame[header.headerLength..<macStart])
        guard header.compressed else { return try ClusterMessage(type: type, body: body) }
        let decompressed = try LZ4.decompress(body, expectedCount: header.uncompressedLength)
        return try decompressed.withUnsafeBytesTyped { (body) throws(WireError) in try ClusterMessage(type: type, body: body) }
    }

    /// Decodes exactly one whole frame; see ``decode(_:)-(UnsafeRawBufferPointer)``.
    public func decode(_ frame: [UInt8]) throws(WireError) -> ClusterMessage {
        try frame.withUnsafeBytesTyped { (buffer) throws(WireError) in try decode(buffer) }
    }
}

/// The fixed header of a frame, parsed and checked against the limits.
struct FrameHeader {
    static let magic: (UInt8, UInt8) = (0x53, 0x43)
    static let plainLength = 9
    static let compressedLength = 13
    static let macLength = 32
    static let compressedFlag: UInt8 = 0b0000_0001
    static let knownFlags: UInt8 = compressedFlag

    var version: UInt8
    var type: UInt8
    var compressed: Bool
    var bodyLength: Int
    var uncompressedLength: Int
    var headerLength: Int { compressed ? Self.compressedLength : Self.plainLength }
    var totalLength: Int { headerLength + bodyLength + Self.macLength }

    /// The header at the start of `bytes`; nil until all of it is there. Throws as soon as
    /// the bytes present show the frame is bad, so a link can be closed early.
    static func parse(_ bytes: UnsafeRawBufferPointer, configuration: WireConfiguration) throws(WireError) -> FrameHeader? {
        if bytes.count >= 1, bytes[0] != magic.0 { throw .badMagic }
        if bytes.count >= 2, bytes[1] != magic.1 { throw .badMagic }
        if bytes.count >= 3, !FrameCodec.supportedVersions.contains(bytes[2]) { throw .unsupportedVersion(bytes[2]) }
        guard bytes.count >= plainLength else { return nil }
        let flags = bytes[4]
        guard flags & ~knownFlags == 0 else { throw .malformed("header.flags: unknown bits \(flags & ~knownFlags)") }
        let compressed = flags & compressedFlag != 0
        let bodyLength = Int(readUInt32(bytes, at: 5))
        let totalLength = (compressed ? compressedLength : plainLength) + bodyLength + macLength
        guard totalLength <= configuration.maxFrameBytes else {
            throw .frameTooLarge(bytes: totalLength, limit: configuration.maxFrameBytes)
        }
        var uncompressedLength = bodyLength
        if compressed {
            guard bytes.count >= compressedLength else { return nil }
            uncompressedLength = Int(readUInt32(bytes, at: 9))
            guard uncompressedLength <= configuration.maxDecompressedBytes else {
                throw .decompressedTooLarge(claimed: uncompressedLength, limit: configuration.maxDecompressedBytes)
            }
        }
        return FrameHeader(
            version: bytes[2], type: bytes[3], compressed: compressed, bodyLength: bodyLength,
            uncompressedLength: uncompressedLength)
    }

    /// Writes the header into the first ``headerLength`` bytes of `frame`.
    func write(into frame: UnsafeMutableRawBufferPointer) {
        frame[0] = Self.magic.0
        frame[1] = Self.magic.1
        frame[2] = version
        frame[3] = type
        frame[4] = compressed ? Self.compressedFlag : 0
        frame.storeBytes(of: UInt32(bodyLength).bigEndian, toByteOffset: 5, as: UInt32.self)
        if compressed {
            frame.storeBytes(of: UInt32(uncompressedLength).bigEndian, toByteOffset: 9, as: UInt32.self)
        }
    }

    private static func readUInt32(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> UInt32 {
        UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }
}

/// A frame ready to send, with the sizes that byte counters need.
public struct EncodedFrame: Sendable {
    /// The whole frame: header, body and authentication code.
    public var bytes: [UInt8]
    /// The body's size before compression (equal to its wire size when not compressed).
    public var uncompressedBodyBytes: Int
    /// Whether the body travels LZ4-compressed.
    public var compressed: Bool

    /// Creates a frame description.
    public init(bytes: [UInt8], uncompressedBodyBytes: Int, compressed: Bool) {
        self.bytes = bytes
        self.uncompressedBodyBytes = uncompressedBodyBytes
        self.compressed = compressed
    }
}

/// The cluster key, as an HMAC whose key blocks are already hashed in: each frame copies
/// it and hashes only its own bytes, instead of redoing the key setup (two SHA-256 blocks
/// and a few allocations) per frame.
///
/// swift-crypto does not mark `HMAC` Sendable, but this one is never mutated: a copy's
/// hashers copy their state on first write, so sharing it between threads is safe.
private struct AuthenticationKey: @unchecked Sendable {
    private let prepared: HMAC<SHA256>
    init(_ key: SymmetricKey) { self.prepared = HMAC<SHA256>(key: key) }

    func authenticationCode(for bytes: UnsafeRawBufferPointer) -> HashedAuthenticationCode<SHA256> {
        var mac = prepared
        mac.update(data: bytes)
        return mac.finalize()
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body that throws ``WireError`` (the standard one only rethrows `any Error`).
    func withUnsafeBytesTyped<Result>(
        _ body: (UnsafeRawBufferPointer) throws(WireError) -> Result
    ) throws(WireError) -> Result {
        try withUnsafeBytes { buffer in Swift.Result { () throws(WireError) in try body(buffer) } }.get()
    }
}
