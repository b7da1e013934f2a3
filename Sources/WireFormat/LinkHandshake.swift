import ClusterProtocol
import Crypto

/// The handshake that opens every peer connection, so that a frame is valid on one
/// connection only. Peer connections carry frames one way, from the node that connected
/// to the node that accepted:
///
/// 1. The acceptor sends a **challenge**: `"SCC1"` and 16 random bytes (its nonce).
/// 2. The connector answers with a **hello**: `"SCH1"`, its own 16-byte nonce, the id of
///    the cluster key it uses, its node id (a length byte, then UTF-8), and a 16-byte
///    HMAC-SHA256 under that cluster key over `"swift-session-cluster hello"`, the
///    challenge's nonce and every hello byte before the MAC.
/// 3. Both derive the **link key**, HKDF-SHA256 of the cluster key with both nonces as salt
///    and the connector's id as info, and every frame on the connection is authenticated
///    with it, its MAC also covering the frame's number on the connection.
///
/// What it buys: a captured stream replayed onto a new connection meets a new challenge,
/// so its hello and every frame fail authentication; a frame replayed, dropped or reordered
/// within a connection fails too (its number is wrong); and every message on a connection
/// must name the node its hello named (``WireError/senderMismatch(expected:got:)``), so a
/// connection speaks for one node. A holder of the cluster key can still claim any id in
/// its hello: mutual TLS (node certificates) binds ids to keys that only each node holds.
package enum LinkHandshake {
    static let challengeMagic: [UInt8] = Array("SCC1".utf8)
    static let helloMagic: [UInt8] = Array("SCH1".utf8)
    static let context: [UInt8] = Array("swift-session-cluster hello".utf8)
    static let keyInfo: [UInt8] = Array("swift-session-cluster link v1".utf8)
    /// Bytes of each side's nonce.
    package static let nonceBytes = 16
    /// Bytes of a challenge.
    package static let challengeBytes = 4 + nonceBytes
    /// The longest node id a hello carries.
    static let maxIDBytes = 255

    /// A fresh nonce from the system's secure generator.
    package static func nonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<nonceBytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// The acceptor's challenge.
    package static func challenge(nonce: [UInt8]) -> [UInt8] {
        precondition(nonce.count == nonceBytes)
        return challengeMagic + nonce
    }

    /// The nonce of the challenge at the start of `bytes`, or nil while fewer than
    /// ``challengeBytes`` arrived.
    package static func readChallenge(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> [UInt8]? {
        guard startsWith(challengeMagic, bytes) else { throw .handshakeFailed("not a challenge") }
        guard bytes.count >= challengeBytes else { return nil }
        return Array(bytes[4..<challengeBytes])
    }

    /// The connector's hello to `challenge`, under `codec`'s sending key.
    package static func hello(answering challenge: [UInt8], nonce: [UInt8], from sender: NodeID, codec: FrameCodec) -> [UInt8] {
        let id = Array(sender.rawValue.utf8.prefix(maxIDBytes))
        var hello = helloMagic + nonce
        hello.append(codec.sendingKeyID)
        hello.append(UInt8(id.count))
        hello += id
        let key = codec.acceptedKeys[Int(codec.sendingKeyID)]!
        let code = mac(of: hello, challenge: challenge, key: key)
        hello += code
        return hello
    }

    /// A hello that checked out: who connected, and how long the hello was.
    package struct Hello: Sendable {
        package var sender: NodeID
        package var nonce: [UInt8]
        package var keyID: UInt8
        package var length: Int
    }

    /// The hello at the start of `bytes`, checked against `challenge` under `codec`'s keys,
    /// or nil while it is incomplete.
    package static func readHello(
        _ bytes: UnsafeRawBufferPointer, challenge: [UInt8], codec: FrameCodec
    ) throws(WireError) -> Hello? {
        let fixed = 4 + nonceBytes + 2
        guard startsWith(helloMagic, bytes) else { throw .handshakeFailed("not a hello") }
        guard bytes.count >= fixed else { return nil }
        let keyID = bytes[4 + nonceBytes]
        let idLength = Int(bytes[fixed - 1])
        let length = fixed + idLength + FrameHeader.macLength
        guard bytes.count >= length else { return nil }
        guard Int(keyID) < codec.acceptedKeys.count, let key = codec.acceptedKeys[Int(keyID)] else { throw .unknownKeyID(keyID) }
        let authenticated = context + challenge + Array(bytes[0..<(fixed + idLength)])
        let valid = authenticated.withUnsafeBytes { authenticated in
            codec.isValidAuthenticationCode(
                UnsafeRawBufferPointer(rebasing: bytes[(fixed + idLength)..<length]), authenticating: authenticated, key: key)
        }
        guard valid else {
            throw .handshakeFailed("hello does not answer this connection's challenge")
        }
        guard let id = String(validating: bytes[fixed..<(fixed + idLength)], as: UTF8.self), !id.isEmpty else {
            throw .handshakeFailed("hello names no node")
        }
        return Hello(sender: NodeID(id), nonce: Array(bytes[4..<(4 + nonceBytes)]), keyID: keyID, length: length)
    }

    /// The codec of one connection: its key derived from the cluster key `keyID` of
    /// `codec`, both nonces and the connector's id; frames numbered. Nil when `codec` has
    /// no key `keyID`.
    package static func linkCodec(
        _ codec: FrameCodec, keyID: UInt8, challenge: [UInt8], nonce: [UInt8], connector: NodeID
    ) -> FrameCodec? {
        guard let clusterKey = codec.configuration.keys.first(where: { $0.id == keyID }) else { return nil }
        let derived = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: clusterKey.bytes), salt: challenge + nonce,
            info: keyInfo + Array(connector.rawValue.utf8), outputByteCount: 32)
        let linkKey = WireKey(id: keyID, bytes: derived.withUnsafeBytes { Array($0) })
        guard let configuration = try? codec.configuration.replacingKeys(with: [linkKey]) else { return nil }
        return FrameCodec(configuration: configuration, numbersLinkFrames: true)
    }

    private static func mac(of bytes: [UInt8], challenge: [UInt8], key: AuthenticationKey) -> [UInt8] {
        let code = (context + challenge + bytes).withUnsafeBytes { key.authenticationCode(for: $0) }
        return code.withUnsafeBytes { Array($0.prefix(FrameHeader.macLength)) }
    }

    /// False as soon as the bytes that arrived differ from `magic` (so garbage is refused at
    /// once, not after a timeout); true while they agree, however few arrived.
    private static func startsWith(_ magic: [UInt8], _ bytes: UnsafeRawBufferPointer) -> Bool {
        zip(magic, bytes).allSatisfy { $0 == $1 }
    }
}
