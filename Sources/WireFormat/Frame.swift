import ClusterProtocol
import Crypto
import SessionCore

/// Turns ``ClusterMessage`` values into authenticated frames and back. A value type with no
/// I/O: the runtime feeds it bytes from its links, a fuzzer feeds it anything.
///
/// ```swift
/// let codec = FrameCodec(configuration: try WireConfiguration(clusterKey: key))
/// let frame = codec.encode(.heartbeat(heartbeat))
/// let message = try codec.decode(frame.bytes)
/// ```
///
/// On a byte stream, ``frameLength(peeking:)`` tells where each frame ends. A TCP link
/// encodes everything it has for the peer in one flush as one frame
/// (``encode(_:over:)``), compressed against the link's ``LinkHistory``, and decodes with
/// ``decode(_:over:)``.
///
/// ## Frame layout, protocol version 2
///
/// Every frame carries one message, or a bundle of several. Lengths in the header are
/// unsigned LEB128 varints in their shortest form, at most 5 bytes (32 bits): most frames
/// on a link are small, and a fixed-width header was a fifth of them.
///
/// | offset | size | field                                                                |
/// | ------ | ---- | -------------------------------------------------------------------- |
/// | 0      | 2    | magic, "SC" (0x53 0x43)                                              |
/// | 2      | 1    | protocol version (2)                                                 |
/// | 3      | 1    | frame type, one per `ClusterMessage` case (see `FrameType`), 18: bundle |
/// | 4      | 1    | flags; bit 0: the body is LZ4-compressed; bit 1: compressed against the link's history (needs bit 0); bits 2-4: the id (0-7) of the cluster key the HMAC is keyed with; bits 5-7 must be 0 |
/// | 5      | 1-5  | varint: body length L, as carried (compressed length when bit 0 is set) |
/// | ...    | 1-5  | varint, only when compressed: the uncompressed body length U         |
/// | ...    | L    | body                                                                 |
/// | ...    | 16   | HMAC-SHA256 truncated to its first 128 bits (RFC 2104 §5, as RFC 4868 does), keyed with the cluster key named in the flags, over every byte before it |
///
/// The header is 6 to 15 bytes (7 for a small compressed frame); a frame is header + L + 16
/// bytes. The body is the message's fields in declaration order: integers as LEB128
/// varints in their shortest form (signed ones zigzag-encoded), booleans and enum tags as
/// one byte, optionals as a 0/1 byte then the value, strings and byte arrays as a varint
/// length then UTF-8 or raw bytes, arrays as a varint count then the elements, session ids
/// as their 18 raw bytes, dictionaries and sets sorted by name. A compressed body is one
/// LZ4 block (liblz4's block API), not an LZ4 frame; with bit 1 it may refer back into the
/// last ``LinkHistory/windowBytes`` of uncompressed bodies sent on the same connection.
/// A bundle's body is a varint count (at least 2), then per message its frame type byte,
/// a varint length and its body.
///
/// Key ids: a node sends under the first key of its ``WireConfiguration/keys`` and accepts
/// a frame under any key it has, looked up by the id in the flags; an id it has no key for
/// is ``WireError/unknownKeyID(_:)``. So a cluster changes its key by rolling restarts
/// (add the new key second everywhere; move it first everywhere; remove the old one), and a
/// frame under key id 0 is byte for byte a frame of a build without key ids.
///
/// Why 128 bits of MAC: forging a frame means guessing a 128-bit tag online, against a
/// link that closes at the first failure; RFC 2104 §5 allows truncation to half the hash
/// output, and IPsec (RFC 4868) sends HMAC-SHA-256-128. The tag is compared in constant time.
///
/// Decoding order, so each failure is the cheapest to find and says the most:
/// magic (`badMagic`), version (`unsupportedVersion`), flags, lengths against the limits
/// (`frameTooLarge`, `decompressedTooLarge`, before any allocation), completeness
/// (`truncated`), the key id (`unknownKeyID`), the HMAC (`authenticationFailed`), then the frame type
/// (`unknownFrameType`: a peer of a newer release at a version we know), decompression
/// (`decompressionFailed`) and the body (`malformed`, with the field path).
///
/// Versions: a decoder accepts every version in `FrameCodec.supportedVersions` and encodes
/// `FrameCodec.protocolVersion`. A release that adds version n+1 keeps decoding n and keeps
/// sending n until every member announces n+1, so n and n+1 run in one cluster; a new
/// message at a known version is a new frame type, which older nodes refuse with a typed
/// error rather than misread. Version 2 (short tag, bundles, link history) replaced
/// version 1 before any release shipped it, so it does not read version 1.
package struct FrameCodec: Sendable {
    /// The protocol version this build writes.
    package static let protocolVersion: UInt8 = 2
    /// The protocol versions this build reads.
    package static let supportedVersions: ClosedRange<UInt8> = 2...2
    /// The most bytes ``frameLength(peeking:)`` needs to see before it can answer: the
    /// header of a compressed frame with 5-byte lengths.
    package static let maximumHeaderBytes = FrameHeader.maximumLength
    /// The frame type of a bundle of several messages.
    static let bundleType: UInt8 = 18

    /// The settings this codec was made with.
    package let configuration: WireConfiguration
    /// The key frames are sent under.
    private let sendingKey: AuthenticationKey
    /// The id written in the flags of every frame sent.
    package let sendingKeyID: UInt8
    /// The keys frames are accepted under, indexed by id; nil where the configuration has none.
    let acceptedKeys: [AuthenticationKey?]
    /// A link codec's MAC also covers the frame's number on its connection (counted in the
    /// ``LinkHistory`` of each side, never sent), so a frame replayed, dropped or reordered
    /// within a connection fails authentication. Set for the codecs a handshake derives
    /// (``LinkHandshake``); the cluster codec's frames are numbered by nothing.
    let numbersLinkFrames: Bool

    /// Creates a codec. Members of a cluster share their limits, and at least the key each
    /// sends under is one the others accept.
    package init(configuration: WireConfiguration) {
        self.init(configuration: configuration, numbersLinkFrames: false)
    }

    init(configuration: WireConfiguration, numbersLinkFrames: Bool) {
        self.numbersLinkFrames = numbersLinkFrames
        self.configuration = configuration
        var accepted = [AuthenticationKey?](repeating: nil, count: WireKey.ids.count)
        for key in configuration.keys { accepted[Int(key.id)] = AuthenticationKey(SymmetricKey(data: key.bytes)) }
        self.acceptedKeys = accepted
        self.sendingKeyID = configuration.keys[0].id
        self.sendingKey = accepted[Int(sendingKeyID)]!
    }

    /// Encodes `message` as one authenticated frame on its own (a datagram), LZ4-compressing
    /// the body when the message is a batch (or the body is over
    /// ``WireConfiguration/compressionThresholdBytes``) and compression makes it smaller.
    ///
    /// Encoding never fails. It does not enforce ``WireConfiguration/maxFrameBytes``: the
    /// sender keeps its batches below the limit (`bytes.count` tells), since a receiver
    /// refuses a larger frame.
    package func encode(_ message: ClusterMessage) -> EncodedFrame {
        let type = message.frameType
        return seal(type: type.rawValue, body: Self.body(of: message), mayCompress: type.alwaysCompressed)
    }

    /// Encodes `messages` (at least one), in order, as one frame for a TCP link: the message
    /// alone when there is one, else a bundle. The body is compressed against `history`
    /// when that makes it smaller, and recorded in it: the frame must then be sent on that
    /// link, after every frame encoded over it before.
    package func encode(_ messages: [ClusterMessage], over history: LinkHistory) -> EncodedFrame {
        precondition(!messages.isEmpty, "a frame carries at least one message")
        if messages.count == 1 {
            let message = messages[0]
            return seal(type: message.frameType.rawValue, body: Self.body(of: message), mayCompress: true, history: history)
        }
        return seal(type: Self.bundleType, body: Self.bundleBody(of: messages), mayCompress: true, history: history)
    }

    /// The bytes `message` takes as a frame of its own before compression: what the
    /// simulator counts, so that its traffic tables are the encoder's, not an estimate.
    package static func uncompressedFrameLength(of message: ClusterMessage) -> Int {
        let bodyLength = body(of: message).count
        return FrameHeader.fixedLength + FrameHeader.varintLength(bodyLength) + bodyLength + FrameHeader.macLength
    }

    /// A bundle's body: the count, then each message's type, length and body.
    static func bundleBody(of messages: [ClusterMessage]) -> [UInt8] {
        var writer = BinaryWriter(reservingCapacity: messages.reduce(0) { $0 + $1.estimatedBodyBytes + 4 })
        writer.writeVarint(UInt64(messages.count))
        var part = BinaryWriter(reservingCapacity: 256)
        for message in messages {
            writer.writeByte(message.frameType.rawValue)
            message.writeBody(to: &part)
            writer.writeBytes(part.bytes)
            part.removeAll()
        }
        return writer.finish()
    }

    private static func body(of message: ClusterMessage) -> [UInt8] {
        var writer = BinaryWriter(reservingCapacity: message.estimatedBodyBytes)
        message.writeBody(to: &writer)
        return writer.finish()
    }

    /// Frames a body: compresses it when allowed and worth it (always tried against a link
    /// history), records it in `history`, then appends the HMAC.
    func seal(type: UInt8, body: [UInt8], mayCompress: Bool, history: LinkHistory? = nil) -> EncodedFrame {
        precondition(body.count <= Int(UInt32.max), "a frame body must be under 4 GiB")
        defer { body.withUnsafeBytes { history?.record($0) } }
        if mayCompress || body.count > configuration.compressionThresholdBytes,
           let compressed = Self.compress(body, against: history) {
            let header = FrameHeader(
                version: Self.protocolVersion, type: type, compressed: true, linked: history != nil, keyID: sendingKeyID,
                bodyLength: compressed.count, uncompressedLength: body.count)
            return EncodedFrame(
                bytes: frame(header, carrying: compressed, number: nextNumber(sentOn: history)), uncompressedBodyBytes: body.count,
                compressed: true)
        }
        let header = FrameHeader(
            version: Self.protocolVersion, type: type, compressed: false, linked: false, keyID: sendingKeyID,
            bodyLength: body.count, uncompressedLength: body.count)
        return EncodedFrame(
            bytes: frame(header, carrying: body, number: nextNumber(sentOn: history)), uncompressedBodyBytes: body.count,
            compressed: false)
    }

    /// The number of the next frame sent over `history`'s connection, when this codec numbers them.
    private func nextNumber(sentOn history: LinkHistory?) -> UInt64? {
        guard numbersLinkFrames, let history else { return nil }
        defer { history.framesSent += 1 }
        return history.framesSent
    }

    /// The LZ4 block of `body`, or nil when it is not smaller than the body even after
    /// paying for the uncompressed length it adds to the header.
    private static func compress(_ body: [UInt8], against history: LinkHistory?) -> [UInt8]? {
        guard !body.isEmpty else { return nil }
        let capacity = LZ4.compressBound(body.count)
        var compressedLength: Int?
        let compressed = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            let output = UnsafeMutableRawBufferPointer(buffer)
            compressedLength = body.withUnsafeBytes { input in
                history.map { $0.compress(input, into: output) } ?? LZ4.compress(input, into: output)
            }
            initialized = compressedLength ?? 0
        }
        guard let compressedLength, compressedLength + FrameHeader.varintLength(body.count) < body.count else { return nil }
        return compressed
    }

    /// Header, carried body and tag in one buffer.
    private func frame(_ header: FrameHeader, carrying body: [UInt8], number: UInt64?) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(header.headerLength + body.count + FrameHeader.macLength)
        header.append(to: &frame)
        frame.append(contentsOf: body)
        appendAuthenticationCode(to: &frame, number: number)
        return frame
    }

    /// Appends the truncated HMAC-SHA256 of every byte of `frame` (after the frame's
    /// `number` on its link, when numbered), under the sending key.
    func appendAuthenticationCode(to frame: inout [UInt8], number: UInt64? = nil) {
        let code = frame.withUnsafeBytes { sendingKey.authenticationCode(for: $0, number: number) }
        code.withUnsafeBytes { frame.append(contentsOf: $0.prefix(FrameHeader.macLength)) }
    }

    /// Whether `code` is the truncated HMAC of `authenticated` under `key`, compared in constant time.
    func isValidAuthenticationCode(
        _ code: UnsafeRawBufferPointer, authenticating authenticated: UnsafeRawBufferPointer, key: AuthenticationKey,
        number: UInt64? = nil
    ) -> Bool {
        let expected = key.authenticationCode(for: authenticated, number: number)
        return expected.withUnsafeBytes { full in
            guard code.count == FrameHeader.macLength, full.count >= FrameHeader.macLength else { return false }
            var difference: UInt8 = 0
            for index in 0..<FrameHeader.macLength { difference |= full[index] ^ code[index] }
            return difference == 0
        }
    }

    /// For stream framing: given the bytes received so far, the total length of the first
    /// frame once its header is there (at most ``maximumHeaderBytes``), or nil while fewer
    /// bytes have arrived.
    ///
    /// Throws as soon as the bytes present show the frame is bad (``WireError/badMagic``,
    /// ``WireError/unsupportedVersion(_:)``, unknown flags as ``WireError/malformed(_:)``,
    /// ``WireError/frameTooLarge(bytes:limit:)``,
    /// ``WireError/decompressedTooLarge(claimed:limit:)``), so the link can be closed
    /// before the rest is buffered. Nothing here is authenticated yet: ``decode(_:over:)``
    /// checks the HMAC.
    package func frameLength(peeking bytes: UnsafeRawBufferPointer) throws(WireError) -> Int? {
        try FrameHeader.parse(bytes, configuration: configuration)?.totalLength
    }

    /// Decodes exactly one whole frame that carries one message and no link history (a
    /// datagram); see ``decode(_:over:)``. A bundle is ``WireError/malformed(_:)`` here.
    package func decode(_ frame: UnsafeRawBufferPointer) throws(WireError) -> ClusterMessage {
        let messages = try decode(frame, over: nil)
        guard messages.count == 1 else { throw .malformed("bundle: \(messages.count) messages where one was expected") }
        return messages[0]
    }

    /// Decodes exactly one whole frame: its messages in order (one, or a bundle's), or a
    /// typed error (see the layout at the top of `Frame.swift` for the order of checks).
    /// Extra bytes after the frame are ``WireError/malformed(_:)``, and so is a frame
    /// compressed against a link history when `history` is nil. A frame that decodes is
    /// recorded in `history`.
    package func decode(_ frame: UnsafeRawBufferPointer, over history: LinkHistory?) throws(WireError) -> [ClusterMessage] {
        guard let header = try FrameHeader.parse(frame, configuration: configuration) else { throw .truncated }
        guard frame.count >= header.totalLength else { throw .truncated }
        guard frame.count == header.totalLength else {
            throw .malformed("frame: \(frame.count - header.totalLength) bytes after the frame")
        }
        let macStart = header.totalLength - FrameHeader.macLength
        let authenticated = UnsafeRawBufferPointer(rebasing: frame[..<macStart])
        let code = UnsafeRawBufferPointer(rebasing: frame[macStart...])
        guard let key = acceptedKeys[Int(header.keyID)] else { throw .unknownKeyID(header.keyID) }
        let number = numbersLinkFrames ? history?.framesReceived : nil
        guard isValidAuthenticationCode(code, authenticating: authenticated, key: key, number: number) else {
            throw .authenticationFailed
        }
        if number != nil { history?.framesReceived += 1 }
        let type = header.type
        guard type == Self.bundleType || FrameType(rawValue: type) != nil else { throw .unknownFrameType(type) }
        if header.linked && history == nil { throw .malformed("header.flags: compressed against a link history outside a link") }
        let carried = UnsafeRawBufferPointer(rebasing: frame[header.headerLength..<macStart])
        guard header.compressed else { return try Self.messages(type: type, body: carried, recordingIn: history) }
        let decompressed =
            if header.linked, let history { try history.decompress(carried, expectedCount: header.uncompressedLength) }
            else { try LZ4.decompress(carried, expectedCount: header.uncompressedLength) }
        return try decompressed.withUnsafeBytesTyped { (body) throws(WireError) in
            try Self.messages(type: type, body: body, recordingIn: history)
        }
    }

    /// Decodes exactly one whole frame; see ``decode(_:)-(UnsafeRawBufferPointer)``.
    package func decode(_ frame: [UInt8]) throws(WireError) -> ClusterMessage {
        try frame.withUnsafeBytesTyped { (buffer) throws(WireError) in try decode(buffer) }
    }

    /// The messages of a checked frame's uncompressed body; the body goes into `history`
    /// once it decoded.
    private static func messages(type: UInt8, body: UnsafeRawBufferPointer, recordingIn history: LinkHistory?) throws(WireError) -> [ClusterMessage] {
        let messages: [ClusterMessage]
        if let frameType = FrameType(rawValue: type) {
            messages = [try ClusterMessage(type: frameType, body: body)]
        } else {
            messages = try bundle(body)
        }
        history?.record(body)
        return messages
    }

    private static func bundle(_ body: UnsafeRawBufferPointer) throws(WireError) -> [ClusterMessage] {
        var reader = BinaryReader(body)
        let count = try reader.readVarint("bundle.count")
        // Each message takes at least its type byte and its length byte.
        guard count >= 2, count <= UInt64(reader.remaining / 2) else {
            throw .malformed("bundle.count: \(count) messages in \(reader.remaining) bytes")
        }
        var messages: [ClusterMessage] = []
        messages.reserveCapacity(Int(count))
        for _ in 0..<count {
            let type = try reader.readByte("bundle.type")
            guard let frameType = FrameType(rawValue: type) else {
                if type == bundleType { throw .malformed("bundle.type: a bundle inside a bundle") }
                throw .unknownFrameType(type)
            }
            let part = try reader.readSlice("bundle.body")
            do {
                messages.append(try ClusterMessage(type: frameType, body: part))
            } catch .malformed(let path) {
                throw .malformed("bundle.\(path)")
            }
        }
        try reader.expectEnd("bundle")
        return messages
    }
}

/// The header of a frame, parsed and checked against the limits.
struct FrameHeader {
    static let magic: (UInt8, UInt8) = (0x53, 0x43)
    /// Magic, version, type and flags; the lengths follow.
    static let fixedLength = 5
    static let maximumVarintLength = 5
    static let maximumLength = fixedLength + 2 * maximumVarintLength
    static let macLength = 16
    static let compressedFlag: UInt8 = 0b0000_0001
    static let linkedFlag: UInt8 = 0b0000_0010
    /// Bits 2-4: the id of the key the HMAC is keyed with.
    static let keyIDShift: UInt8 = 2
    static let keyIDMask: UInt8 = 0b0001_1100
    static let knownFlags: UInt8 = compressedFlag | linkedFlag | keyIDMask

    var version: UInt8
    var type: UInt8
    var compressed: Bool
    /// Compressed against the link's history.
    var linked: Bool
    /// The id of the cluster key the HMAC is keyed with.
    var keyID: UInt8
    var bodyLength: Int
    var uncompressedLength: Int
    var headerLength: Int {
        Self.fixedLength + Self.varintLength(bodyLength) + (compressed ? Self.varintLength(uncompressedLength) : 0)
    }
    var totalLength: Int { headerLength + bodyLength + Self.macLength }

    static func varintLength(_ value: Int) -> Int {
        LEB128.byteCount(value)
    }

    /// The header at the start of `bytes`; nil until all of it is there. Throws as soon as
    /// the bytes present show the frame is bad, so a link can be closed early.
    static func parse(_ bytes: UnsafeRawBufferPointer, configuration: WireConfiguration) throws(WireError) -> FrameHeader? {
        if bytes.count >= 1, bytes[0] != magic.0 { throw .badMagic }
        if bytes.count >= 2, bytes[1] != magic.1 { throw .badMagic }
        if bytes.count >= 3, !FrameCodec.supportedVersions.contains(bytes[2]) { throw .unsupportedVersion(bytes[2]) }
        guard bytes.count >= fixedLength else { return nil }
        let flags = bytes[4]
        guard flags & ~knownFlags == 0 else { throw .malformed("header.flags: unknown bits \(flags & ~knownFlags)") }
        let compressed = flags & compressedFlag != 0
        let linked = flags & linkedFlag != 0
        let keyID = (flags & keyIDMask) >> keyIDShift
        guard compressed || !linked else { throw .malformed("header.flags: history without compression") }
        var offset = fixedLength
        guard let bodyLength = try readVarint(bytes, at: &offset, "header.bodyLength") else { return nil }
        var uncompressedLength = bodyLength
        // The smallest header this frame can have, to refuse an oversized claim early.
        let totalLength = offset + (compressed ? 1 : 0) + bodyLength + macLength
        guard totalLength <= configuration.maxFrameBytes else {
            throw .frameTooLarge(bytes: totalLength, limit: configuration.maxFrameBytes)
        }
        if compressed {
            guard let claimed = try readVarint(bytes, at: &offset, "header.uncompressedLength") else { return nil }
            guard claimed <= configuration.maxDecompressedBytes else {
                throw .decompressedTooLarge(claimed: claimed, limit: configuration.maxDecompressedBytes)
            }
            uncompressedLength = claimed
            let totalLength = offset + bodyLength + macLength
            guard totalLength <= configuration.maxFrameBytes else {
                throw .frameTooLarge(bytes: totalLength, limit: configuration.maxFrameBytes)
            }
        }
        return FrameHeader(
            version: bytes[2], type: bytes[3], compressed: compressed, linked: linked, keyID: keyID,
            bodyLength: bodyLength, uncompressedLength: uncompressedLength)
    }

    /// A varint length at `offset`, advancing past it; nil while it is incomplete.
    private static func readVarint(_ bytes: UnsafeRawBufferPointer, at offset: inout Int, _ field: String) throws(WireError) -> Int? {
        switch LEB128.read(UInt32.self, from: bytes, at: &offset) {
        case .success(let value): return Int(value)
        case .failure(.truncated): return nil
        case .failure(.overflow): throw .malformed("\(field): over 32 bits")
        case .failure(.notShortest): throw .malformed("\(field): varint not in its shortest form")
        }
    }

    /// Appends the header to an empty frame.
    func append(to frame: inout [UInt8]) {
        frame.append(Self.magic.0)
        frame.append(Self.magic.1)
        frame.append(version)
        frame.append(type)
        frame.append((compressed ? Self.compressedFlag : 0) | (linked ? Self.linkedFlag : 0) | keyID << Self.keyIDShift)
        Self.appendVarint(bodyLength, to: &frame)
        if compressed { Self.appendVarint(uncompressedLength, to: &frame) }
    }

    private static func appendVarint(_ value: Int, to frame: inout [UInt8]) {
        LEB128.append(UInt64(value), to: &frame)
    }
}

/// A frame ready to send, with the sizes that byte counters need.
package struct EncodedFrame: Sendable {
    /// The whole frame: header, body and authentication code.
    package var bytes: [UInt8]
    /// The body's size before compression (equal to its wire size when not compressed).
    package var uncompressedBodyBytes: Int
    /// Whether the body travels LZ4-compressed.
    package var compressed: Bool

    /// Creates a frame description.
    package init(bytes: [UInt8], uncompressedBodyBytes: Int, compressed: Bool) {
        self.bytes = bytes
        self.uncompressedBodyBytes = uncompressedBodyBytes
        self.compressed = compressed
    }
}

/// A cluster key, as HMAC-SHA256 (RFC 2104) with its two key blocks already hashed in:
/// each frame copies the two prepared hashers and hashes only its own bytes.
///
/// Built on `SHA256` rather than swift-crypto's `HMAC`, whose `update` is generic over
/// `DataProtocol` and runs unspecialized from here: its generic dispatch cost four times the
/// hashing itself, about 5% of a replicated update's CPU. `WireFormatTests` check every
/// code against `HMAC<SHA256>`.
///
/// `SHA256` is not marked Sendable, but these are never mutated: a copy's state is copied on
/// its first write, so sharing them between threads is safe.
struct AuthenticationKey: @unchecked Sendable {
    private let inner: SHA256
    private let outer: SHA256

    init(_ key: SymmetricKey) {
        // A key longer than a block is hashed first; either way it is padded with zeros.
        var block = [UInt8](repeating: 0, count: SHA256.blockByteCount)
        key.withUnsafeBytes { bytes in
            if bytes.count > block.count {
                SHA256.hash(data: bytes).withUnsafeBytes { digest in block.replaceSubrange(0..<digest.count, with: digest) }
            } else {
                block.replaceSubrange(0..<bytes.count, with: bytes)
            }
        }
        var inner = SHA256()
        var outer = SHA256()
        block.map { $0 ^ 0x36 }.withUnsafeBytes { inner.update(bufferPointer: $0) }
        block.map { $0 ^ 0x5c }.withUnsafeBytes { outer.update(bufferPointer: $0) }
        self.inner = inner
        self.outer = outer
    }

    /// The HMAC of `bytes`, preceded by `number` as 8 little-endian bytes when given.
    func authenticationCode(for bytes: UnsafeRawBufferPointer, number: UInt64? = nil) -> SHA256Digest {
        var inner = self.inner
        if let number { withUnsafeBytes(of: number.littleEndian) { inner.update(bufferPointer: $0) } }
        inner.update(bufferPointer: bytes)
        var outer = self.outer
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize()
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
