// libFuzzer target: frames from a peer that holds the cluster key (a compromised or buggy
// node), so that the fuzzer's bytes get past authentication into what only such a peer
// reaches: LZ4 decompression (alone and against a link's history), the message bodies,
// bundles, and the history both ends must keep in step.
//
// The input is a link: a sequence of records, each a LEB128 length and then
//
//     [frame type] [flags] [uncompressed length, LEB128, when flags bit 0 is set] [body...]
//
// and the harness makes each record a whole frame: magic, version, the flags' compression
// bits (key id 0), the body length, and the HMAC under the test key. The frames are decoded
// in order over one `LinkHistory`, as a link does, until the first error (which closes a
// link). Every message that decodes must encode again and decode back to itself.
//
// SESSION_CLUSTER_FUZZ_WRITE_SEEDS=<dir> writes the seeds instead (scripts/fuzz.sh --seeds):
// the golden frames of Fixtures/frames as records, and links of several of their messages
// compressed against each other.
import ClusterProtocol
import Crypto
import Foundation
import FuzzSupport
import WireFormat

/// The golden frames' key (Fixtures/frames/README.md).
private let key = Array("golden-test-cluster-key-0123456789".utf8)
private let codec = FrameCodec(configuration: try! WireConfiguration(clusterKey: key))
private let macLength = 16

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAuthenticatedFrames(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: start, count: start == nil ? 0 : count)
    let history = LinkHistory()
    var offset = 0
    while offset < input.count {
        guard let length = readVarint(input, at: &offset) else { return 0 }
        let record = UnsafeRawBufferPointer(rebasing: input[offset..<min(input.count, offset + Int(length))])
        offset += record.count
        guard let frame = authenticatedFrame(record) else { return 0 }
        let messages: [ClusterMessage]
        do {
            messages = try frame.withUnsafeBytes { buffer throws(WireError) in try codec.decode(buffer, over: history) }
        } catch {
            return 0
        }
        precondition(!messages.isEmpty, "a frame decoded to no message")
        if frame[4] & 0b10 == 0 {
            // Not linked: a datagram carrying the same frame reads the same.
            if messages.count == 1 {
                precondition((try? codec.decode(frame)) == messages[0], "the frame reads differently as a datagram")
            }
        }
        for message in messages {
            let again = codec.encode(message)
            do {
                let decoded = try codec.decode(again.bytes)
                precondition(decoded == message, "\(message) re-encoded decodes as \(decoded)")
            } catch {
                preconditionFailure("\(message) re-encoded does not decode: \(error)")
            }
        }
    }
    return 0
}

/// The whole frame a record stands for, with its HMAC; nil when the record is too short or
/// its uncompressed length is not a 32-bit LEB128.
private func authenticatedFrame(_ record: UnsafeRawBufferPointer) -> [UInt8]? {
    guard record.count >= 2 else { return nil }
    let type = record[0]
    let flags = record[1] & 0b11
    var offset = 2
    var frame: [UInt8] = [0x53, 0x43, FrameCodec.protocolVersion, type, flags]
    var uncompressedLength: UInt64?
    if flags & 0b01 != 0 {
        guard let claimed = readVarint(record, at: &offset), claimed <= UInt64(UInt32.max) else { return nil }
        uncompressedLength = claimed
    }
    let body = UnsafeRawBufferPointer(rebasing: record[offset...])
    appendVarint(UInt64(body.count), to: &frame)
    if let uncompressedLength { appendVarint(uncompressedLength, to: &frame) }
    frame.append(contentsOf: body)
    appendAuthenticationCode(to: &frame)
    return frame
}

private func appendAuthenticationCode(to frame: inout [UInt8]) {
    let code = HMAC<SHA256>.authenticationCode(for: frame, using: SymmetricKey(data: key))
    frame.append(contentsOf: Array(code).prefix(macLength))
}

/// A LEB128 varint of at most 5 bytes; nil when the input ends first or it is longer.
private func readVarint(_ bytes: UnsafeRawBufferPointer, at offset: inout Int) -> UInt64? {
    var value: UInt64 = 0
    for index in 0..<5 {
        guard offset < bytes.count else { return nil }
        let byte = bytes[offset]
        offset += 1
        value |= UInt64(byte & 0x7F) << (7 * UInt64(index))
        if byte & 0x80 == 0 { return value }
    }
    return nil
}

private func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
    var value = value
    while value >= 0x80 {
        bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
        value >>= 7
    }
    bytes.append(UInt8(value))
}

// MARK: - Seeds

/// A frame as a record of this target's input: its type, flags, uncompressed length and
/// body, without magic, version, body length or tag.
private func record(of frame: [UInt8]) -> [UInt8] {
    let flags = frame[4]
    var offset = 5
    _ = frame.withUnsafeBytes { readVarint($0, at: &offset) }
    var record: [UInt8] = [frame[3], flags & 0b11]
    if flags & 0b01 != 0 {
        let start = offset
        _ = frame.withUnsafeBytes { readVarint($0, at: &offset) }
        record += frame[start..<offset]
    }
    record += frame[offset..<(frame.count - macLength)]
    var framed: [UInt8] = []
    appendVarint(UInt64(record.count), to: &framed)
    return framed + record
}

private func writeSeeds(to output: URL) throws {
    let frames = fixtures("frames")
    var messages: [(name: String, message: ClusterMessage)] = []
    for file in try FileManager.default.contentsOfDirectory(atPath: frames.path).sorted() where file.hasSuffix(".bin") {
        let frame = Array(try Data(contentsOf: frames.appendingPathComponent(file)))
        let name = String(file.dropLast(4))
        try Data(record(of: frame)).write(to: output.appendingPathComponent("golden-\(name)"))
        let decoded = try frame.withUnsafeBytes { buffer throws(WireError) in try codec.decode(buffer, over: LinkHistory()) }
        messages += decoded.map { (name, $0) }
    }
    // Links: each message alone, then all of them in pairs, each frame compressed against
    // the bodies before it, so that the history is what the later frames refer to.
    func link(_ frames: [[ClusterMessage]]) -> [UInt8] {
        let history = LinkHistory()
        return frames.flatMap { record(of: codec.encode($0, over: history).bytes) }
    }
    let all = messages.map(\.message)
    try Data(link(all.map { [$0] })).write(to: output.appendingPathComponent("link-one-by-one"))
    try Data(link(stride(from: 0, to: all.count - 1, by: 2).map { [all[$0], all[$0 + 1]] }))
        .write(to: output.appendingPathComponent("link-pairs"))
    let repeated = messages.filter { ["deltaBatch", "heartbeat", "deltaAck"].contains($0.name) }.map(\.message)
    try Data(link((0..<4).map { _ in repeated })).write(to: output.appendingPathComponent("link-repeated-bundles"))
}

@_cdecl("FuzzAuthenticatedFrames_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, testOneInput: fuzzAuthenticatedFrames, writeSeeds: writeSeeds)
}
